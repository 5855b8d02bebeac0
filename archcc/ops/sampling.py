"""Up- and down-sampling of images (diffusers ``Upsample2D`` / ``Downsample2D``).

    up: {op: upsample, channels: 128}      (B, 128, H, W) -> (B, 128, 2H, 2W): nearest, 3x3 conv
    down: {op: downsample, channels: 128}  (B, 128, H, W) -> (B, 128, H/2, W/2): 3x3 conv, stride 2

``downsample`` with ``conv: false`` is 2x2 average pooling; ``padding: 0`` pads only right
and bottom by one first (the original DDPM, diffusers ``downsample_padding: 0``).
"""

from __future__ import annotations

from typing import Literal

from archcc.ir.builder import Builder, E
from archcc.ir.graph import ModuleIR, Submodule
from archcc.ir.shapes import FLOAT
from archcc.lazy import sympy
from archcc.ops import Example, Op, conv2d, op
from archcc.ops.base import diag
from archcc.ops.conv2d import conv_side, image, image_arity
from archcc.parser.fields import Size, Strict


class Upsample(Strict):
    """(B, C, H, W) -> (B, C, scale*H, scale*W): nearest-neighbour, then (conv: true) a 3x3
    conv (diffusers `Upsample2D`)."""

    op: Literal["upsample"]
    channels: Size
    """Channels in and out."""
    scale: Size = 2
    """Factor on H and W."""
    conv: bool = True
    """A 3x3 convolution after the nearest-neighbour up-sampling."""


class Downsample(Strict):
    """(B, C, H, W) -> (B, C, H/2, W/2): a 3x3 conv with stride 2 (conv: true, diffusers
    `Downsample2D`) or 2x2 average pooling (conv: false)."""

    op: Literal["downsample"]
    channels: Size
    """Channels in and out."""
    conv: bool = True
    """A strided 3x3 convolution; false: 2x2 average pooling."""
    padding: Size = 1
    """Of the conv: 1, or 0 to pad only right and bottom by one first (original DDPM,
    diffusers `downsample_padding: 0`)."""


def _conv_params(values) -> int:
    return values["channels"] ** 2 * 9 + values["channels"] if values["conv"] else 0


@op
class UpsampleOp(Op):
    name, schema, order = "upsample", Upsample, 220
    sizes = ("channels", "scale")
    example = Example("up: {op: upsample, channels: 8}", {}, {"x": "[B, 8, 4, 4]"}, dims={})

    def submodules(self, layer):
        s = layer.sizes
        return [Submodule(layer.name, "class", {"channels": s["channels"], "scale": s["scale"]},
                          layer.loc)]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        image_arity(layer, shapes, kwargs)
        x = shapes[0]
        image(ctx, layer.name, x, layer.dim("channels"))
        scale = layer.dim("scale")
        return (x[0], x[1], x[2] * scale, x[3] * scale), FLOAT

    def lower(self, layer, kwargs):
        return lower_upsample(layer.spec.conv)

    def params(self, values):
        return _conv_params(values)

    def flops(self, values, shapes):
        batch, channels, height, width = shapes[0]
        pixels = height * values["scale"] * width * values["scale"]
        return 2 * batch * pixels * channels * channels * 9 if values["conv"] else 0


@op
class DownsampleOp(Op):
    name, schema, order = "downsample", Downsample, 230
    sizes, zero_sizes = ("channels",), ("padding",)
    example = Example("down: {op: downsample, channels: 8}", {}, {"x": "[B, 8, 8, 8]"},
                      dims={})

    def declare(self, scope, layer):
        super().declare(scope, layer)
        if layer.sizes["padding"] is not None:
            layer.facets["pad_after"] = scope.value(layer.sizes["padding"]) == 0

    def check(self, scope, layer):
        padding = scope.value(layer.sizes["padding"])
        if padding not in (0, 1):
            scope.errors.append(diag(layer, f"padding ({padding}) must be 1 or 0",
                                     "0 pads right and bottom by one, as diffusers' "
                                     "downsample_padding: 0"))

    def submodules(self, layer):
        return [Submodule(layer.name, "class", {"channels": layer.sizes["channels"]},
                          layer.loc)]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        image_arity(layer, shapes, kwargs)
        x = shapes[0]
        image(ctx, layer.name, x, layer.dim("channels"))
        conv, extra = layer.spec.conv, int(layer.facets["pad_after"])
        k, s, p = (sympy.Integer(v) for v in ((3, 2, 1 - extra) if conv else (2, 2, 0)))
        sides = (conv_side(ctx, side + extra if conv else side, k, s, p) for side in x[2:])
        return (x[0], x[1], *sides), FLOAT

    def lower(self, layer, kwargs):
        return lower_downsample(layer.spec.conv, layer.facets["pad_after"])

    def params(self, values):
        return _conv_params(values)

    def flops(self, values, shapes):
        batch, channels, height, width = shapes[0]
        return 2 * batch * (height // 2) * (width // 2) * channels * channels * 9 \
            if values["conv"] else 0


def lower_upsample(conv: bool) -> ModuleIR:
    """(B, C, H, W) -> (B, C, scale*H, scale*W): nearest neighbour, then a 3x3 conv."""
    name = "Upsample2D" if conv else "Upsample"
    b = Builder(name)
    x = b.input("x", "B, channels, H, W")
    y = b.line().op("interpolate", x, var="x", scale=E("scale"))
    subs = {}
    if conv:
        subs["conv"] = conv2d.in_class("conv", "channels", "channels", 3, padding=1)
        y = b.line().call("conv", y, var="x")
    b.ret(y)
    return ModuleIR(name, "lowered", b.g, subs, ctor_args=[("channels", None), ("scale", 2)],
                    scalars={"scale": E("scale")},
                    doc="Nearest-neighbour up-sampling" + (", then a 3x3 convolution."
                                                           if conv else "."),
                    signature=("upsample", conv), display={"channels": "C"})


def lower_downsample(conv: bool, pad_after: bool) -> ModuleIR:
    """(B, C, H, W) -> (B, C, H/2, W/2): a strided 3x3 conv (padded on all sides, or only
    right and bottom as the original DDPM), or 2x2 average pooling."""
    name = ("PadDownsample2D" if pad_after else "Downsample2D") if conv else "AvgDownsample"
    b = Builder(name)
    x = b.input("x", "B, channels, H, W")
    subs = {}
    if conv:
        subs["conv"] = conv2d.in_class("conv", "channels", "channels", 3, stride=2,
                             padding=0 if pad_after else 1)
        if pad_after:
            x = b.line().op("pad", x, var="x", pad=(0, 1, 0, 1))
        b.ret(b.line().call("conv", x, var="x"))
    else:
        b.ret(b.line().op("avg_pool", x, var="x", kernel=2))
    how = ("a 3x3 convolution of stride 2" + (", after padding right and bottom by one."
                                             if pad_after else ".")) if conv else \
        "2x2 average pooling."
    return ModuleIR(name, "lowered", b.g, subs, ctor_args=[("channels", None)],
                    doc="Halves H and W with " + how,
                    signature=("downsample", conv, pad_after), display={"channels": "C"})
