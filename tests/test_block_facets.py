"""Facets the four parity specs do not cover (RMSNorm, SwiGLU, separate bias-free q/k/v,
activation layers), against a reference written from the equations."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archcc

SPEC = Path(__file__).parent / "specs" / "tiny_llama.yaml"
VOCAB, DIM, HEADS, HIDDEN, LAYERS, EPS = 64, 32, 4, 88, 2, 1e-6


def rms_norm(x, weight):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * weight


class RefBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn_norm, self.ffn_norm = nn.Parameter(torch.rand(DIM)), nn.Parameter(torch.rand(DIM))
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(DIM, DIM, bias=False) for _ in range(4))
        self.w1, self.w3 = nn.Linear(DIM, HIDDEN, bias=False), nn.Linear(DIM, HIDDEN, bias=False)
        self.w2 = nn.Linear(HIDDEN, DIM, bias=False)

    def forward(self, x):
        b, t, _ = x.shape
        h = rms_norm(x, self.attn_norm)
        q, k, v = (w(h).view(b, t, HEADS, -1).transpose(1, 2) for w in (self.wq, self.wk, self.wv))
        scores = q @ k.transpose(-1, -2) / (DIM // HEADS) ** 0.5
        scores = scores + torch.full((t, t), float("-inf")).triu(1)
        y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, DIM)
        x = x + self.wo(y)
        h = rms_norm(x, self.ffn_norm)
        return x + self.w2(F.silu(self.w1(h)) * self.w3(h))


class Reference(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)
        self.blocks = nn.ModuleList(RefBlock() for _ in range(LAYERS))
        self.norm = nn.Parameter(torch.rand(DIM))
        self.head = nn.Linear(DIM, VOCAB, bias=False)

    def forward(self, ids):
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x)
        return self.head(torch.tanh(rms_norm(x, self.norm)))


def _state_dict(ref: Reference) -> dict:
    """Norm weights are bare Parameters in the reference; name them like module weights."""
    sd = ref.state_dict()
    return {(k + ".weight" if "norm" in k else k): v for k, v in sd.items()}


@pytest.mark.parametrize("opt_level", [0, 1, 2])
def test_matches_reference(tmp_path, opt_level):
    module = archcc.build(SPEC, out_dir=tmp_path, opt_level=opt_level)
    ref = Reference().eval()
    ours = module.Model().eval()
    ours.load_state_dict(module.convert_state_dict(_state_dict(ref), "ref"), strict=True)
    (ids,) = module.example_inputs(batch=3)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), ref(ids))


def test_generated_names_the_facets(tmp_path):
    archcc.build(SPEC, out_dir=tmp_path)
    source = (tmp_path / "tiny_llama.py").read_text()
    assert "class SwiGLU(nn.Module):" in source
    assert "nn.RMSNorm(config.dim, eps=config.eps)" in source
    assert "CausalSelfAttention(config.dim, config.heads, bias=False)" in source
    assert "self.act = nn.Tanh()" in source
