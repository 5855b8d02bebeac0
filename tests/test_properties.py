"""Property: for random attention facets and sizes, -O0 (unfused), -O1 (fused SDPA) and -O2
(also fused q/k/v projections) generated modules compute the same function."""

from __future__ import annotations

import itertools

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archcc

_COUNTER = itertools.count()


def _spec(heads: int, head_dim: int, causal: bool, cross: bool, masked: bool, fused: bool) -> str:
    inputs = ["  x: {shape: [B, T, dim]}"]
    args = ["x"]
    if cross:
        inputs.append("  m: {shape: [B, S, dim]}")
        args.append("m")
    if masked:
        inputs.append(f"  keep: {{shape: [B, {'S' if cross else 'T'}], dtype: bool}}")
        args.append("mask=keep")
    return "\n".join([
        "archcc: 1", "name: prop",
        f"params: {{dim: {heads * head_dim}, heads: {heads}}}",
        "inputs:", *inputs,
        "model:", "  layers:",
        f"    attn: {{op: attention, dim: dim, heads: heads, causal: {str(causal).lower()}, "
        f"cross: {str(cross).lower()}, qkv: {'fused' if fused else 'separate'}}}",
        f"  forward: return attn({', '.join(args)})", ""])


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(heads=st.integers(1, 4), head_dim=st.sampled_from([2, 4, 8]), causal=st.booleans(),
       cross=st.booleans(), masked=st.booleans(), fused=st.booleans(),
       t=st.integers(1, 7), s=st.integers(1, 7))
def test_fused_equals_unfused(tmp_path, heads, head_dim, causal, cross, masked, fused, t, s):
    folder = tmp_path / str(next(_COUNTER))
    folder.mkdir()
    spec = folder / "prop.yaml"
    spec.write_text(_spec(heads, head_dim, causal, cross, masked, fused))
    o0 = archcc.build(spec, out_dir=folder / "o0", opt_level=0)
    others = [archcc.build(spec, out_dir=folder / f"o{n}", opt_level=n) for n in (1, 2)]
    assert "scaled_dot_product_attention" in (folder / "o2" / "prop.py").read_text()
    m0 = o0.Model().eval()
    models = [o.Model().eval() for o in others]
    for model in models:  # -O2 may have fused q/k/v: the pre-hook concatenates on load
        model.load_state_dict(m0.state_dict())
    inputs = list(o0.example_inputs(batch=2, T=t, S=s))
    if masked:
        inputs[-1] = torch.rand(inputs[-1].shape) > 0.4
        inputs[-1][:, 0] = True  # every query sees at least one key
    with torch.no_grad():
        for model in models:
            torch.testing.assert_close(model(*inputs), m0(*inputs))
