"""IR passes: attention fusion (and its near misses), dead code, verify, opt-level equivalence."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import archcc
from archcc.api import compile_spec
from archcc.ir.graph import ModuleIR, add_node, module_text, new_graph
from archcc.ir.params import symbol
from archcc.ir.passes import optimize
from archcc.ir.passes.base import PassContext
from archcc.ir.passes.dead_code import eliminate_dead_code
from archcc.ir.passes.fuse_attention import fuse_attention
from archcc.ir.shapes import DimContext
from archcc.ir.verify import IRError, verify
from archcc.parser.expr import parse_expr

HERE = Path(__file__).parent
B, H, T, D = (symbol(n) for n in "BHTD")


def _attention_graph(extra_softmax_reader: bool = False) -> ModuleIR:
    """q, k, v -> matmul(q, k^T) * D**-0.5 -> softmax -> matmul(., v), built by hand."""
    g = new_graph("M")
    q, k, v = (add_node(g, "input", var=n, name=n) for n in "qkv")
    g.graph["inputs"] += [q, k, v]
    for node in (q, k, v):
        g.nodes[node].update(shape=(B, H, T, D), dtype="float32")
    kt = add_node(g, "transpose", [k], dim0=-2, dim1=-1)
    s = add_node(g, "matmul", [q, kt])
    c = add_node(g, "const", value=parse_expr("D ** -0.5"))
    s = add_node(g, "mul", [s, c])
    p = add_node(g, "softmax", [s], dim=-1)
    y = add_node(g, "matmul", [p, v], var="y")
    outs = [y, p] if extra_softmax_reader else [y]
    g.graph["output"] = add_node(g, "output", outs)
    shapes = {kt: (B, H, D, T), s: (B, H, T, T), c: (), p: (B, H, T, T), y: (B, H, T, D)}
    for node, shape in shapes.items():
        g.nodes[node].update(shape=shape, dtype="float32")
    return ModuleIR("M", "lowered", g)


def _run(module: ModuleIR) -> list[str]:
    ctx = PassContext(DimContext())
    result = fuse_attention(module, ctx)
    eliminate_dead_code(module, ctx)
    return result.notes + result.near_misses


def test_fusion_on_a_hand_built_graph():
    module = _attention_graph()
    notes = _run(module)
    assert notes == ["M.y -> M.y_1: sdpa"]
    text = module_text(module)
    assert "sdpa(%M.q, %M.k, %M.v, is_causal=False, scale=None, dropout=None)" in text
    assert "softmax" not in text and "transpose" not in text  # dead code removed


def test_softmax_read_twice_is_a_near_miss_and_stays_unfused():
    module = _attention_graph(extra_softmax_reader=True)
    notes = _run(module)
    assert notes == ["M.y: not fused: softmax output is used 2 times"]
    assert "sdpa" not in module_text(module)


def test_hand_written_attention_spec_fuses_like_op_attention():
    compiled = compile_spec(HERE / "specs" / "hand_attention.yaml")
    assert "F.scaled_dot_product_attention(q, k, v)" in compiled.source
    assert "softmax" not in compiled.source


def test_hand_written_attention_same_numbers_at_every_opt_level(tmp_path):
    spec = HERE / "specs" / "hand_attention.yaml"
    o0 = archcc.build(spec, out_dir=tmp_path / "o0", opt_level=0)
    assert "softmax" in (tmp_path / "o0" / "hand_attention.py").read_text()
    m0 = o0.Model().eval()
    (ids,) = o0.example_inputs(batch=3, T=9)
    for level in (1, 2):
        other = archcc.build(spec, out_dir=tmp_path / f"o{level}", opt_level=level).Model()
        other.eval().load_state_dict(m0.state_dict())
        with torch.no_grad():
            torch.testing.assert_close(m0(ids), other(ids))


@pytest.mark.parametrize("spec", ["gpt2", "bert", "vit", "transformer"])
def test_every_example_fuses_all_its_attention(spec):
    compiled = compile_spec(HERE.parent / "specs" / f"{spec}.yaml")
    assert "F.softmax" not in compiled.source  # generate() samples with tensor.softmax
    fused = [line for line in compiled.program.passes_log if line.startswith("fuse_attention")]
    assert fused and not any("not fused" in line for line in fused)


def test_verify_catches_a_broken_edge():
    compiled = compile_spec(HERE / "specs" / "hand_attention.yaml", opt_level=0)
    program = compiled.program
    g = program.model.graph
    node = next(n for n, d in g.nodes(data=True) if d["op"] == "matmul")
    g.nodes[node]["inputs"] = ["nowhere"]
    with pytest.raises(IRError, match="reads nowhere"):
        verify(program)


def test_opt_level_zero_runs_no_pass():
    compiled = compile_spec(HERE.parent / "specs" / "gpt2.yaml", opt_level=0)
    assert compiled.program.passes_log == []
    assert "F.softmax(att, dim=-1)" in compiled.source
    optimize(compiled.program, opt_level=1)
    assert any("sdpa" in line for line in compiled.program.passes_log)
