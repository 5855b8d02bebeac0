"""Train a character-level GPT on Shakespeare, on a CPU, in a few minutes.

The model is archcc's ``specs/gpt2.yaml`` at a small size: the generated module, started from
GPT-2's own initialisation (``init_weights()``), trained with AdamW on its ``param_groups()``
(no weight decay on biases and layer norms), then sampled with its ``generate()``::

    python examples/train_char_gpt.py                  # 300 steps: held-out loss ~2.4
    python examples/train_char_gpt.py --steps 2000 --n-layer 6 --n-embd 192   # better

The text is two plays bundled in ``examples/data/`` (public domain; see its README).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

import archcc

ROOT = Path(__file__).resolve().parents[1]
TEXT = ROOT / "examples" / "data" / "shakespeare.txt"


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--block", type=int, default=64, help="characters of context")
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=96)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CPU or CUDA)")
    parser.add_argument("--checkpointing", action="store_true",
                        help="recompute each block's activations in backward (less memory)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sample", type=int, default=300, help="characters to generate")
    parser.add_argument("--seed", type=int, default=1337)
    return parser.parse_args(argv)


class Characters:
    """The text as ids: one per distinct character, 90% for training, 10% held out."""

    def __init__(self, text: str):
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}
        ids = torch.tensor([self.index[c] for c in text])
        cut = int(0.9 * len(ids))
        self.train, self.val = ids[:cut], ids[cut:]

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor([[self.index[c] for c in text]])

    def decode(self, ids: torch.Tensor) -> str:
        return "".join(self.chars[i] for i in ids.tolist())

    def batch(self, split: torch.Tensor, size: int, block: int, device: str):
        """``size`` random windows: inputs and the same shifted by one character."""
        starts = torch.randint(len(split) - block - 1, (size,))
        x = torch.stack([split[s:s + block] for s in starts])
        y = torch.stack([split[s + 1:s + block + 1] for s in starts])
        return x.to(device), y.to(device)


def loss_of(model, x, y, bf16: bool) -> torch.Tensor:
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(x)  # (B, T, vocab)
    return F.cross_entropy(logits.float().flatten(0, 1), y.flatten())


@torch.no_grad()
def held_out_loss(model, data: Characters, args, batches: int = 20) -> float:
    model.eval()
    losses = [loss_of(model, *data.batch(data.val, args.batch, args.block, args.device),
                      args.bf16).item() for _ in range(batches)]
    model.train()
    return sum(losses) / len(losses)


@torch.no_grad()
def generate(gpt2, model, ids: torch.Tensor, args, generator) -> torch.Tensor:
    """Sample ``args.sample`` characters, each from the last ``args.block`` (the positions
    the model has learned), top-10 filtered by the module's own ``filter_logits``."""
    for _ in range(args.sample):
        logits = model(ids[:, -args.block:])[:, -1]  # (1, vocab)
        probs = gpt2.filter_logits(logits, top_k=10).softmax(dim=-1)
        ids = torch.cat([ids, torch.multinomial(probs, 1, generator=generator)], dim=1)
    return ids


def main(argv: list[str] | None = None) -> dict:
    """Train, print the held-out loss and a sample; returns them (the test reads these)."""
    args = options(argv)
    torch.manual_seed(args.seed)
    gpt2 = archcc.load(ROOT / "specs" / "gpt2.yaml")  # compiled once, then cached
    data = Characters(TEXT.read_text(encoding="utf-8"))
    config = gpt2.Config(vocab_size=len(data.chars), n_positions=args.block,
                         n_embd=args.n_embd, n_layer=args.n_layer, n_head=args.n_head,
                         dropout=args.dropout)
    model = gpt2.Model(config).to(args.device)  # GPT-2's initialisation, drawn in __init__
    gpt2.set_checkpointing(model, args.checkpointing)
    optimizer = torch.optim.AdamW(gpt2.param_groups(model, args.weight_decay), lr=args.lr,
                                  betas=(0.9, 0.99))
    warmup = max(1, args.steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(
        (step + 1) / warmup, 0.5 * (1 + math.cos(math.pi * step / args.steps))) + 0.01)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{len(data.chars)} characters, {len(data.train):,} for training")
    progress = tqdm(range(args.steps), desc="training", unit="step")
    for _ in progress:
        loss = loss_of(model, *data.batch(data.train, args.batch, args.block, args.device),
                       args.bf16)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        progress.set_postfix(loss=f"{loss.item():.3f}")
    val = held_out_loss(model, data, args)
    print(f"held-out loss {val:.3f} (a uniform guess: {math.log(len(data.chars)):.3f})")
    generator = torch.Generator(args.device).manual_seed(args.seed)
    prompt = data.encode("HAMLET:\n").to(args.device)
    sample = data.decode(generate(gpt2, model.eval(), prompt, args, generator)[0])
    print("-" * 60 + "\n" + sample + "\n" + "-" * 60)
    return {"train_loss": loss.item(), "val_loss": val, "sample": sample}


if __name__ == "__main__":
    main()
