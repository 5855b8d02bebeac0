"""Build time of a stage loop: ``archcc build`` of Swin-T vs deeper and wider Swins.

A stage loop is one class and one ``for`` loop whatever the depth, and the compiler checks
each distinct instance once: a block repeated 18 times is inferred as often as one repeated
6 times. This prints the median wall time of ``compile_spec`` (parse, build, shape
inference, passes, codegen) for Swin-T and for Swins given by ``--set`` overrides, with the
ratio to Swin-T, in one run::

    .venv/bin/python benchmarks/bench_structure.py --runs 5

A ratio near 1.0 for the 24-block Swin-S (``depths=[2,2,18,2]``) is the target; more stages
add one instance each to check, a small constant per stage.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from archcc.api import compile_spec

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs" / "swin.yaml"
VARIANTS = {
    "Swin-T (2, 2, 6, 2), 12 blocks": [],
    "Swin-S (2, 2, 18, 2), 24 blocks": ["depths=[2,2,18,2]"],
    "deep (2, 2, 200, 2), 206 blocks": ["depths=[2,2,200,2]"],
    "5 stages (2, 2, 2, 2, 2)": ["img_size=448", "depths=[2,2,2,2,2]",
                                 "num_heads=[3,6,12,24,48]"],
    "2 stages (2, 2)": ["img_size=56", "depths=[2,2]", "num_heads=[3,6]"],
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="timed builds per variant (median)")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    return p.parse_args()


def build_seconds(sets: list[str], runs: int) -> float:
    """Median seconds of one compile (after one untimed warm-up that loads the compiler)."""
    compile_spec(SPEC, sets=sets)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        compile_spec(SPEC, sets=sets)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    args = parse_args()
    rows = []
    base = None
    for label, sets in VARIANTS.items():
        seconds = build_seconds(sets, args.runs)
        base = base or seconds
        rows.append({"spec": label, "set": sets, "seconds": round(seconds, 3),
                     "ratio": round(seconds / base, 3)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("archcc build time of specs/swin.yaml; ratio = time / Swin-T's (~1.0 is the target)")
    print(f"{'spec':<34} {'seconds':>8} {'ratio':>7}")
    for r in rows:
        print(f"{r['spec']:<34} {r['seconds']:>8.3f} {r['ratio']:>7.3f}")


if __name__ == "__main__":
    main()
