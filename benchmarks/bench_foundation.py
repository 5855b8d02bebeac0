"""CPU benchmark: archcc-generated GPT-2 small / BERT-base vs Hugging Face, plus build times.

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_foundation.py --runs 10
    .venv/bin/python benchmarks/bench_foundation.py --batch 4 --seq 256 --threads 4 --json

Both sides get the same weights (HF init, converted with ``convert_state_dict(..., "hf")``),
eval mode and ``torch.inference_mode()``; outputs are checked with ``assert_close`` before
any timing. Timed runs alternate ours/HF so machine noise hits both equally.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import transformers

import archcc
from archcc.api import compile_spec

ROOT = Path(__file__).resolve().parent.parent
GPT2_SIZES = dict(vocab_size=50257, n_positions=1024, n_embd=768, n_head=12, n_layer=12)


def parse_args() -> argparse.Namespace:
    """Flags for shape, repetitions and threads, so runs on different machines are comparable."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10, help="timed runs per model (median reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs per model before timing")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seq", type=int, default=128, help="sequence length T")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads value")
    p.add_argument("--json", action="store_true", help="print results as JSON instead of a table")
    return p.parse_args()


def gpt2_pair(out_dir: str, batch: int, seq: int) -> tuple[Callable, Callable]:
    """Build ours + HF GPT-2 with shared weights; return zero-arg forward closures."""
    gen = archcc.build(ROOT / "specs/gpt2.yaml", out_dir=out_dir)
    cfg = transformers.GPT2Config(**GPT2_SIZES, attn_implementation="sdpa")
    ref = transformers.GPT2LMHeadModel(cfg).eval()
    ours = gen.Model(gen.Config(**GPT2_SIZES)).eval()
    ours.load_state_dict(gen.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    (input_ids,) = gen.example_inputs(batch=batch, T=seq)
    return (lambda: ours(input_ids)), (lambda: ref(input_ids).logits)


def bert_pair(out_dir: str, batch: int, seq: int) -> tuple[Callable, Callable]:
    """Build ours + HF BERT-base (BertConfig defaults) with shared weights; forward closures."""
    gen = archcc.build(ROOT / "specs/bert.yaml", out_dir=out_dir)
    ref = transformers.BertModel(transformers.BertConfig(attn_implementation="sdpa")).eval()
    ours = gen.Model(gen.Config()).eval()
    ours.load_state_dict(gen.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    ids, mask, types = gen.example_inputs(batch=batch, T=seq)  # HF's order

    def run_ref() -> tuple[torch.Tensor, torch.Tensor]:
        out = ref(input_ids=ids, token_type_ids=types, attention_mask=mask.long())
        return out.last_hidden_state, out.pooler_output

    return (lambda: tuple(ours(ids, mask, types))), run_ref


def time_interleaved(ours: Callable, ref: Callable, runs: int, warmup: int) -> tuple[float, float]:
    """Median ms of each side; alternating (and swapping order) keeps drift from favouring one."""
    times: dict[int, list[float]] = {0: [], 1: []}
    fns = (ours, ref)
    with torch.inference_mode():
        for _ in range(warmup):
            ours()
            ref()
        for i in range(runs):
            for side in (0, 1) if i % 2 == 0 else (1, 0):
                start = time.perf_counter()
                fns[side]()
                times[side].append((time.perf_counter() - start) * 1e3)
    return statistics.median(times[0]), statistics.median(times[1])


def bench_forward(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Correctness check once, then interleaved timing, for each foundation model."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in (("gpt2-small", gpt2_pair), ("bert-base", bert_pair)):
            torch.manual_seed(0)
            ours, ref = make(tmp, args.batch, args.seq)
            with torch.inference_mode():
                torch.testing.assert_close(ours(), ref(), atol=1e-4, rtol=1e-4)
            ours_ms, hf_ms = time_interleaved(ours, ref, args.runs, args.warmup)
            results.append(dict(model=name, ours_ms=ours_ms, hf_ms=hf_ms, ratio=ours_ms / hf_ms))
    return results


def bench_build(repeats: int = 3) -> list[dict[str, Any]]:
    """Median in-process compile_spec time per spec; archcc is already imported, so no import."""
    results = []
    for spec in sorted((ROOT / "specs").glob("*.yaml")):
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            compile_spec(spec)
            samples.append((time.perf_counter() - start) * 1e3)
        results.append(dict(spec=spec.name, build_ms=statistics.median(samples)))
    return results


def print_table(report: dict[str, Any]) -> None:
    """Human-readable output: one line per model, then one per spec."""
    s = report["setup"]
    print(
        f"torch {s['torch']}, transformers {s['transformers']}, threads {s['threads']}, "
        f"batch {s['batch']}, T {s['seq']}, median of {s['runs']} runs"
    )
    print(f"{'model':<12} {'ours ms':>9} {'HF ms':>9} {'ours/HF':>8}")
    for r in report["forward"]:
        print(f"{r['model']:<12} {r['ours_ms']:>9.2f} {r['hf_ms']:>9.2f} {r['ratio']:>8.3f}")
    width = max(len(r["spec"]) for r in report["build"])
    print(f"\n{'spec':<{width}} {'build ms':>9}")
    for r in report["build"]:
        print(f"{r['spec']:<{width}} {r['build_ms']:>9.1f}")


def main() -> None:
    """Run everything once and print a table, or JSON with --json."""
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    report = {
        "setup": dict(
            torch=torch.__version__,
            transformers=transformers.__version__,
            threads=torch.get_num_threads(),
            batch=args.batch,
            seq=args.seq,
            runs=args.runs,
            warmup=args.warmup,
        ),
        "forward": bench_forward(args),
        "build": bench_build(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
