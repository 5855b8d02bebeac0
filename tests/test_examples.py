"""The training examples learn: a few dozen CPU steps each, loss below a stated threshold.

The full runs (the examples' defaults) take a few minutes; these are CI-sized."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

pytest.importorskip("tqdm")
ROOT = Path(__file__).resolve().parents[1]


def _example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_char_gpt_learns_shakespeare():
    """60 steps of a 2-layer, 64-wide GPT: from ln(66) = 4.19 nats per character (a uniform
    guess) to below 3.1 held out, which needs at least the characters' frequencies."""
    result = _example("train_char_gpt").main(
        ["--steps", "60", "--batch", "8", "--n-layer", "2", "--n-embd", "64", "--sample", "40"])
    assert result["val_loss"] < 3.1
    assert result["sample"].startswith("HAMLET:\n") and len(result["sample"]) == 48


def test_tiny_vit_learns_orientations():
    """60 steps of a 2-layer, 32-wide ViT: held-out loss below 1.0 (chance: ln 4 = 1.39),
    and nine images in ten right."""
    result = _example("train_tiny_vit").main(["--steps", "60", "--width", "32", "--layers", "2"])
    assert result["val_loss"] < 1.0 < math.log(4)
    assert result["accuracy"] > 0.9
