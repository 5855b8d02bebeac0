"""Hand-written attention in every form PyTorch Inductor's fuse_attention patterns know
(tests/specs/attention/*.yaml) becomes one SDPA call: the same call `op: attention` gets,
and the same numbers as the unfused -O0 code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import archcc
import archcc.cli
from archcc.api import compile_spec
from archcc.ir.graph import ModuleIR, add_node, new_graph
from archcc.ir.params import symbol
from archcc.ir.passes.base import PassContext
from archcc.ir.passes.fuse_attention import fuse_attention
from archcc.ir.shapes import DimContext
from archcc.parser.expr import parse_expr

FORMS = Path(__file__).parent / "specs" / "attention"
SDPA = "F.scaled_dot_product_attention"

# form -> the exact arguments of its generated SDPA call
EXPECTED = {
    "mul_scale": "q, k, v",
    "div_scale": "q, k, v",
    "prescaled_q": "q, k, v",
    "tokens_first": "q, k, v",
    "causal_where": "q, k, v, is_causal=True",
    "causal_masked_fill": "q, k, v, is_causal=True",
    "padding_where": "q, k, v, attn_mask=keep",
    "bool_masked_fill": "q, k, v, attn_mask=~hide",
    "additive_mask": "q, k, v, attn_mask=bias",
    "dropout": "q, k, v, dropout_p=self.config.p if self.training else 0.0",
    "batched": "q, k, v, scale=1",
    "keys_transposed": "q, kt.transpose(-2, -1), v",
    "windowed": "q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1), "
                "attn_mask=bias.expand(q.shape[0], q.shape[1], -1, -1, -1).flatten(0, 1)",
}
# forms `op: attention` can also express: (causal, masked) facets of the reference spec
REFERENCE = {"mul_scale": (False, False), "div_scale": (False, False),
             "prescaled_q": (False, False), "tokens_first": (False, False),
             "causal_where": (True, False), "causal_masked_fill": (True, False),
             "padding_where": (False, True)}


def sdpa_args(source: str) -> str:
    """The argument text of the one SDPA call in ``source``, whitespace-normalised."""
    starts = [m.end() for m in re.finditer(re.escape(SDPA) + r"\(", source)]
    assert len(starts) == 1, starts
    depth, end = 1, starts[0]
    while depth:  # to the parenthesis that closes the call
        depth += {"(": 1, ")": -1}.get(source[end], 0)
        end += 1
    return " ".join(source[starts[0]:end - 1].split()).rstrip(",")


def _reference_spec(tmp_path: Path, causal: bool, masked: bool) -> Path:
    mask = ["  mask: {shape: [B, T], dtype: bool}"] if masked else []
    spec = tmp_path / "ref.yaml"
    spec.write_text("\n".join([
        "archcc: 1", "name: ref", "params: {dim: 16, heads: 2}", "inputs:",
        "  x: {shape: [B, T, dim]}", *mask, "model:", "  layers:",
        f"    attn: {{op: attention, dim: dim, heads: heads, causal: {str(causal).lower()}}}",
        f"  forward: return attn(x{', mask=mask' if masked else ''})", ""]))
    return spec


def test_every_form_has_a_spec():
    assert sorted(p.stem for p in FORMS.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("form", sorted(EXPECTED))
def test_form_fuses_to_the_expected_call(form):
    compiled = compile_spec(FORMS / f"{form}.yaml")
    assert sdpa_args(compiled.source) == EXPECTED[form]
    assert "F.softmax(" not in compiled.source and ".masked_fill(" not in compiled.source
    assert not any("not fused" in line for line in compiled.program.passes_log)


@pytest.mark.parametrize("form", sorted(REFERENCE))
def test_form_gets_the_same_call_as_op_attention(tmp_path, form):
    """`op: attention` always passes its dropout; hand forms without dropout do not."""
    reference = sdpa_args(compile_spec(_reference_spec(tmp_path, *REFERENCE[form])).source)
    reference = reference.replace(", dropout_p=self.dropout if self.training else 0.0", "")
    assert sdpa_args(compile_spec(FORMS / f"{form}.yaml").source) == reference


def _inputs(module, form: str) -> list[torch.Tensor]:
    inputs = list(module.example_inputs(batch=2, T=5))
    for i, x in enumerate(inputs):
        if x.dtype == torch.bool:  # every query must see at least one key
            x = torch.rand(x.shape) > 0.5
            x[..., 0] = form != "bool_masked_fill"
            inputs[i] = x
    return inputs


@pytest.mark.parametrize("form", sorted(EXPECTED))
def test_form_computes_what_it_computed_unfused(tmp_path, form):
    o0 = archcc.build(FORMS / f"{form}.yaml", out_dir=tmp_path / "o0", opt_level=0)
    o2 = archcc.build(FORMS / f"{form}.yaml", out_dir=tmp_path / "o2", opt_level=2)
    assert SDPA not in (tmp_path / "o0" / f"{form}.py").read_text()
    inputs = _inputs(o0, form)
    with torch.no_grad():
        torch.testing.assert_close(o2.Model().eval()(*inputs), o0.Model().eval()(*inputs))


# ----------------------------------------------------------------------- near misses

B, H, T, D = (symbol(n) for n in "BHTD")


def _graph(scores_op: str = "mul", fill: str | None = None, second_reader: str | None = None):
    """q, k, v (B, H, T, D) -> matmul(q, k^T) <scale> [masked_fill] -> softmax -> @ v."""
    g = new_graph("M")
    nodes = {}
    for n in "qkv":
        nodes[n] = add_node(g, "input", var=n, name=n)
        g.graph["inputs"].append(nodes[n])
    nodes["kt"] = add_node(g, "transpose", [nodes["k"]], dim0=-2, dim1=-1)
    nodes["s"] = add_node(g, "matmul", [nodes["q"], nodes["kt"]])
    scale = nodes["v"] if scores_op == "tensor" else add_node(g, "const",
                                                              value=parse_expr("D ** -0.5"))
    nodes["scaled"] = add_node(g, "mul", [nodes["s"], scale])
    scores = nodes["scaled"]
    if fill is not None:
        nodes["mask"] = add_node(g, "input", var="mask", name="mask")
        g.graph["inputs"].append(nodes["mask"])
        scores = add_node(g, "masked_fill", [scores, nodes["mask"]], value=fill, keep=False)
    nodes["p"] = add_node(g, "softmax", [scores], dim=-1)
    nodes["y"] = add_node(g, "matmul", [nodes["p"], nodes["v"]], var="y")
    outs = [nodes["y"]] + ([nodes[second_reader]] if second_reader else [])
    g.graph["output"] = add_node(g, "output", outs)
    shapes = {"kt": (B, H, D, T), "mask": (B, H, T, T)}
    for key, node in nodes.items():
        g.nodes[node].update(shape=shapes.get(key, (B, H, T, D) if key in "qkvy" else
                                              (B, H, T, T)),
                             dtype="bool" if key == "mask" else "float32")
    g.nodes[scale].update(shape=(B, H, T, D) if scores_op == "tensor" else (), dtype="float32")
    return ModuleIR("M", "lowered", g)


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"second_reader": "p"}, "softmax output is used 2 times"),
    ({"second_reader": "s"}, "attention scores is used 2 times"),
    ({"second_reader": "scaled"}, "scaled scores is used 2 times"),
    ({"scores_op": "tensor"}, "scores are scaled by a tensor, not a constant"),
    ({"fill": parse_expr("-10000")}, "the mask fills with a finite value, not -inf"),
])
def test_near_misses_say_why(kwargs, reason):
    module = _graph(**kwargs)
    result = fuse_attention(module, PassContext(DimContext()))
    assert not result.changed
    assert len(result.near_misses) == 1
    assert result.near_misses[0].startswith(f"M.y: not fused: {reason}")


def test_explain_prints_the_near_miss(tmp_path, capsys):
    spec = tmp_path / "twice.yaml"
    spec.write_text((FORMS / "mul_scale.yaml").read_text().replace(
        "    return matmul(att, v)", "    return matmul(att, v), att").replace(
        "name: mul_scale", "name: twice"))
    assert archcc.cli.main(["build", str(spec), "-o", str(tmp_path), "--explain"]) == 0
    out = capsys.readouterr().out
    assert "fuse_attention: Twice.matmul_1: not fused: softmax output is used 2 times" in out
