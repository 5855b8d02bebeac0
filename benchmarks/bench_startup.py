"""Start-up time of the command line: ``--version``, ``check`` and ``fmt`` of a spec.

A front end used from editors and pre-commit hooks must answer in well under a second
(target: < 0.5 s wall for a spec without ``budget:``). Each command runs in a fresh process,
median of ``--runs``; ``check`` is timed cold (empty cache folder, as on a first run) and
warm (the spec checked before and unchanged: its verdict comes from the cache). With
``--baseline REF`` the same commands also run against another commit of archcc, checked out
into a temporary worktree, so before and after are measured in one run::

    .venv/bin/python benchmarks/bench_startup.py --baseline 40d23ad
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "--version": ["--version"],
    "fmt": ["fmt", "specs/bert.yaml"],
    "check (cold)": ["check", "specs/bert.yaml"],
    "check (warm)": ["check", "specs/bert.yaml"],
}


def _run(source: Path, args: list[str], cache: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(source), "ARCHCC_CACHE": str(cache),
           "ARCHCC_PLUGINS": "0"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "archcc", *args], cwd=source, env=env, check=True,
                   capture_output=True)  # cwd first on sys.path: that tree's archcc runs
    return time.perf_counter() - start


def measure(source: Path, runs: int) -> dict[str, float]:
    """Median seconds per command for the archcc package found in ``source``."""
    out = {}
    for label, args in COMMANDS.items():
        times = []
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as cache:
                if label == "check (warm)":
                    _run(source, args, Path(cache))
                times.append(_run(source, args, Path(cache)))
        out[label] = statistics.median(times)
    return out


def _worktree(ref: str, folder: Path) -> Path:
    subprocess.run(["git", "worktree", "add", "--detach", str(folder), ref], cwd=ROOT,
                   check=True, capture_output=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", help="a git ref of archcc to compare against")
    args = parser.parse_args()
    now = measure(ROOT, args.runs)
    before = None
    if args.baseline:
        with tempfile.TemporaryDirectory() as tmp:
            tree = _worktree(args.baseline, Path(tmp) / "baseline")
            try:
                before = measure(tree, args.runs)
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                               check=False, capture_output=True)
    print(f"{'command':<14} {'now (s)':>8}" + (f" {'before (s)':>10} {'ratio':>6}" if before
                                                else ""))
    for label, seconds in now.items():
        row = f"{label:<14} {seconds:8.2f}"
        if before:
            row += f" {before[label]:10.2f} {seconds / before[label]:6.2f}"
        print(row)


if __name__ == "__main__":
    main()
