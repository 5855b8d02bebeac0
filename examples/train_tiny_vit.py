"""Train a tiny Vision Transformer on synthetic images, on a CPU, in a minute or two.

The model is archcc's ``specs/vit.yaml`` at 32 x 32 pixels: the generated module, started
from ViT's own initialisation, trained with AdamW on its ``param_groups()``. The images are
drawn here, so nothing is downloaded: sine gratings in one of four orientations (0, 45, 90,
135 degrees) with a random frequency, phase, colour and noise; the label is the orientation::

    python examples/train_tiny_vit.py               # 200 steps: held-out loss ~0.02
    python examples/train_tiny_vit.py --steps 500 --layers 6
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
CLASSES = ("0 deg", "45 deg", "90 deg", "135 deg")


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--image", type=int, default=32)
    parser.add_argument("--patch", type=int, default=4)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def gratings(count: int, size: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """``count`` RGB images (count, 3, size, size) in [-1, 1] and their orientation labels."""
    labels = torch.randint(len(CLASSES), (count,), generator=generator)
    angle = labels.float() * math.pi / len(CLASSES)
    freq = 2 * math.pi * (2 + 4 * torch.rand(count, generator=generator)) / size
    phase = 2 * math.pi * torch.rand(count, generator=generator)
    side = torch.arange(size, dtype=torch.float32)
    y, x = torch.meshgrid(side, side, indexing="ij")  # (size, size)
    along = x * angle.cos()[:, None, None] + y * angle.sin()[:, None, None]
    wave = torch.sin(freq[:, None, None] * along + phase[:, None, None])  # (count, size, size)
    colour = 0.5 + 0.5 * torch.rand(count, 3, 1, 1, generator=generator)
    noise = 0.3 * torch.randn(count, 3, size, size, generator=generator)
    return (colour * wave[:, None] + noise).clamp(-1, 1), labels


@torch.no_grad()
def evaluate(model, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(loss, accuracy) on held-out images."""
    model.eval()
    _, logits = model(images)
    model.train()
    right = (logits.argmax(-1) == labels).float().mean().item()
    return F.cross_entropy(logits, labels).item(), right


def main(argv: list[str] | None = None) -> dict:
    """Train, print the held-out loss and accuracy; returns them (the test reads these)."""
    args = options(argv)
    torch.manual_seed(args.seed)
    vit = archcc.load(ROOT / "specs" / "vit.yaml")
    config = vit.Config(image_size=args.image, patch_size=args.patch, hidden_size=args.width,
                        num_hidden_layers=args.layers, num_attention_heads=args.heads,
                        intermediate_size=4 * args.width, num_labels=len(CLASSES))
    model = vit.Model(config).to(args.device)  # ViT's initialisation, drawn in __init__
    optimizer = torch.optim.AdamW(vit.param_groups(model, args.weight_decay), lr=args.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=args.steps,
                                                   pct_start=0.1)
    data = torch.Generator().manual_seed(args.seed)
    test_images, test_labels = gratings(512, args.image, torch.Generator().manual_seed(12345))
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{len(CLASSES)} classes of {args.image} x {args.image} gratings")
    progress = tqdm(range(args.steps), desc="training", unit="step")
    for _ in progress:
        images, labels = gratings(args.batch, args.image, data)
        _, logits = model(images.to(args.device))  # (hidden states, class logits)
        loss = F.cross_entropy(logits, labels.to(args.device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        progress.set_postfix(loss=f"{loss.item():.3f}")
    val_loss, held_out = evaluate(model, test_images.to(args.device),
                                  test_labels.to(args.device))
    print(f"held-out loss {val_loss:.3f}, accuracy {held_out:.3f} "
          f"(chance: {math.log(len(CLASSES)):.3f}, {1 / len(CLASSES):.2f})")
    return {"train_loss": loss.item(), "val_loss": val_loss, "accuracy": held_out}


if __name__ == "__main__":
    main()
