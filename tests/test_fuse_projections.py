"""fuse_projections: q/k/v (or k/v) linears of one input become one linear and a split, and
checkpoints with the separate linears still load (the generated pre-hook concatenates)."""

from __future__ import annotations

from pathlib import Path

import torch

import archcc
from archcc.api import compile_spec
from archcc.ir.passes.fuse_projections import fuse_projections
from tests.pass_graphs import DIM, B, GraphBuilder, S, T, check_pass

HERE = Path(__file__).parent


def test_three_projections_of_one_input_fuse():
    b = GraphBuilder()
    x = b.input("x", (B, T, DIM))
    q, k, v = (b.linear(n, x, "dim", "dim") for n in "qkv")
    module = b.done(b.op("add", b.op("add", q, k), v))
    result = check_pass("fuse_projections/qkv", module, fuse_projections)
    assert result.notes == ["M: q, k, v -> qkv: one linear + split"]
    assert list(module.submodules) == ["qkv"]
    assert module.load_fusions == {"qkv": ("q", "k", "v")}


def test_cross_attention_fuses_keys_and_values_only():
    b = GraphBuilder()
    x, memory = b.input("x", (B, T, DIM)), b.input("memory", (B, S, DIM))
    q = b.linear("q", x, "dim", "dim")
    k, v = b.linear("k", memory, "dim", "dim"), b.linear("v", memory, "dim", "dim")
    module = b.done(q, k, v)
    check_pass("fuse_projections/kv", module, fuse_projections)
    assert list(module.submodules) == ["q", "kv"]


def test_different_widths_or_a_second_call_stay_apart():
    b = GraphBuilder()
    x = b.input("x", (B, T, DIM))
    q, k = b.linear("q", x, "dim", "dim"), b.linear("k", x, "dim", "2 * dim")
    module = b.done(q, k)
    result = check_pass("fuse_projections/mismatch", module, fuse_projections)
    assert not result.changed and result.near_misses


def test_unfused_checkpoint_loads_into_the_fused_model(tmp_path):
    """-O0 has wq, wk, wv; -O2 has wqkv: the O0 state_dict loads strictly into O2."""
    spec = HERE / "specs" / "hand_attention.yaml"
    o0 = archcc.build(spec, out_dir=tmp_path / "o0", opt_level=0)
    o2 = archcc.build(spec, out_dir=tmp_path / "o2", opt_level=2)
    m0, m2 = o0.Model().eval(), o2.Model().eval()
    assert "wqkv.weight" in m2.state_dict() and "wq.weight" in m0.state_dict()
    m2.load_state_dict(m0.state_dict(), strict=True)
    (ids,) = o0.example_inputs(batch=2, T=6)
    with torch.no_grad():
        torch.testing.assert_close(m2(ids), m0(ids))


def test_projections_fuse_at_O2_only():
    o2, o1 = (compile_spec(HERE / "specs" / "hand_attention.yaml", opt_level=n) for n in (2, 1))
    assert "self.wqkv = nn.Linear(config.dim, 3 * config.dim)" in o2.source
    assert "_concat_on_load" in o2.source
    assert "self.wqkv" not in o1.source and "_concat_on_load" not in o1.source


def test_a_part_nobody_reads_keeps_its_place_in_the_unpacking(tmp_path):
    """y = a(x) unused, z = b(x) returned: -O2 fuses a and b, the dead part unpacks to `_`
    (it was `z = ab.split(...)`, returning the tuple)."""
    spec = tmp_path / "dead_part.yaml"
    spec.write_text("""\
archcc: 1
name: dead_part
params: {d: 16}
dims: {T: 8}
inputs:
  x: {shape: [B, T, d]}
model:
  layers:
    a: {op: linear, in: d, out: d}
    b: {op: linear, in: d, out: d}
    c: {op: linear, in: d, out: d}
  forward: |
    y = a(x)
    z = b(x)
    w = c(x)
    return z
""")
    o0 = archcc.build(spec, out_dir=tmp_path / "O0", opt_level=0)
    o2 = archcc.build(spec, out_dir=tmp_path / "O2", opt_level=2)
    assert "_, z, _ = abc.split(" in (tmp_path / "O2" / "dead_part.py").read_text()
    ours, fused = o0.Model().eval(), o2.Model().eval()
    fused.load_state_dict(ours.state_dict(), strict=True)  # the pre-hook concatenates
    x = torch.randn(2, 8, 16)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), ours(x))
