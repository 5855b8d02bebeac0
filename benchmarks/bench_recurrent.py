"""CPU benchmark: the generated LSTM language model vs the same model written by hand.

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_recurrent.py --runs 20
    .venv/bin/python benchmarks/bench_recurrent.py --batch 20 --seq 35 --threads 2 --json

The reference is PyTorch's examples/word_language_model ``RNNModel`` (nn.Embedding ->
nn.LSTM -> tied nn.Linear) at the spec's default size (Zaremba et al. "medium": 10k vocab,
650 wide, 2 layers). Weights are carried over with ``convert_state_dict(..., "torch")``;
outputs are checked with ``assert_close`` before timing, and timed runs alternate ours/ref so
machine noise hits both equally. Target: ratio (ours / ref) <= 1.05.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import archcc

ROOT = Path(__file__).resolve().parent.parent
SIZES = dict(vocab_size=10000, n_embd=650, n_layer=2, dropout=0.5)


class RNNModel(nn.Module):
    """examples/word_language_model: encoder, rnn, decoder (batch-first, tied)."""

    def __init__(self, ntoken: int, ninp: int, nlayers: int, dropout: float):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, ninp, nlayers, dropout=dropout, batch_first=True)
        self.decoder = nn.Linear(ninp, ntoken)
        self.decoder.weight = self.encoder.weight

    def forward(self, input):
        output, (h, c) = self.rnn(self.drop(self.encoder(input)))
        return self.decoder(self.drop(output)), h, c


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20, help="timed runs per model (median reported)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=20, help="the paper's batch size")
    p.add_argument("--seq", type=int, default=35, help="the paper's BPTT length")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads value")
    p.add_argument("--json", action="store_true")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as out:
        gen = archcc.build(ROOT / "specs" / "lstm_lm.yaml", out_dir=out)
    ref = RNNModel(SIZES["vocab_size"], SIZES["n_embd"], SIZES["n_layer"], SIZES["dropout"])
    ours = gen.Model(gen.Config(**SIZES))
    ours.load_state_dict(gen.convert_state_dict(ref.state_dict(), "torch"), strict=True)
    ours.eval(), ref.eval()
    (ids,) = gen.example_inputs(batch=args.batch, T=args.seq)
    times: dict[str, list[float]] = {"ours": [], "ref": []}
    with torch.inference_mode():
        for a, b in zip(ours(ids), ref(ids), strict=True):
            torch.testing.assert_close(a, b)
        for _ in range(args.warmup):
            ours(ids), ref(ids)
        for _ in range(args.runs):
            for name, model in (("ours", ours), ("ref", ref)):
                start = time.perf_counter()
                model(ids)
                times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    result = {"model": "lstm_lm", "batch": args.batch, "seq": args.seq,
              "threads": torch.get_num_threads(), "ours_ms": round(med["ours"], 3),
              "ref_ms": round(med["ref"], 3), "ratio": round(med["ours"] / med["ref"], 3)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"lstm_lm forward, batch {args.batch} x T {args.seq}, {result['threads']} threads: "
              f"generated {result['ours_ms']:.2f} ms, reference {result['ref_ms']:.2f} ms, "
              f"ratio {result['ratio']:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
