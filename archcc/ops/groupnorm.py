"""``op: groupnorm``: group normalisation over the channels of (B, C, ...), ``nn.GroupNorm``.

    norm: {op: groupnorm, groups: 32, channels: 128}  ->  self.norm = nn.GroupNorm(32, 128)
"""

from __future__ import annotations

from typing import Literal

from archcc.ir.graph import Submodule
from archcc.ir.shapes import FLOAT, ShapeError, fmt
from archcc.ops import Example, Op, kind, op
from archcc.ops.base import AffineNormKind, check_divides, is_default
from archcc.ops.conv2d import image_arity
from archcc.parser.expr import Num
from archcc.parser.fields import Scalar, Size, Strict


class GroupNorm(Strict):
    """Group normalisation over channels of (B, C, ...) (Wu & He 2018), like `nn.GroupNorm`."""

    op: Literal["groupnorm"]
    groups: Size
    """Number of groups; must divide channels."""
    channels: Size
    """Channels normalised (dim 1 of x)."""
    eps: Scalar = 1e-5
    """Added to each group's variance."""
    affine: bool = True
    """Learned per-channel scale and shift."""


def submodule(name: str, groups, channels, eps, affine: bool = True, loc=None) -> Submodule:
    return Submodule(name, "groupnorm", {"groups": groups, "channels": channels, "eps": eps,
                                         "affine": Num(affine)}, loc)


def in_class(name: str, channels: str) -> Submodule:
    """The GroupNorm of a lowered class: its ``groups`` and ``eps``, affine."""
    from archcc.ir.builder import E

    return submodule(name, E("groups"), E(channels), E("eps"))


@op
class GroupNormOp(Op):
    name, schema, order = "groupnorm", GroupNorm, 210
    sizes, scalars, is_norm = ("groups", "channels"), ("eps",), True
    example = Example("norm: {op: groupnorm, groups: 4, channels: 8}", {},
                      {"x": "[B, 8, 4, 4]"}, dims={})

    def check(self, scope, layer):
        check_divides(scope, layer, "groups", "channels")

    def submodules(self, layer):
        s = layer.sizes
        return [submodule(layer.name, s["groups"], s["channels"], s["eps"], layer.spec.affine,
                          layer.loc)]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        image_arity(layer, shapes, kwargs)
        x = shapes[0]
        if len(x) < 2 or not ctx.equal(x[1], layer.dim("channels")):
            raise ShapeError(f"{layer.name} expects (B, {layer.dim('channels')}, ...) "
                             f"({ctx.concrete(layer.dim('channels'))} channels), got {fmt(x)}")
        return x, FLOAT

    def params(self, values):
        return 2 * values["channels"] if values["affine"] else 0

    def flops(self, values, shapes):
        return 0


@kind
class GroupNormKind(AffineNormKind):
    name = "groupnorm"

    def init_lines(self, sub, arg):
        a = sub.args
        extra = "" if is_default(a["eps"], 1e-5) else f", eps={arg(a['eps'])}"
        extra += "" if is_default(a["affine"], True) else f", affine={arg(a['affine'])}"
        return [f"self.{sub.name} = nn.GroupNorm({arg(a['groups'])}, {arg(a['channels'])}{extra})"]

    def call_shape(self, ctx, sub, shapes, dtypes):
        return shapes[0], FLOAT

    def state(self, sub, value):
        return ["weight", "bias"] if value(sub.args["affine"]) else []
