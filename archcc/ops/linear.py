"""``op: linear``: an affine map over the last axis, ``nn.Linear``; optionally tied.

    lm_head: {op: linear, in: n_embd, out: vocab_size, bias: false, tie: wte}
    ->  self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archcc.ir.graph import Submodule
from archcc.ir.params import to_sympy
from archcc.ir.shapes import FLOAT
from archcc.ops import Example, Kind, Op, kind, op
from archcc.ops.base import is_default
from archcc.parser.expr import Num
from archcc.parser.fields import Identifier, Size, Strict


class Linear(Strict):
    """Affine map over the last axis: (..., in) -> (..., out)."""

    op: Literal["linear"]
    in_: Size = Field(alias="in")
    """Input features."""
    out: Size
    """Output features."""
    bias: bool = True
    """Add a learned bias."""
    tie: Identifier | None = None
    """Share the weight of this earlier layer of the same block (e.g. `wte` for an LM head)."""


def submodule(name: str, fan_in, fan_out, bias, loc=None, tie: str | None = None) -> Submodule:
    """An ``nn.Linear`` line; ``bias`` is a bool or an expression (``E("bias")``)."""
    return Submodule(name, "linear", {"in": fan_in, "out": fan_out,
                                      "bias": Num(bias) if isinstance(bias, bool) else bias},
                     loc, tie=tie)


def projection(name: str, fan_in: str, fan_out: str,
               parts: tuple[tuple[str, str], ...] = ()) -> Submodule:
    """A projection inside a lowered class: fan sizes are expressions over the class's
    names (``"3 * dim"``) and the bias follows its ``bias`` argument. ``parts`` name the
    row blocks of a fused projection (``(("q", "dim"), ("k", "dim"), ("v", "dim"))``), which
    ``init:`` rules may address one by one (``h.*.attn.q``)."""
    from archcc.ir.builder import E

    sub = submodule(name, E(fan_in), E(fan_out), E("bias"))
    sub.parts = tuple((part, E(rows)) for part, rows in parts)
    return sub


def last_dim(ctx, layer, shape, key: str, what: str) -> None:
    """The shape check every layer over the last axis shares: ``x[-1] == layer.<key>``."""
    from archcc.ir.shapes import ShapeError, fmt

    want = layer.dim(key)
    if not shape or not ctx.equal(shape[-1], want):
        raise ShapeError(f"{layer.name} expects {what} with last dim {want} "
                         f"({ctx.concrete(want)}), got {fmt(shape)}")


@op
class LinearOp(Op):
    name, schema, order = "linear", Linear, 20
    sizes = ("in_", "out")
    example = Example("lm_head: {op: linear, in: n_embd, out: vocab_size, bias: false}",
                      {"vocab_size": 50, "n_embd": 16})

    def submodules(self, layer):
        s = layer.sizes
        return [submodule(layer.name, s["in_"], s["out"], layer.spec.bias, layer.loc,
                          layer.spec.tie)]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        last_dim(ctx, layer, shapes[0], "in_", "input")
        return (*shapes[0][:-1], layer.dim("out")), FLOAT

    def weight_shape(self, layer):
        return layer.sizes["out"], layer.sizes["in_"]

    def params(self, values):
        return values["in_"] * values["out"] + (values["out"] if values["bias"] else 0)

    def flops(self, values, shapes):
        rows = 1
        for d in shapes[0][:-1]:
            rows *= d
        return 2 * rows * values["in_"] * values["out"]


@kind
class LinearKind(Kind):
    name = "linear"
    init_params = ("weight", "bias")
    init = {"weight": "normal(0.02)", "bias": "zeros"}  # Hugging Face, nanoGPT, timm
    torch_init = {"weight": "kaiming_uniform(a = sqrt(5))", "bias": "uniform(1 / sqrt(in))"}

    def init_lines(self, sub, arg):
        a = sub.args
        bias = "" if is_default(a["bias"], True) else f", bias={arg(a['bias'])}"
        return [f"self.{sub.name} = nn.Linear({arg(a['in'])}, {arg(a['out'])}{bias})"]

    def call_shape(self, ctx, sub, shapes, dtypes):
        return (*shapes[0][:-1], to_sympy(sub.args["out"])), FLOAT

    def state(self, sub, value):
        return ["weight", "bias"] if value(sub.args["bias"]) else ["weight"]
