"""CPU benchmark of the optimizer: hand-written causal attention at -O2 vs -O0 (time and peak
memory over T), and GPT-2 small / BERT-base generated at -O2 vs Hugging Face (sdpa).

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_optimizer.py
    .venv/bin/python benchmarks/bench_optimizer.py --seq 1024 --mem-seqs 512 1024 2048 --threads 2

Every pair is checked with ``assert_close`` before timing; timed runs alternate the two sides.
Peak memory is measured in a fresh process per (level, T) (Linux): after one warm-up
forward, the peak resident set is reset (``/proc/self/clear_refs``), a second forward runs,
and the new peak (``VmHWM``) minus the resident set before it is reported; a fixed glibc mmap
threshold makes freed tensors really leave the process between the two. Unfused attention
holds (B, H, T, T) scores, which grow with T^2; the fused SDPA call works in blocks.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # this checkout's archcc, then bench_foundation
from bench_foundation import bert_pair, gpt2_pair, time_interleaved  # noqa: E402

import archcc  # noqa: E402

SPEC = HERE / "specs" / "causal_attention.yaml"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seq", type=int, default=1024, help="T for the attention timing")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=10, help="timed runs per side (median)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--mem-seqs", type=int, nargs="+", default=[512, 1024, 2048])
    p.add_argument("--model-seq", type=int, default=128, help="T for GPT-2 / BERT vs HF")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--skip-models", action="store_true", help="attention only")
    p.add_argument("--child-memory", nargs=2, type=int, metavar=("LEVEL", "T"),
                   help=argparse.SUPPRESS)  # internal: one memory measurement
    return p.parse_args()


def attention_models(out_dir: str) -> dict[int, torch.nn.Module]:
    return {level: archcc.build(SPEC, out_dir=f"{out_dir}/O{level}", opt_level=level)
            for level in (0, 2)}


def bench_attention(args: argparse.Namespace, tmp: str) -> dict:
    mods = attention_models(tmp)
    models = {level: m.Model().eval() for level, m in mods.items()}
    inputs = mods[0].example_inputs(batch=args.batch, T=args.seq)
    with torch.inference_mode():
        torch.testing.assert_close(models[2](*inputs), models[0](*inputs), atol=1e-4, rtol=1e-4)
    o2_ms, o0_ms = time_interleaved(lambda: models[2](*inputs), lambda: models[0](*inputs),
                                    args.runs, args.warmup)
    return dict(o0_ms=o0_ms, o2_ms=o2_ms, ratio=o2_ms / o0_ms)


def _status_kib(field: str) -> int:
    """VmRSS (resident now) or VmHWM (peak resident since the last reset), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def child_memory(level: int, seq: int, batch: int, threads: int | None) -> None:
    """Runs in a fresh process: print the peak MiB one forward adds."""
    if threads is not None:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        module = archcc.build(SPEC, out_dir=tmp, opt_level=level)
        model = module.Model().eval()
        inputs = module.example_inputs(batch=batch, T=seq)
        with torch.inference_mode():
            model(*inputs)  # one-time costs (kernels, thread pools) stay resident: not counted
            before = _status_kib("VmRSS")
            Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to now
            model(*inputs)
            peak = _status_kib("VmHWM")
    print(max(peak - before, 0) / 1024)


def bench_memory(args: argparse.Namespace) -> list[dict]:
    rows = []
    for seq in args.mem_seqs:
        row = {"T": seq}
        for level in (0, 2):
            cmd = [sys.executable, __file__, "--child-memory", str(level), str(seq),
                   "--batch", str(args.batch)]
            if args.threads is not None:
                cmd += ["--threads", str(args.threads)]
            # a fixed mmap threshold: big tensors go back to the OS when freed, so the
            # second forward's peak is its own (glibc otherwise keeps them on the heap)
            env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
            out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                                 env=env).stdout
            row[f"o{level}_mib"] = float(out.split()[-1])
        rows.append(row)
    return rows


def bench_models(args: argparse.Namespace, tmp: str) -> list[dict]:
    """GPT-2 small / BERT-base at the default -O2 (what archcc.build does) vs HF sdpa."""
    rows = []
    for name, make in (("gpt2-small", gpt2_pair), ("bert-base", bert_pair)):
        torch.manual_seed(0)
        ours, ref = make(tmp, 1, args.model_seq)
        with torch.inference_mode():
            torch.testing.assert_close(ours(), ref(), atol=1e-4, rtol=1e-4)
        ours_ms, hf_ms = time_interleaved(ours, ref, args.runs, args.warmup)
        rows.append(dict(model=name, ours_ms=ours_ms, hf_ms=hf_ms, ratio=ours_ms / hf_ms))
    return rows


def main() -> None:
    args = parse_args()
    if args.child_memory:
        child_memory(*args.child_memory, args.batch, args.threads)
        return
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"median of {args.runs} runs")
    with tempfile.TemporaryDirectory() as tmp:
        att = bench_attention(args, tmp)
        print(f"\nhand-written causal attention, B={args.batch} H=12 hs=64 T={args.seq}")
        print(f"  -O0 {att['o0_ms']:.2f} ms   -O2 {att['o2_ms']:.2f} ms   "
              f"-O2/-O0 = {att['ratio']:.3f}")
        print(f"\npeak memory added by one forward (MiB)\n  {'T':>6} {'-O0':>9} {'-O2':>9}")
        rows = bench_memory(args)
        for r in rows:
            print(f"  {r['T']:>6} {r['o0_mib']:>9.1f} {r['o2_mib']:>9.1f}")
        first, last = rows[0], rows[-1]
        growth = last["T"] / first["T"]
        for level in (0, 2):
            ratio = last[f"o{level}_mib"] / max(first[f"o{level}_mib"], 1e-9)
            print(f"  -O{level}: T x{growth:g} -> memory x{ratio:.2f} "
                  f"(linear would be x{growth:g}, quadratic x{growth ** 2:g})")
        if not args.skip_models:
            print(f"\n-O2 vs Hugging Face (attn_implementation='sdpa'), batch 1, "
                  f"T={args.model_seq}\n  {'model':<12} {'ours ms':>9} {'HF ms':>9} {'ours/HF':>8}")
            for r in bench_models(args, tmp):
                print(f"  {r['model']:<12} {r['ours_ms']:>9.2f} {r['hf_ms']:>9.2f} "
                      f"{r['ratio']:>8.3f}")


if __name__ == "__main__":
    main()
