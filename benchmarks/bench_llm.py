"""CPU benchmark: the generated LLaMA (specs/llama.yaml) vs Hugging Face LlamaForCausalLM.

Usage (from the repository root):

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_llm.py            # defaults below
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_llm.py --seq 512 --new 64 --runs 5

One model, hidden 1024, 8 layers, 16 query heads sharing 4 key/value heads (GQA), Llama 3's
rope scaling, in both implementations with the same weights (HF's init, carried over by
``convert_state_dict(sd, "hf")``), measured in one run:

- forward: one (1, seq) batch, our -O2 module vs ``LlamaForCausalLM`` with
  ``attn_implementation="sdpa"`` (logits checked close first);
- greedy decoding: our ``generate()`` with its KV cache (as built, and after
  ``decode_layout``) vs HF ``generate(do_sample=False)``, tokens checked equal first;
- KV cache memory: the bytes our cache holds after the prompt and the new tokens, for this
  GQA model and for the same model with 16 key/value heads (MHA): the ratio should be 4 / 16.

Timed runs rotate their order so machine noise hits every variant alike; figures are medians.
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
SIZES = dict(vocab_size=32000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=8,
             num_attention_heads=16, num_key_value_heads=4, head_dim=64, rms_norm_eps=1e-5,
             rope_theta=500000.0, rope_factor=32.0, rope_low_freq_factor=1.0,
             rope_high_freq_factor=4.0, rope_original_max_position_embeddings=8192)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="timed runs per variant (median)")
    p.add_argument("--seq", type=int, default=256, help="forward: tokens in the batch")
    p.add_argument("--prompt", type=int, default=32, help="generation: prompt tokens")
    p.add_argument("--new", type=int, default=32, help="generation: new tokens")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    return p.parse_args()


def hf_config(sizes: dict) -> transformers.LlamaConfig:
    rope = {"rope_type": "llama3", "rope_theta": sizes["rope_theta"],
            "factor": sizes["rope_factor"], "low_freq_factor": sizes["rope_low_freq_factor"],
            "high_freq_factor": sizes["rope_high_freq_factor"],
            "original_max_position_embeddings": sizes["rope_original_max_position_embeddings"]}
    plain = {k: v for k, v in sizes.items() if not k.startswith("rope_")}
    return transformers.LlamaConfig(**plain, rope_parameters=rope, tie_word_embeddings=True,
                                    max_position_embeddings=131072)


def pair(module, sizes: dict):
    """(ours, HF with sdpa attention), same weights."""
    torch.manual_seed(0)
    ref = transformers.LlamaForCausalLM._from_config(hf_config(sizes),
                                                    attn_implementation="sdpa").eval()
    ours = module.Model(module.Config(**sizes)).eval()
    ours.load_state_dict(module.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    return ours, ref


def measure(fns: dict[str, Callable], runs: int) -> dict[str, float]:
    """Median seconds per variant; each round starts with a different variant."""
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    with torch.inference_mode():
        for i in range(runs):
            for name in names[i % len(names):] + names[:i % len(names)]:
                start = time.perf_counter()
                fns[name]()
                times[name].append(time.perf_counter() - start)
    return {n: statistics.median(t) for n, t in times.items()}


def forward(module, ours, ref, seq: int, runs: int) -> dict[str, float]:
    ids = torch.randint(0, SIZES["vocab_size"], (1, seq),
                        generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        torch.testing.assert_close(ours(ids), ref(ids, use_cache=False).logits,
                                   atol=1e-3, rtol=1e-3)
    return measure({"archcc": lambda: ours(ids),
                    "HF sdpa": lambda: ref(ids, use_cache=False)}, runs)


def decoding(module, ours, ref, prompt: int, new: int, runs: int) -> dict[str, float]:
    ids = torch.randint(0, SIZES["vocab_size"], (1, prompt),
                        generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    laid_out = module.decode_layout(copy.deepcopy(ours))
    fns = {
        "archcc + KV cache": lambda: module.generate(ours, ids, new, eos_token_id=None),
        "... + decode_layout": lambda: module.generate(laid_out, ids, new, eos_token_id=None),
        "HF generate": lambda: ref.generate(ids, attention_mask=mask, do_sample=False,
                                            max_new_tokens=new, min_new_tokens=new,
                                            eos_token_id=None, pad_token_id=0),
    }
    with torch.inference_mode():
        tokens = {name: fn() for name, fn in fns.items()}
    first = tokens["HF generate"]
    for name, out in tokens.items():
        assert torch.equal(out, first), f"{name} generated different tokens"
    return measure(fns, runs)


def cache_bytes(module, sizes: dict, length: int) -> int:
    """Bytes our KVCache holds after ``length`` positions (prompt, then one per step)."""
    model, cache = module.Model(module.Config(**sizes)).eval(), module.KVCache()
    ids = torch.randint(0, sizes["vocab_size"], (1, length))
    with torch.inference_mode():
        model(ids[:, :length // 2], cache=cache)
        for t in range(length // 2, length):
            model(ids[:, t:t + 1], cache=cache)
    return sum(t.untyped_storage().nbytes() for entry in cache.kv.values() for t in entry[:2])


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as out_dir:
        llama = archcc.build(ROOT / "specs" / "llama.yaml", out_dir=out_dir)
        ours, ref = pair(llama, SIZES)
        fwd = forward(llama, ours, ref, args.seq, args.runs)
        dec = decoding(llama, ours, ref, args.prompt, args.new, args.runs)
        length = args.prompt + args.new
        gqa = cache_bytes(llama, SIZES, length)
        mha = cache_bytes(llama, {**SIZES, "num_key_value_heads": 16}, length)
    rate = {name: args.new / s for name, s in dec.items()}
    result = {
        "threads": torch.get_num_threads(), "seq": args.seq, "prompt": args.prompt,
        "new_tokens": args.new, "runs": args.runs,
        "forward_s": fwd, "forward_vs_hf": fwd["archcc"] / fwd["HF sdpa"],
        "tokens_per_s": rate, "decode_vs_hf": rate["archcc + KV cache"] / rate["HF generate"],
        "decode_layout_vs_hf": rate["... + decode_layout"] / rate["HF generate"],
        "kv_cache_bytes": {"gqa_4_of_16": gqa, "mha_16": mha}, "kv_cache_gqa_vs_mha": gqa / mha,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"LLaMA hidden 1024, 8 layers, GQA 16/4, CPU, {result['threads']} threads, "
          f"median of {args.runs}")
    print(f"  forward (1, {args.seq}): archcc {fwd['archcc'] * 1e3:.1f} ms, HF sdpa "
          f"{fwd['HF sdpa'] * 1e3:.1f} ms: {result['forward_vs_hf']:.2f}x the time")
    for name, value in rate.items():
        print(f"  {name:<20} {value:8.1f} tokens/s")
    print(f"  decoding vs HF generate: {result['decode_vs_hf']:.2f}x, with decode_layout "
          f"{result['decode_layout_vs_hf']:.2f}x")
    print(f"  KV cache after {length} positions: GQA {gqa / 2**20:.2f} MiB, MHA "
          f"{mha / 2**20:.2f} MiB: {result['kv_cache_gqa_vs_mha']:.3f}x")


if __name__ == "__main__":
    main()
