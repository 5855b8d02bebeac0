"""``op: layernorm2d``: LayerNorm over the channels of an image (B, C, H, W) (ConvNeXt's
"channels_first" LayerNorm, timm's ``LayerNorm2d``).

    norm: {op: layernorm2d, channels: 96}  ->  self.norm = nn.LayerNorm(96, eps=1e-06)
    norm(x) with x (B, 96, H, W)  ->  self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

Each pixel's C values are normalised on their own, as Hugging Face's ``ConvNextLayerNorm(
data_format="channels_first")`` does: to channels last, ``nn.LayerNorm``, back. The module is
a plain ``nn.LayerNorm``, so its keys are ``norm.weight`` and ``norm.bias``. On a grid that is
already channels last (B, H, W, C), ``op: layernorm`` is the same norm without the permutes.
"""

from __future__ import annotations

from typing import Literal

from archcc.ir.shapes import FLOAT, ShapeError, fmt
from archcc.ops import Example, Op, norms, op
from archcc.ops.conv2d import image_arity
from archcc.parser.fields import Scalar, Size, Strict

TO_LAST, TO_FIRST = (0, 2, 3, 1), (0, 3, 1, 2)


class LayerNorm2d(Strict):
    """LayerNorm over the channels (dim 1) of an image (B, C, H, W): each pixel normalised
    over its C values (ConvNeXt's channels-first LayerNorm)."""

    op: Literal["layernorm2d"]
    channels: Size
    """Channels normalised: dim 1 of the input."""
    eps: Scalar = 1e-6
    """Added to the variance (ConvNeXt: 1e-6)."""
    bias: bool = True
    """A learned shift besides the learned scale."""


@op
class LayerNorm2dOp(Op):
    name, schema, order = "layernorm2d", LayerNorm2d, 211
    sizes, scalars, is_norm = ("channels",), ("eps",), True
    example = Example("norm: {op: layernorm2d, channels: 8}", {}, {"x": "[B, 8, 4, 4]"},
                      dims={})

    def submodules(self, layer):
        return [norms.submodule("layernorm", layer.name, layer.sizes["channels"],
                                layer.sizes["eps"], layer.loc, layer.spec.bias)]

    def call(self, fwd, layer, e):
        """``norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)``."""
        args, kwargs = fwd.call_args(layer, e)
        needs = f"{layer.name} (layernorm2d) needs an image (B, C, H, W)"
        x = fwd.node("permute", args[:1], e.pos, var=layer.name, dims=TO_LAST, needs=needs)
        y = fwd.node("call", [x, *args[1:]], e.pos, var=layer.name, target=layer.name,
                     kwargs=kwargs, repeat=False)
        return fwd.node("permute", [y], e.pos, var=layer.name, dims=TO_FIRST)

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        """The norm's own call sees the channels-last pixels (B, H, W, C)."""
        image_arity(layer, shapes, kwargs)
        x, channels = shapes[0], layer.dim("channels")
        if not ctx.equal(x[-1], channels):
            image = (x[0], x[-1], *x[1:-1])
            raise ShapeError(f"{layer.name} expects {channels} ({ctx.concrete(channels)}) "
                             f"channels, got {fmt(image)}")
        return x, FLOAT

    def params(self, values):
        return values["channels"] * (2 if values["bias"] else 1)

    def flops(self, values, shapes):
        return 0
