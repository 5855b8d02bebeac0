"""CPU benchmark: one training step (forward, backward, AdamW) of the generated GPT-2 and
BERT-base against Hugging Face, and peak memory with activation checkpointing vs without.

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_train.py                 # GPT-2 (6 layers), BERT-base
    .venv/bin/python benchmarks/bench_train.py --runs 5 --threads 4 --json
    .venv/bin/python benchmarks/bench_train.py --gpt2-layers 2 --seq 64 --runs 2   # quick look

Both sides start from the same weights (HF's init, mapped by ``convert_state_dict``), train
with dropout off, and must agree on the first loss before anything is timed; timed steps
alternate ours / HF. Memory: each configuration trains a few steps in a fresh process whose
peak resident set (``VmHWM``) is reported, with the activation bytes autograd saved for
backward (``saved_tensors_hooks``; storages once, weights not): what checkpointing trades for
recompute.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers

import archcc

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="timed steps per side (median)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=256, help="GPT-2 sequence length")
    p.add_argument("--bert-seq", type=int, default=128)
    p.add_argument("--gpt2-layers", type=int, default=6)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--models", nargs="+", default=["gpt2", "bert"])
    p.add_argument("--json", action="store_true")
    p.add_argument("--memory-child", nargs=3, metavar=("MODEL", "SIDE", "CHECKPOINTING"),
                   help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------------- models


def gpt2_pair(out: str, args, sides=("archcc", "hf")) -> tuple:
    """(module, ours, hf, loss of ours, loss of hf) at GPT-2 small width, ``--gpt2-layers``
    deep; a side left out of ``sides`` is None (the memory runs build one each)."""
    sizes = dict(vocab_size=50257, n_positions=1024, n_embd=768, n_head=12,
                 n_layer=args.gpt2_layers)
    gen = archcc.build(ROOT / "specs/gpt2.yaml", out_dir=out)
    ref = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        **sizes, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, attn_implementation="sdpa",
        bos_token_id=0, eos_token_id=0)) if "hf" in sides else None
    ours = gen.Model(gen.Config(**sizes, dropout=0.0)) if "archcc" in sides else None
    if ref is not None and ours is not None:
        ours.load_state_dict(gen.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    ids = torch.randint(0, sizes["vocab_size"], (args.batch, args.seq))

    def ours_loss():
        logits = ours(ids)
        return F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())

    return gen, ours, ref, ours_loss, lambda: ref(ids, labels=ids).loss


def bert_pair(out: str, args, sides=("archcc", "hf")) -> tuple:
    """BERT-base (BertConfig's defaults), a regression loss on hidden states and pooler."""
    gen = archcc.build(ROOT / "specs/bert.yaml", out_dir=out)
    ref = transformers.BertModel(transformers.BertConfig(
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        attn_implementation="sdpa")) if "hf" in sides else None
    ours = gen.Model(gen.Config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)) \
        if "archcc" in sides else None
    if ref is not None and ours is not None:
        ours.load_state_dict(gen.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    ids, mask, types = gen.example_inputs(batch=args.batch, T=args.bert_seq)  # HF's order
    target = torch.randn(args.batch, args.bert_seq, 768)

    def ours_loss():
        hidden, pooled = ours(ids, mask, types)
        return F.mse_loss(hidden, target) + pooled.square().mean()

    def ref_loss():
        out = ref(input_ids=ids, token_type_ids=types, attention_mask=mask.long())
        return F.mse_loss(out.last_hidden_state, target) + out.pooler_output.square().mean()

    return gen, ours, ref, ours_loss, ref_loss


PAIRS = {"gpt2": gpt2_pair, "bert": bert_pair}


def stepper(model: torch.nn.Module, loss_fn: Callable) -> Callable[[], float]:
    """One training step: forward, backward, AdamW; returns the loss."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step() -> float:
        loss = loss_fn()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def time_steps(ours: Callable, ref: Callable, runs: int, warmup: int) -> tuple[float, float]:
    """Median seconds per step of each side, alternating (and swapping order) per run."""
    for _ in range(warmup):
        ours()
        ref()
    times: dict[int, list[float]] = {0: [], 1: []}
    for i in range(runs):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for side in order:
            start = time.perf_counter()
            (ours, ref)[side]()
            times[side].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


# ----------------------------------------------------------------------------------- memory


def saved_bytes(model: torch.nn.Module, loss_fn: Callable) -> int:
    """Bytes of activations autograd keeps for backward during one forward (each storage
    counted once; the parameters, which stay anyway, are not counted)."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn()
    loss.backward()
    return sum(seen.values())


def memory_child(model: str, side: str, checkpointing: bool, args) -> dict:
    """Run in a fresh process: two training steps, then the peak resident set."""
    with tempfile.TemporaryDirectory() as out:
        gen, ours, ref, ours_loss, ref_loss = PAIRS[model](out, args, sides=(side,))
        net, loss_fn = (ours, ours_loss) if side == "archcc" else (ref, ref_loss)
        if checkpointing:
            if side == "archcc":
                gen.set_checkpointing(net, True)
            else:
                net.gradient_checkpointing_enable({"use_reentrant": False})
        net.train()
        saved = saved_bytes(net, loss_fn)
        step = stepper(net, loss_fn)
        step()
        step()
    return {"saved_mb": saved / 2**20, "peak_rss_mb": _peak_rss_kib() / 1024}


def _peak_rss_kib() -> float:
    """This process's peak resident set since exec (VmHWM; ru_maxrss would carry the
    parent's high-water mark across fork and exec)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1])
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def memory(model: str, args) -> dict:
    out = {}
    for side in ("archcc", "hf"):
        for checkpointing in (False, True):
            cmd = [sys.executable, __file__, "--memory-child", model, side, str(checkpointing),
                   "--batch", str(args.batch), "--seq", str(args.seq), "--bert-seq",
                   str(args.bert_seq), "--gpt2-layers", str(args.gpt2_layers)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            out[f"{side}{'+ckpt' if checkpointing else ''}"] = json.loads(text.splitlines()[-1])
    return out


# ------------------------------------------------------------------------------------- main


def bench(model: str, args) -> dict:
    with tempfile.TemporaryDirectory() as out:
        _, ours, ref, ours_loss, ref_loss = PAIRS[model](out, args)
        ours.train()
        ref.train()
        first_ours, first_ref = ours_loss().item(), ref_loss().item()
        assert abs(first_ours - first_ref) <= 1e-4 * abs(first_ref), (first_ours, first_ref)
        t_ours, t_ref = time_steps(stepper(ours, ours_loss), stepper(ref, ref_loss),
                                   args.runs, args.warmup)
    return {"model": model, "archcc_s": t_ours, "hf_s": t_ref, "ratio": t_ours / t_ref,
            "memory": memory(model, args)}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.memory_child:
        model, side, checkpointing = args.memory_child
        print(json.dumps(memory_child(model, side, checkpointing == "True", args)))
        return
    results = [bench(model, args) for model in args.models]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    shapes = {"gpt2": f"{args.gpt2_layers} layers, B={args.batch}, T={args.seq}",
              "bert": f"base, B={args.batch}, T={args.bert_seq}"}
    print(f"training step (forward, backward, AdamW), CPU, {torch.get_num_threads()} threads")
    for r in results:
        print(f"{r['model']:5} ({shapes[r['model']]}): archcc {r['archcc_s']:.3f} s, "
              f"HF {r['hf_s']:.3f} s, ratio {r['ratio']:.2f}x")
        for name, m in r["memory"].items():
            print(f"    {name:12} peak RSS {m['peak_rss_mb']:8.0f} MB, saved for backward "
                  f"{m['saved_mb']:8.1f} MB")


if __name__ == "__main__":
    main()
