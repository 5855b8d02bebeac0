"""Property: random hand-written attention subgraphs, in every form fuse_attention knows
(layout x scale x mask x dropout x transpose spelling), compute the same at -O0, -O1, -O2."""

from __future__ import annotations

import itertools

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archcc

_COUNTER = itertools.count()
SCALES = {"mul": "att = matmul(q, {kt}) * head_dim ** -0.5",
          "div": "att = matmul(q, {kt}) / head_dim ** 0.5",
          "prescaled": "att = matmul(q * head_dim ** -0.5, {kt})",
          "custom": "att = matmul(q, {kt}) * 0.3",
          "none": "att = matmul(q, {kt})"}
MASKS = {"none": [], "additive": ["att = att + bias"],
         "fill": ["att = masked_fill(att, hide, -inf)"],
         "causal_where": ["att = where(causal_mask(q, k), att, -inf)"],
         "causal_fill": ["att = masked_fill(att, logical_not(causal_mask(q, k)), -inf)"],
         "causal_and_fill": ["att = where(causal_mask(q, k), att, -inf)",
                             "att = masked_fill(att, hide, -inf)"]}
TRANSPOSES = {"last_two": "transpose(k, -2, -1)", "swapped": "transpose(k, -1, -2)",
              "positive": "transpose(k, {a}, {b})"}


def _spec(layout: str, scale: str, mask: str, dropout: bool, spelling: str) -> str:
    batch = ["B", "heads", "T"] if layout == "per_head" else ["B", "T"]
    rank = len(batch) + 1
    shape = ", ".join([*batch, "head_dim"])
    inputs = [f"  {n}: {{shape: [{shape}]}}" for n in "qkv"]
    if mask in ("additive",):
        inputs.append(f"  bias: {{shape: [{', '.join(batch[:-1])}, T, T]}}")
    if mask in ("fill", "causal_and_fill"):
        inputs.append(f"  hide: {{shape: [{', '.join(batch[:-1])}, T, T], dtype: bool}}")
    kt = TRANSPOSES[spelling].format(a=rank - 2, b=rank - 1)
    body = [SCALES[scale].format(kt=kt), *MASKS[mask], "att = softmax(att)"]
    if dropout:
        body.append("att = dropout(att, p)")
    body.append("return matmul(att, v)")
    return "\n".join(["archcc: 1", "name: prop", "params: {heads: 2, head_dim: 4, p: 0.2}",
                      "inputs:", *inputs, "model:", "  forward: |",
                      *[f"    {line}" for line in body], ""])


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layout=st.sampled_from(["per_head", "batched"]), scale=st.sampled_from(sorted(SCALES)),
       mask=st.sampled_from(sorted(MASKS)), dropout=st.booleans(),
       spelling=st.sampled_from(sorted(TRANSPOSES)), t=st.integers(1, 6), seed=st.integers(0, 99))
def test_every_form_same_at_every_level(tmp_path, layout, scale, mask, dropout, spelling, t,
                                        seed):
    folder = tmp_path / str(next(_COUNTER))
    folder.mkdir()
    spec = folder / "prop.yaml"
    spec.write_text(_spec(layout, scale, mask, dropout, spelling))
    modules = [archcc.build(spec, out_dir=folder / f"o{n}", opt_level=n) for n in (0, 1, 2)]
    fused = (folder / "o2" / "prop.py").read_text()
    assert "scaled_dot_product_attention" in fused and "F.softmax(" not in fused
    torch.manual_seed(seed)
    inputs = list(modules[0].example_inputs(batch=2, T=t))
    for i, x in enumerate(inputs):
        if x.dtype == torch.bool:  # hide some keys, never all of a row's
            inputs[i] = torch.rand(x.shape) > 0.6
            inputs[i][..., 0] = False
    with torch.no_grad():
        outs = [m.Model().eval()(*inputs) for m in modules]
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0])
