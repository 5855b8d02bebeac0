"""CPU benchmark: archcc-generated ViT-B/16 and Swin-T forward vs timm, in one run.

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_vision.py --runs 10
    .venv/bin/python benchmarks/bench_vision.py --batch 1 --threads 2 --json

Both sides get the same weights (timm init, converted with ``convert_state_dict(..., "timm")``),
eval mode and ``torch.inference_mode()``; logits are checked with ``assert_close`` before any
timing. Timed runs alternate ours/timm (swapping who goes first) so machine noise hits both
equally. A ratio below 1.0 means the generated model is faster.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import timm
import torch

import archcc

ROOT = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    """Flags for batch, repetitions and threads, so runs on different machines compare."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10, help="timed runs per model (median reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs per model before timing")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads value")
    p.add_argument("--json", action="store_true", help="print results as JSON instead of a table")
    return p.parse_args()


def pair(out_dir: str, spec: str, timm_name: str, batch: int,
         **config) -> tuple[Callable, Callable]:
    """Ours + timm at published size with shared weights; zero-arg forward closures."""
    gen = archcc.build(ROOT / "specs" / f"{spec}.yaml", out_dir=out_dir)
    ref = timm.create_model(timm_name, pretrained=False).eval()
    ours = gen.Model(gen.Config(**config)).eval()
    ours.load_state_dict(gen.convert_state_dict(ref.state_dict(), "timm"), strict=True)
    pixels = torch.randn(batch, 3, 224, 224)

    def run_ours() -> torch.Tensor:
        out = ours(pixels)
        return out[-1] if isinstance(out, tuple) else out  # ViT also returns hidden states

    with torch.inference_mode():
        torch.testing.assert_close(run_ours(), ref(pixels), atol=1e-4, rtol=1e-4)
    return run_ours, (lambda: ref(pixels))


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
                times[side].append((time.perf_counter() - start) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = [("ViT-B/16", "vit", "vit_base_patch16_224", {"layer_norm_eps": 1e-6}),
              ("Swin-T", "swin", "swin_tiny_patch4_window7_224", {})]
    rows = []
    with tempfile.TemporaryDirectory() as out_dir:
        for label, spec, timm_name, config in models:
            ours, ref = pair(out_dir, spec, timm_name, args.batch, **config)
            ours_ms, ref_ms = time_interleaved(ours, ref, args.runs, args.warmup)
            rows.append({"model": label, "timm": timm_name, "ours_ms": round(ours_ms, 2),
                         "timm_ms": round(ref_ms, 2), "ratio": round(ours_ms / ref_ms, 3)})
    meta = {"batch": args.batch, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "timm": timm.__version__}
    if args.json:
        print(json.dumps({"meta": meta, "results": rows}, indent=2))
        return
    print(f"batch {meta['batch']}, {meta['threads']} threads, torch {meta['torch']}, "
          f"timm {meta['timm']}; ratio = ours / timm (<= 1.0 is the target)")
    print(f"{'model':<10} {'ours ms':>9} {'timm ms':>9} {'ratio':>7}")
    for r in rows:
        print(f"{r['model']:<10} {r['ours_ms']:>9.2f} {r['timm_ms']:>9.2f} {r['ratio']:>7.3f}")


if __name__ == "__main__":
    main()
