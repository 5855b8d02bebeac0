"""``op: conv2d``: 2-D convolution over images, ``nn.Conv2d`` (grouped and depthwise too).

    conv_in: {op: conv2d, in: 3, out: 32, kernel: 3, padding: 1}
    ->  self.conv_in = nn.Conv2d(3, 32, kernel_size=3, padding=1)
    conv_in(x) with x (B, 3, H, W)  ->  (B, 32, H, W)

Depthwise convolution (one filter per channel, ConvNeXt's 7x7, MobileNet's 3x3) is
``groups`` equal to ``in`` and ``out``; each output channel then sees one input channel, so
the weight is (out, 1, k, k) and the layer has ``out * k * k`` (+ bias) parameters::

    dwconv: {op: conv2d, in: dim, out: dim, kernel: 7, padding: 3, groups: dim}
    ->  self.dwconv = nn.Conv2d(config.dim, config.dim, kernel_size=7, padding=3, groups=config.dim)

Output sides follow ``nn.Conv2d``: ``floor((H + 2 * padding - kernel) / stride) + 1``, kept
in the spec's names where that has the same value (``H / 2`` rather than ``16``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archcc.ir.graph import Submodule
from archcc.ir.params import to_sympy
from archcc.ir.shapes import FLOAT, DimContext, Shape, ShapeError, fmt
from archcc.lazy import sympy
from archcc.ops import Example, Kind, Op, kind, op
from archcc.ops.base import check_divides, is_default
from archcc.parser.expr import Num
from archcc.parser.fields import Size, Strict


class Conv2d(Strict):
    """2-D convolution over images (B, C, H, W) -> (B, out, H', W'), like `nn.Conv2d`."""

    op: Literal["conv2d"]
    in_: Size = Field(alias="in")
    """Input channels."""
    out: Size
    """Output channels."""
    kernel: Size
    """Square kernel side."""
    stride: Size = 1
    """Step between windows, in both directions."""
    padding: Size = 0
    """Zero padding on every side (0 allowed)."""
    groups: Size = 1
    """Channel groups, each convolved on its own: must divide in and out; in = groups = out
    is a depthwise convolution (one k x k filter per channel)."""
    bias: bool = True
    """A learned bias per output channel."""


def submodule(name: str, fan_in, fan_out, kernel, stride=None, padding=None, groups=None,
              bias=None, loc=None) -> Submodule:
    """An ``nn.Conv2d`` line; arguments left None are torch's defaults."""
    args = {"in": fan_in, "out": fan_out, "kernel": kernel}
    extra = {"stride": stride, "padding": padding, "groups": groups,
             "bias": Num(bias) if isinstance(bias, bool) else bias}
    args.update({k: v for k, v in extra.items() if v is not None})
    return Submodule(name, "conv2d", args, loc)


def in_class(name: str, fan_in: str, fan_out: str, kernel: int, stride: int = 1,
             padding: int = 0) -> Submodule:
    """A convolution inside a lowered class: channels are the class's names (``"C"``)."""
    from archcc.ir.builder import E

    return submodule(name, E(fan_in), E(fan_out), Num(kernel), Num(stride), Num(padding))


@op
class Conv2dOp(Op):
    name, schema, order = "conv2d", Conv2d, 200
    sizes, zero_sizes = ("in_", "out", "kernel", "stride", "groups"), ("padding",)
    example = Example("conv: {op: conv2d, in: 3, out: 8, kernel: 3, padding: 1}", {},
                      {"x": "[B, 3, 8, 8]"}, dims={})

    def check(self, scope, layer):
        check_divides(scope, layer, "groups", "in_")
        check_divides(scope, layer, "groups", "out")

    def submodules(self, layer):
        s = layer.sizes
        return [submodule(layer.name, s["in_"], s["out"], s["kernel"], s["stride"],
                          s["padding"], s["groups"], layer.spec.bias, layer.loc)]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        image_arity(layer, shapes, kwargs)
        return conv2d_shape(ctx, layer.name, shapes[0], layer.submodules[0].args), FLOAT

    def facet(self, fields):
        groups, cin = fields.get("groups", 1), fields.get("in")
        kind = "depthwise " if groups != 1 and groups == cin == fields.get("out") else \
            f"groups={groups} " if groups != 1 else ""
        return f"conv2d {kind}{fields.get('kernel')}x{fields.get('kernel')}"

    def params(self, values):
        weights = values["in_"] // values["groups"] * values["out"] * values["kernel"] ** 2
        return weights + (values["out"] if values["bias"] else 0)

    def flops(self, values, shapes):
        batch, _, height, width = shapes[0]
        k, s, p = values["kernel"], values["stride"], values["padding"]
        out_h, out_w = (height + 2 * p - k) // s + 1, (width + 2 * p - k) // s + 1
        per_output = values["in_"] // values["groups"] * k * k
        return 2 * batch * values["out"] * out_h * out_w * per_output


@kind
class Conv2dKind(Kind):
    name = "conv2d"
    init_params = ("weight", "bias")
    init = torch_init = {"weight": "kaiming_uniform(a = sqrt(5))",  # PyTorch's, as timm and
                         "bias": "uniform(1 / sqrt(in // groups * kernel * kernel))"}  # diffusers
    arg_defaults = {"groups": 1}

    def init_lines(self, sub, arg):
        """``nn.Conv2d(in, out, kernel_size=k, stride=..., padding=...)``, defaults left out."""
        a = sub.args
        parts = [arg(a["in"]), arg(a["out"]), f"kernel_size={arg(a['kernel'])}"]
        defaults = {"stride": 1, "padding": 0, "groups": 1, "bias": True}
        parts += [f"{k}={arg(a[k])}" for k, d in defaults.items()
                  if k in a and not is_default(a[k], d)]
        return [f"self.{sub.name} = nn.Conv2d({', '.join(parts)})"]

    def call_shape(self, ctx, sub, shapes, dtypes):
        return conv2d_shape(ctx, sub.name, shapes[0], sub.args), FLOAT

    def state(self, sub, value):
        return ["weight", "bias"] if value(sub.args.get("bias", True)) else ["weight"]


def image_arity(layer, shapes, kwargs, arity: int = 1, usage: str | None = None) -> None:
    """Image layers take ``arity`` positional inputs and no keywords."""
    if len(shapes) != arity or kwargs:
        raise ShapeError(f"{layer.name} takes {arity} input(s), got {len(shapes)}",
                         f"call {usage or f'{layer.name}(x)'}")


def image(ctx: DimContext, name: str, x: Shape, channels, what: str = "channels") -> None:
    """``x`` is an image (B, C, H, W) with ``channels`` channels."""
    if len(x) != 4:
        raise ShapeError(f"{name} needs an image (B, C, H, W), got {fmt(x)}")
    if not ctx.equal(x[1], channels):
        raise ShapeError(f"{name} expects {channels} ({ctx.concrete(channels)}) {what}, "
                         f"got {fmt(x)}")


def conv_side(ctx: DimContext, side, kernel, stride, padding) -> sympy.Expr:
    """``floor((side + 2 * padding - kernel) / stride) + 1``, kept in the spec's names where
    a plain form has the same value (``sample_size / 2`` rather than ``8``)."""
    span = side + 2 * padding - kernel
    if ctx.concrete(span).is_number and ctx.concrete(span) < 0:
        raise ShapeError(f"kernel {_both(ctx, kernel)} is larger than the padded input side "
                         f"{_both(ctx, side + 2 * padding)}",
                         "pad more, or use a smaller kernel")
    exact = sympy.expand(span / stride + 1)
    value = ctx.concrete(sympy.floor(span / stride) + 1)
    if not value.is_number:  # symbolic input side (a lowered class's H)
        if ctx.is_one(stride):
            return exact
        if ctx.equal(kernel, stride) and ctx.concrete(padding) == 0:
            return side / stride  # patches: callers check that the side divides
        return sympy.floor((span + stride) / stride)
    for candidate in (exact, side / stride):
        if ctx.concrete(candidate) == value:
            return candidate
    return value


def _both(ctx: DimContext, dim) -> str:
    """``sample_size + 2 (34)``; a plain number once."""
    value = ctx.concrete(dim)
    return str(dim) if value == dim else f"{dim} ({value})"


def conv2d_shape(ctx: DimContext, name: str, x: Shape, args: dict) -> Shape:
    """Shape rule of an ``nn.Conv2d`` built from these (expression) args."""
    get = {"stride": sympy.Integer(1), "padding": sympy.Integer(0)}
    get.update({k: to_sympy(v) for k, v in args.items() if k not in ("bias", "groups")})
    image(ctx, name, x, get["in"], "input channels")
    try:
        h, w = (conv_side(ctx, side, get["kernel"], get["stride"], get["padding"])
                for side in x[2:])
    except ShapeError as exc:
        raise ShapeError(f"{name}: {exc.message}", exc.hint) from None
    return (x[0], get["out"], h, w)
