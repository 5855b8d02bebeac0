"""fold_constants, remove_noops, cse, dead_code on small hand-built graphs: golden text of
the graph before and after each (tests/golden/passes/, ARCHCC_UPDATE_GOLDEN=1 re-records)."""

from __future__ import annotations

import pytest

from archcc.api import compile_spec
from archcc.ir.graph import Submodule, add_node, module_text
from archcc.ir.passes import PASS_NAMES
from archcc.ir.passes.cse import eliminate_common_subexpressions
from archcc.ir.passes.dead_code import eliminate_dead_code
from archcc.ir.passes.fold_constants import fold_constants, fold_expr
from archcc.ir.passes.remove_noops import remove_noops
from archcc.ir.verify import verify
from archcc.parser.expr import Num, parse_expr, render
from tests.pass_graphs import DIM, B, D, GraphBuilder, H, T, check_pass


@pytest.mark.parametrize(("text", "folded"), [
    ("2 * 8", "16"), ("dim * 1", "dim"), ("0 + dim", "dim"), ("dim // (2 * 2)", "dim // 4"),
    ("64 ** -0.5", "0.125"), ("head_dim ** -0.5", "head_dim ** (-0.5)"), ("3 * dim", "3 * dim"),
])
def test_fold_expr_evaluates_literal_arithmetic_only(text, folded):
    assert render(fold_expr(parse_expr(text)), str) == folded


def test_fold_constants():
    b = GraphBuilder()
    x = b.input("x", (B, T, DIM))
    y = b.op("mul", b.op("mul", x, b.const("2 * 8")), b.const("head_dim ** -0.5"))
    y = b.op("add", b.op("mul", y, b.const("1")), b.const("0"))
    sizes = (parse_expr("1 * heads"), parse_expr("dim // heads"))
    parts = b.op("unflatten", y, dim=-1, sizes=sizes)
    module = b.done(parts)
    result = check_pass("fold_constants/scale_and_units", module, fold_constants)
    assert result.changed
    text = module_text(module)
    assert "16 * head_dim ** (-0.5)" in text and "sizes=(heads, dim // heads)" in text


def test_remove_noops():
    b = GraphBuilder()
    x = b.input("x", (B, H, T, D))
    t = b.op("transpose", b.op("transpose", x, dim0=1, dim1=2), dim0=2, dim1=1)
    d = b.op("dropout", t, p=Num(0))
    r = b.op("flatten", b.op("unflatten", d, dim=-1, sizes=(parse_expr("2"), parse_expr("D / 2"))),
             start=3)
    kept = b.op("dropout", b.op("identity", r), p=parse_expr("p"))
    module = b.done(kept)
    result = check_pass("remove_noops/chain", module, remove_noops)
    assert result.changed
    assert module.graph.nodes[module.graph.nodes[kept]["inputs"][0]]["op"] == "input"


def test_remove_noops_drops_a_zero_dropout_submodule():
    b = GraphBuilder()
    x = b.input("x", (B, T, DIM))
    b.module.submodules["drop"] = Submodule("drop", "dropout", {"p": Num(0)})
    call = add_node(b.g, "call", [x], var="drop", stmt=1, target="drop", kwargs=())
    b.g.nodes[call].update(shape=(B, T, DIM), dtype="float32")
    module = b.done(b.op("relu", call))
    check_pass("remove_noops/dropout_submodule", module, remove_noops)
    assert "drop" not in module.submodules


def test_cse_merges_equal_work_but_not_random_work():
    b = GraphBuilder()
    k = b.input("k", (B, H, T, D))
    a1, a2 = (b.op("transpose", k, dim0=-2, dim1=-1) for _ in range(2))
    s1, s2 = (b.op("matmul", k, a) for a in (a1, a2))
    d1, d2 = (b.op("dropout", s1, p=parse_expr("p")) for _ in range(2))
    module = b.done(b.op("add", s1, s2), d1, d2)
    result = check_pass("cse/transposes", module, eliminate_common_subexpressions)
    ops = [d["op"] for _, d in module.graph.nodes(data=True)]
    assert ops.count("transpose") == 1 and ops.count("matmul") == 1
    assert ops.count("dropout") == 2
    assert result.notes


def test_dead_code():
    b = GraphBuilder()
    x = b.input("x", (B, T, DIM))
    unused = b.op("relu", b.op("transpose", x, dim0=1, dim1=2))
    module = b.done(b.op("silu", x))
    result = check_pass("dead_code/unused_chain", module, eliminate_dead_code, dce=False)
    assert unused not in module.graph and result.notes == ["M: removed 2 unused node(s)"]


def test_pipeline_on_a_spec_reports_each_pass():
    compiled = compile_spec("tests/specs/attention/causal_masked_fill.yaml")
    passes = {line.split(":")[0] for line in compiled.program.passes_log}
    assert {"fuse_attention", "dead_code"} <= passes


@pytest.mark.parametrize("stop", PASS_NAMES)
def test_ir_verifies_after_every_pass(stop):
    """optimize() verifies at exit, so stopping after each pass checks each pass's output."""
    compiled = compile_spec("tests/specs/hand_attention.yaml", stop_after=stop)
    verify(compiled.program)
    if stop == "fuse_projections":
        assert "wqkv" in compiled.program.model.submodules
