"""The wiring language says what PyTorch says: tensor functions, comparisons, slicing with
steps, ``...`` and ``None``, casts and tuple assignment compute what torch computes, in
values and dtypes, at every opt level; misuse is a located error at the call."""

from __future__ import annotations

import pytest
import torch

import archcc
from archcc.api import compile_spec
from archcc.diagnostics import ArchccError

HEADER = """archcc: 1
name: wiring
params: {n: 8, h: 2}
dims: {T: 6}
inputs:
  x: {shape: [B, T, n]}
  idx: {shape: [B, T, 3], dtype: int64, high: 8}
model:
  forward: |
"""
PROGRAM = """\
    a, b = chunk(x, 2, dim=-1)
    s = einsum("btd,bsd->bts", a, b)
    g = gather(x, -1, idx)
    v, i = topk(x, 3)
    r = reshape(x, -1, h, n // h)
    p = permute(r, 0, 2, 1)
    st = stack(a, b, dim=0)
    c = cumsum(to(x > 0, int64), dim=1)
    w = where(x >= 0, x, zeros_like(x))
    m = x[..., ::2, None]
    k = arange(x, dim=1) <= 3
    z = index_select(x, 1, arange(x, dim=1))
    f = full_like(x, 0.5) * to(x != 0, float16)
    sl = stack([a, b], dim=1)
    cl = cat([b, a], dim=-1)
    return s, g, v, i, p, st, c, w, m, k, z, f, sl, cl
"""


def _reference(x: torch.Tensor, idx: torch.Tensor) -> list[torch.Tensor]:
    a, b = x.chunk(2, dim=-1)
    return [torch.einsum("btd,bsd->bts", a, b), torch.gather(x, -1, idx), *x.topk(3),
            x.reshape(-1, 2, 4).permute(0, 2, 1), torch.stack([a, b]),
            (x > 0).long().cumsum(1), torch.where(x >= 0, x, torch.zeros_like(x)),
            x[..., ::2, None], torch.arange(x.shape[1]) <= 3,
            x.index_select(1, torch.arange(x.shape[1])),
            torch.full_like(x, 0.5) * (x != 0).half(), torch.stack([a, b], dim=1),
            torch.cat([b, a], dim=-1)]


@pytest.mark.parametrize("level", [0, 2])
def test_tensor_functions_compute_what_torch_computes(tmp_path, level):
    spec = tmp_path / "wiring.yaml"
    spec.write_text(HEADER + PROGRAM)
    module = archcc.build(spec, out_dir=tmp_path / "out", opt_level=level)
    x, idx = module.example_inputs()
    for got, want in zip(module.Model(module.Config())(x, idx), _reference(x, idx),
                         strict=True):
        assert got.dtype == want.dtype and torch.equal(got, want)


def test_an_unused_part_is_still_unpacked(tmp_path):
    spec = tmp_path / "wiring.yaml"
    spec.write_text(HEADER + "    a, b = chunk(x, 2)\n    return a\n")
    source = compile_spec(spec).source
    assert "a, _ = x.chunk(2, dim=-1)" in source


def test_lstm_state_ports_unpack_the_pair(tmp_path):
    """``out, (h, c) = lstm(x); return h`` returns h, not the (h, c) pair."""
    spec = tmp_path / "lstm.yaml"
    spec.write_text("archcc: 1\nname: lstm_port\nparams: {d: 8}\ndims: {T: 5}\n"
                    "inputs:\n  x: {shape: [B, T, d]}\nmodel:\n  layers:\n"
                    "    lstm: {op: lstm, in: d, hidden: d}\n  forward: |\n"
                    "    out, (h, c) = lstm(x)\n    return h, c\n")
    module = archcc.build(spec, out_dir=tmp_path / "out")
    model = module.Model(module.Config())
    (x,) = module.example_inputs()
    h, c = model(x)
    _, (h_ref, c_ref) = model.lstm(x)
    assert torch.equal(h, h_ref) and torch.equal(c, c_ref)


@pytest.mark.parametrize(("line", "message"), [
    ('y = einsum("bt,bs", x, x)', "einsum needs an equation"),
    ('y = einsum("btd,bsd->btq", x, x)', "einsum output letter 'q' is in no input"),
    ("y = reshape(x, 5, 7)", "cannot reshape"),
    ("v, i = topk(x, 9)", "exceeds the dim's size"),
    ("a, b, c = chunk(x, 3)", "does not split into 3 equal parts"),
    ("a, b, c = chunk(x, 2)", "gives 2 values, not 3"),
    ("y = gather(x, -1, x)", "gather needs int64 indices"),
    ("y = to(x, float64)", "to() casts to a dtype"),
    ("y = x[::0]", "slice step must be positive"),
    ("y = x[..., ..., 0]", "only one ..."),
    ("y = stack(x, idx)", "stack needs equal shapes"),
    ("y = cumsum(x, axis=1)", "cumsum() takes cumsum(x, dim=d), not keyword 'axis'"),
    ("y = gelu(idx)", "gelu needs a floating-point tensor, got int64"),
])
def test_misuse_is_a_located_error(tmp_path, line, message):
    spec = tmp_path / "wiring.yaml"
    spec.write_text(HEADER + f"    {line}\n    return x\n")
    with pytest.raises(ArchccError) as info:
        compile_spec(spec)
    diag = info.value.diagnostics[0]
    assert message in diag.message, diag.message
    assert diag.loc.line == 10


def test_comparisons_work_in_params_too(tmp_path):
    spec = tmp_path / "wiring.yaml"
    spec.write_text(HEADER.replace("params: {n: 8, h: 2}", "params: {n: 8, h: 2, big: n > 4}")
                    + "    return x\n")
    assert compile_spec(spec).program.params["big"] is True
