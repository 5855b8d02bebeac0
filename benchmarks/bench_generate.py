"""CPU benchmark: greedy generation of archcc-generated GPT-2 small vs Hugging Face generate().

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_generate.py                    # prompt 32, 64 new tokens
    .venv/bin/python benchmarks/bench_generate.py --prompt 16 --new 128 --threads 4 --runs 5

Four ways to produce the same tokens, measured in one run on the same weights (HF init,
carried over with ``convert_state_dict(..., "hf")``): our ``generate()`` with the KV cache, on
nn.Linear's standard (out, in) weights and again after ``decode_layout(model)`` has stored them
(in, out) in memory; Hugging Face ``GPT2LMHeadModel.generate(do_sample=False)`` (its own cache,
SDPA attention); and our ``generate(use_cache=False)``, which recomputes every position each
step. The tokens are checked equal before any timing; timed runs rotate the order so machine
noise hits all four.
"""

from __future__ import annotations

import argparse
import copy
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
GPT2_SMALL = dict(vocab_size=50257, n_positions=1024, n_embd=768, n_head=12, n_layer=12)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="timed runs per variant (median)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--prompt", type=int, default=32, help="prompt length in tokens")
    p.add_argument("--new", type=int, default=64, help="new tokens per sequence")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads value")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    return p.parse_args()


def variants(out_dir: str, batch: int, prompt: int, new: int) -> dict[str, Callable]:
    """Zero-argument closures, each returning the (B, prompt + new) token tensor."""
    gpt2 = archcc.build(ROOT / "specs/gpt2.yaml", out_dir=out_dir)
    config = transformers.GPT2Config(**GPT2_SMALL, attn_implementation="sdpa")
    ref = transformers.GPT2LMHeadModel(config).eval()
    ours = gpt2.Model(gpt2.Config(**GPT2_SMALL)).eval()
    ours.load_state_dict(gpt2.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    laid_out = gpt2.decode_layout(copy.deepcopy(ours))
    ids = torch.randint(0, GPT2_SMALL["vocab_size"], (batch, prompt),
                        generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    # EOS off on both sides, so every run produces exactly `new` tokens
    return {
        "archcc + KV cache": lambda: gpt2.generate(ours, ids, new, eos_token_id=None),
        "... + decode_layout": lambda: gpt2.generate(laid_out, ids, new, eos_token_id=None),
        "HF generate": lambda: ref.generate(ids, attention_mask=mask, do_sample=False,
                                            max_new_tokens=new, min_new_tokens=new,
                                            pad_token_id=0),
        "archcc, no cache": lambda: gpt2.generate(ours, ids, new, eos_token_id=None,
                                                  use_cache=False),
    }


def measure(fns: dict[str, Callable], runs: int) -> dict[str, float]:
    """Median seconds per variant; each round starts with a different variant."""
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    with torch.inference_mode():
        outputs = {n: fns[n]() for n in names}  # warm-up, and the tokens to compare
        first = outputs[names[0]]
        for name, tokens in outputs.items():
            assert torch.equal(tokens, first), f"{name} generated different tokens"
        for i in range(runs):
            for name in names[i % len(names):] + names[:i % len(names)]:
                start = time.perf_counter()
                fns[name]()
                times[name].append(time.perf_counter() - start)
    return {n: statistics.median(t) for n, t in times.items()}


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as out_dir:
        seconds = measure(variants(out_dir, args.batch, args.prompt, args.new), args.runs)
    tokens = args.batch * args.new
    rate = {n: tokens / s for n, s in seconds.items()}
    ours, hf, slow = rate["archcc + KV cache"], rate["HF generate"], rate["archcc, no cache"]
    laid_out = rate["... + decode_layout"]
    result = {"threads": torch.get_num_threads(), "batch": args.batch, "prompt": args.prompt,
              "new_tokens": args.new, "runs": args.runs, "tokens_per_s": rate,
              "vs_hf": ours / hf, "decode_layout_vs_hf": laid_out / hf,
              "vs_no_cache": ours / slow}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"GPT-2 small greedy, CPU, {result['threads']} threads, batch {args.batch}, "
          f"prompt {args.prompt}, {args.new} new tokens, median of {args.runs}")
    for name, value in rate.items():
        print(f"  {name:<20} {value:8.1f} tokens/s")
    print(f"  KV cache vs HF generate: {ours / hf:.2f}x, with decode_layout {laid_out / hf:.2f}x"
          f"   vs no cache: {ours / slow:.2f}x")


if __name__ == "__main__":
    main()
