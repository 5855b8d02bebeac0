"""CPU benchmark: archcc-generated ConvNeXt-T and ResNet-50 forward vs transformers, one run.

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_cnn.py --runs 10
    .venv/bin/python benchmarks/bench_cnn.py --batch 8 --threads 2 --json

Both sides get the same weights (the transformers model's random init with its norms, biases,
layer scales and batch-norm statistics re-drawn, converted with ``convert_state_dict(...,
"hf")`` and loaded strictly), eval mode and ``torch.inference_mode()``; logits are checked
with ``assert_close`` before any timing. Timed runs alternate ours/transformers (swapping
who goes first) so machine noise hits both equally; medians and minima are printed (on a
shared machine the minimum is the least disturbed figure). A ratio below 1.0 means the
generated model is faster. The default configs of ``ConvNextConfig`` and ``ResNetConfig`` are
ConvNeXt-T (facebook/convnext-tiny-224) and ResNet-50 (microsoft/resnet-50).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import transformers

import archcc

ROOT = Path(__file__).resolve().parent.parent
MODELS = [("ConvNeXt-T", "convnext", "ConvNextConfig", "ConvNextForImageClassification"),
          ("ResNet-50", "resnet", "ResNetConfig", "ResNetForImageClassification")]


def parse_args() -> argparse.Namespace:
    """Flags for batch, repetitions and threads, so runs on different machines compare."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10, help="timed runs per model (median reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs per model before timing")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads value")
    p.add_argument("--json", action="store_true", help="print results as JSON instead of a table")
    return p.parse_args()


def redraw(model: torch.nn.Module) -> None:
    """Norm weights, biases, layer scales and BN statistics away from their init values."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias") or "layer_scale" in name:
                p.normal_(0, 0.1).add_(1.0 if name.endswith("weight") else 0.0)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.normal_(0, 0.1)
            elif name.endswith("running_var"):
                b.uniform_(0.5, 1.5)


def pair(out_dir: str, spec: str, config_cls: str, model_cls: str,
         batch: int) -> tuple[Callable, Callable]:
    """Ours + transformers at published size with shared weights; zero-arg closures."""
    gen = archcc.build(ROOT / "specs" / f"{spec}.yaml", out_dir=out_dir)
    config = getattr(transformers, config_cls)(num_labels=1000)  # ImageNet, as Config()
    ref = getattr(transformers, model_cls)(config).eval()
    redraw(ref)
    ours = gen.Model(gen.Config()).eval()
    ours.load_state_dict(gen.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    pixels = torch.randn(batch, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(ours(pixels), ref(pixels).logits, atol=1e-4, rtol=1e-4)
    return (lambda: ours(pixels)), (lambda: ref(pixels))


def time_interleaved(ours: Callable, ref: Callable, runs: int,
                     warmup: int) -> tuple[list[float], list[float]]:
    """Each side's times in ms; alternating (and swapping order) keeps drift from favouring
    one side."""
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
    return times[0], times[1]


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as out_dir:
        for label, spec, config_cls, model_cls in MODELS:
            ours, ref = pair(out_dir, spec, config_cls, model_cls, args.batch)
            ours_ms, ref_ms = time_interleaved(ours, ref, args.runs, args.warmup)
            median = statistics.median(ours_ms), statistics.median(ref_ms)
            best = min(ours_ms), min(ref_ms)  # least disturbed by other load on the machine
            rows.append({"model": label, "reference": model_cls,
                         "ours_ms": round(median[0], 2), "hf_ms": round(median[1], 2),
                         "ratio": round(median[0] / median[1], 3),
                         "ours_min_ms": round(best[0], 2), "hf_min_ms": round(best[1], 2),
                         "min_ratio": round(best[0] / best[1], 3)})
    meta = {"batch": args.batch, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "transformers": transformers.__version__}
    if args.json:
        print(json.dumps({"meta": meta, "results": rows}, indent=2))
        return
    print(f"batch {meta['batch']}, {meta['threads']} threads, torch {meta['torch']}, "
          f"transformers {meta['transformers']}; ratio = ours / transformers (<= 1.0 is the "
          "target)")
    print(f"{'model':<11} {'ours ms':>9} {'HF ms':>9} {'ratio':>7}   (min: {'ours':>8} "
          f"{'HF':>8} {'ratio':>6})")
    for r in rows:
        print(f"{r['model']:<11} {r['ours_ms']:>9.2f} {r['hf_ms']:>9.2f} {r['ratio']:>7.3f}"
              f"   (     {r['ours_min_ms']:>8.2f} {r['hf_min_ms']:>8.2f} {r['min_ratio']:>6.3f})")


if __name__ == "__main__":
    main()
