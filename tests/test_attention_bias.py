"""attn(x, bias=b) takes any additive score bias that broadcasts to (B, heads, T, S), as
PyTorch's scaled_dot_product_attention does, at every optimisation level."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import archcc
from archcc.diagnostics import ArchccError

SPEC = """\
archcc: 1
name: biased
params: {{d: 16, h: 4}}
dims: {{T: 8}}
inputs:
  x: {{shape: [B, T, d]}}
  b: {{shape: {shape}}}
model:
  layers:
    attn: {{op: attention, dim: d, heads: h}}
  forward: |
    return attn(x, bias=b)
"""


def _reference(model, x, bias):
    """The same attention written with torch: fused qkv, SDPA with the bias as attn_mask."""
    attn = model.attn
    q, k, v = attn.qkv(x).split(16, dim=2)
    q, k, v = (t.unflatten(-1, (4, 4)).transpose(1, 2) for t in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    return attn.proj(y.transpose(1, 2).flatten(2))


@pytest.mark.parametrize("shape, size", [
    ("[1, h, T, T]", (1, 4, 8, 8)),
    ("[B, 1, 1, T]", (3, 1, 1, 8)),
    ("[B, h, T, T]", (3, 4, 8, 8)),
    ("[T, T]", (8, 8)),
    ("[1, T]", (1, 8)),
])
@pytest.mark.parametrize("opt_level", [0, 2])
def test_a_broadcasting_bias_matches_sdpa(tmp_path, shape, size, opt_level):
    path = tmp_path / "biased.yaml"
    path.write_text(SPEC.format(shape=shape))
    module = archcc.build(path, out_dir=tmp_path / f"O{opt_level}", opt_level=opt_level)
    torch.manual_seed(0)
    model = module.Model().eval()
    x, bias = torch.randn(3, 8, 16), torch.randn(*size)
    with torch.no_grad():
        torch.testing.assert_close(model(x, bias), _reference(model, x, bias))


@pytest.mark.parametrize("shape", ["[2, T, T]", "[T, 3]", "[1, 1, 1, T, T]"])
def test_a_bias_that_does_not_broadcast_is_a_located_error(tmp_path, shape):
    path = tmp_path / "biased.yaml"
    path.write_text(SPEC.format(shape=shape))
    with pytest.raises(ArchccError) as err:
        archcc.build(path, out_dir=tmp_path / "out")
    text = str(err.value)
    assert "biased.yaml:12:12: error: model.forward: attn: bias must broadcast to" in text
    assert "(B, h, T, T)" in text and "counted from the right" in text
