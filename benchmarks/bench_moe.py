"""CPU benchmark: the generated sparse MoE layer vs transformers' and vs all experts dense.

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_moe.py --threads 2 --runs 10
    .venv/bin/python benchmarks/bench_moe.py --batch 1 --seq 16 --json

One Mixtral-style layer (benchmarks/specs/moe_layer.yaml: 8 SwiGLU experts, top-2, width
1024 / 3584) on B x T tokens, four ways, with the same weights:

- ``ours``: the generated ``SwiGLUMoE`` (k experts per token, tokens grouped by expert);
- ``hf``: ``MixtralSparseMoeBlock`` as transformers builds it by default
  (``experts_implementation="grouped_mm"``);
- ``hf_eager``: the same block with transformers' Python loop over experts;
- ``dense``: every expert on every token (two batched matmuls over E), weighted by the
  routing weights, 0 where not chosen: what a MoE costs without a sparse dispatch.

Outputs are checked equal before timing; timed rounds run every variant, in a rotating order, so
machine noise hits all alike, and each ratio is the median over rounds of that round's ours / other.
FLOPs are ``torch.utils.flop_counter``'s (transformers' grouped_mm kernel has no formula
there, so ``hf`` shows none). Targets: ours / hf <= 1.0; ours' FLOPs about k / E of dense's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import MixtralConfig
from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

import archcc
from archcc.inspect.measure import flop_counter

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "benchmarks" / "specs" / "moe_layer.yaml"


def dense_all_experts(moe: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Every expert on every token, weighted by the routing weights (0 where not chosen)."""
    tokens = x.reshape(-1, x.shape[-1])  # (N, C)
    weights, chosen = moe.route(moe.router(tokens))  # (N, k)
    dense = weights.new_zeros(len(tokens), moe.n_experts).scatter(1, chosen, weights)  # (N, E)
    gate, up = torch.matmul(tokens, moe.gate_up.transpose(1, 2)).chunk(2, dim=-1)  # (E, N, I)
    y = torch.matmul(F.silu(gate) * up, moe.down.transpose(1, 2))  # (E, N, C)
    return torch.einsum("enc,ne->nc", y, dense).view(x.shape)


def hf_block(config, implementation: str) -> MixtralSparseMoeBlock:
    cfg = MixtralConfig(hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
                        num_local_experts=config.num_local_experts,
                        num_experts_per_tok=config.num_experts_per_tok)
    cfg._experts_implementation = implementation
    return MixtralSparseMoeBlock(cfg).eval()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10, help="timed runs per variant (median)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads value")
    p.add_argument("--json", action="store_true")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as out:
        gen = archcc.build(SPEC, out_dir=out)
    ours = gen.Model().eval()
    refs = {"hf": hf_block(gen.Config(), "grouped_mm"),
            "hf_eager": hf_block(gen.Config(), "eager")}
    for p in refs["hf"].parameters():  # transformers' init: N(0, 0.02); experts start empty
        torch.nn.init.normal_(p, std=0.02)
    refs["hf_eager"].load_state_dict(refs["hf"].state_dict(), strict=True)
    ours.load_state_dict(gen.convert_state_dict(refs["hf"].state_dict(), "hf"), strict=True)
    variants = {"ours": ours, **refs, "dense": lambda x: dense_all_experts(ours.moe, x)}
    (x,) = gen.example_inputs(batch=args.batch, T=args.seq)
    times: dict[str, list[float]] = {name: [] for name in variants}
    flops: dict[str, int | None] = {}
    with torch.inference_mode():
        want = ours(x)
        for name, model in variants.items():
            torch.testing.assert_close(model(x), want, rtol=1e-4, atol=1e-4)
            with flop_counter() as counter:
                model(x)
            flops[name] = counter.get_total_flops() or None
        for _ in range(args.warmup):
            for model in variants.values():
                model(x)
        names = list(variants)
        for i in range(args.runs):
            for name in names[i % len(names):] + names[:i % len(names)]:  # rotate who goes first
                model = variants[name]
                start = time.perf_counter()
                model(x)
                times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    # ratio of each round's pair (same moment, same machine load), then the median
    paired = {name: statistics.median(a / b for a, b in zip(times["ours"], t, strict=True))
              for name, t in times.items()}
    cfg = gen.Config()
    result = {"layer": "mixtral-style moe", "dim": cfg.hidden_size,
              "hidden": cfg.intermediate_size, "experts": cfg.num_local_experts,
              "top_k": cfg.num_experts_per_tok, "tokens": args.batch * args.seq,
              "threads": torch.get_num_threads(), "runs": args.runs,
              "ms": {k: round(v, 2) for k, v in med.items()}, "gflops": {
                  k: None if v is None else round(v / 1e9, 3) for k, v in flops.items()},
              "ours_vs_hf": round(paired["hf"], 3),
              "ours_vs_hf_eager": round(paired["hf_eager"], 3),
              "ours_vs_dense_time": round(paired["dense"], 3),
              "ours_vs_dense_flops": round(flops["ours"] / flops["dense"], 3)}
    if args.json:
        print(json.dumps(result))
        return
    print(f"MoE layer: dim {result['dim']}, hidden {result['hidden']}, top-{result['top_k']} "
          f"of {result['experts']} experts, {result['tokens']} tokens, "
          f"{result['threads']} threads, median of {args.runs}")
    for name in variants:
        gf = "-" if flops[name] is None else f"{flops[name] / 1e9:.2f}"
        print(f"  {name:9s} {med[name]:9.2f} ms  {gf:>7s} GFLOPs  "
              f"ours/this {paired[name]:.3f}")
    print(f"ours/hf {result['ours_vs_hf']} (target <= 1.0), ours/hf_eager "
          f"{result['ours_vs_hf_eager']}, FLOPs ours/dense {result['ours_vs_dense_flops']} "
          f"(k/E = {cfg.num_experts_per_tok / cfg.num_local_experts})")


if __name__ == "__main__":
    main()
