"""``op: conv1d``: 1-D convolution over time, ``nn.Conv1d`` (TextCNN, Kim 2014).

    conv: {op: conv1d, in: emb, out: 100, kernel: 3}
    ->  self.conv = nn.Conv1d(config.emb, 100, kernel_size=3)
    conv(x) with x (B, emb, T)  ->  (B, 100, T - 2)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archcc.ir.graph import Submodule
from archcc.ir.shapes import FLOAT, ShapeError, fmt
from archcc.lazy import sympy
from archcc.ops import Example, Kind, Op, kind, op
from archcc.ops.base import keywords
from archcc.parser.expr import Num
from archcc.parser.fields import Size, Strict


class Conv1d(Strict):
    """1-D convolution over time: (B, in, T) -> (B, out, T'), with
    T' = (T + 2 * padding - kernel) // stride + 1."""

    op: Literal["conv1d"]
    in_: Size = Field(alias="in")
    """Input channels (dim 1 of x)."""
    out: Size
    """Output channels (filters)."""
    kernel: Size
    """Width of each filter, in time steps."""
    stride: Size = 1
    """Step between windows."""
    padding: Size = 0
    """Zeros added at both ends of the sequence (0 allowed)."""
    bias: bool = True
    """A learned bias per output channel."""


@op
class Conv1dOp(Op):
    name, schema, order, wrappable = "conv1d", Conv1d, 160, False
    sizes, zero_sizes = ("in_", "out", "kernel", "stride"), ("padding",)
    example = Example("conv: {op: conv1d, in: 16, out: 8, kernel: 3}", {},
                      {"x": "[B, 16, T]"})

    def submodules(self, layer):
        s = layer.sizes
        return [Submodule(layer.name, "conv1d", {
            "in": s["in_"], "out": s["out"], "kernel": s["kernel"], "stride": s["stride"],
            "padding": s["padding"], "bias": Num(layer.spec.bias)}, layer.loc)]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        return _conv1d(ctx, layer, shapes[0]), FLOAT

    def params(self, values):
        return values["in_"] * values["out"] * values["kernel"] + \
            (values["out"] if values["bias"] else 0)

    def flops(self, values, shapes):
        batch, _, length = shapes[0]
        span = length + 2 * values["padding"] - values["kernel"]
        out = span // values["stride"] + 1
        return 2 * batch * values["out"] * out * values["in_"] * values["kernel"]


@kind
class Conv1dKind(Kind):
    name = "conv1d"
    init_params = ("weight", "bias")
    init = torch_init = {"weight": "kaiming_uniform(a = sqrt(5))",  # PyTorch's, as timm and
                         "bias": "uniform(1 / sqrt(in * kernel))"}  # diffusers keep

    def init_lines(self, sub, arg):
        a = sub.args
        extra = keywords(a, {"stride": ("stride", 1), "padding": ("padding", 0),
                             "bias": ("bias", True)}, arg)
        return [f"self.{sub.name} = nn.Conv1d({arg(a['in'])}, {arg(a['out'])}, "
                f"kernel_size={arg(a['kernel'])}{extra})"]

    def state(self, sub, value):
        return ["weight", "bias"] if value(sub.args["bias"]) else ["weight"]


def _conv1d(ctx, layer, x):
    if len(x) != 3:
        raise ShapeError(f"{layer.name} needs channels-first (B, C, T), got {fmt(x)}",
                         "transpose(x, 1, 2) turns (B, T, C) into (B, C, T)")
    if not ctx.equal(x[1], layer.dim("in_")):
        raise ShapeError(f"{layer.name} expects {layer.dim('in_')} "
                         f"({ctx.concrete(layer.dim('in_'))}) channels in dim 1, got {fmt(x)}",
                         "conv1d reads (B, C, T); transpose(x, 1, 2) turns (B, T, C) into it")
    span = x[2] + 2 * layer.dim("padding") - layer.dim("kernel")
    stride = layer.dim("stride")
    length = span + 1 if stride == 1 else sympy.floor(span / stride) + 1
    return (x[0], layer.dim("out"), length)
