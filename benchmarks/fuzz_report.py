"""The fuzzer's table: per spec form (and per `archcc import hf` family), how many mutants
were tried and how each ended.

Usage (from the repository root):

    .venv/bin/python benchmarks/fuzz_report.py                  # N=12, seed 0: the CI run
    .venv/bin/python benchmarks/fuzz_report.py --n 100 --seed 3 --list
    .venv/bin/python benchmarks/fuzz_report.py --specs gpt2 lstm_lm --no-hf

Columns: tried / located (refused with file:line:col) / misplaced (located, not on the line
the mutation broke) / unlocated / internal (any other exception) / hang (over 5 s) /
accepted (judged right / wrong: a silent misconfiguration, an out-of-domain value, a neutral
edit that changed the code or was refused). The mutants, the runner and the judge are
tests/fuzzing.py, the same code tests/test_fuzz.py runs; failures that tests/test_fuzz.py
defers to the IR/codegen/ops owners are marked "deferred" in --list.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ARCHCC_PLUGINS", "0")  # builtin ops only, as in the test suite

from tests import fuzzing  # noqa: E402 - needs the repository root on sys.path
from tests.test_fuzz import DEFAULT_N, DEFAULT_SEED, deferred  # noqa: E402


def _listing(results: list[fuzzing.Result]) -> str:
    lines = []
    for result in results:
        if result.outcome in fuzzing.FAILURES:
            entry = deferred(result)
            mark = f"deferred to {entry.fix_in.split(':')[0]}" if entry else "NEW"
            lines.append(f"  {result.outcome:<9} [{mark}] {result.mutant.id[:100]}\n"
                         f"            {result.detail[:160]}")
    return "\n".join(lines) + ("\n" if lines else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=DEFAULT_N, help="mutants per spec form "
                        "and per config family")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--specs", nargs="+", help="spec stems (default: every bundled spec)")
    parser.add_argument("--no-hf", action="store_true", help="skip archcc import hf")
    parser.add_argument("--list", action="store_true", help="also list every failure")
    args = parser.parse_args()

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="archcc-fuzz-") as folder:
        specs = fuzzing.fuzz_specs(Path(folder), args.n, args.seed, args.specs)
        hf = [] if args.no_hf else fuzzing.fuzz_hf(Path(folder), args.n, args.seed)
    seconds = time.perf_counter() - start
    print(f"archcc fuzz: N={args.n} per spec form, seed {args.seed}\n")
    print(fuzzing.table(specs))
    if hf:
        print(fuzzing.table(hf, lambda m: f"import hf {m.base.split('/')[0]}"))
    results = specs + hf
    failed = [r for r in results if r.outcome in fuzzing.FAILURES]
    new = [r for r in failed if deferred(r) is None]
    print(f"{len(results)} mutants in {seconds:.1f} s; {len(failed)} failures, "
          f"{len(failed) - len(new)} of them deferred, {len(new)} new")
    if args.list and failed:
        print(_listing(failed), end="")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
