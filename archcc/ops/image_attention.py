"""``op: image_attention``: self-attention among the pixels of an image, GroupNorm in front
and a residual around it (the attention of diffusers' UNet2D blocks).

    attn: {op: image_attention, channels: 256, heads: 1}
    attn(x) with x (B, 256, H, W)  ->  (B, 256, H, W)

The scores are the same matmul / softmax chain as ``op: attention``, so ``fuse_attention``
turns them into one SDPA call.
"""

from __future__ import annotations

from typing import Literal

from archcc.ir.builder import Builder, E
from archcc.ir.graph import ModuleIR, Submodule
from archcc.ir.shapes import FLOAT
from archcc.ops import Example, Op, groupnorm, linear, op
from archcc.ops.attention.lowering import split_heads
from archcc.ops.base import check_divides
from archcc.ops.conv2d import image, image_arity
from archcc.parser.fields import Scalar, Size, Strict


class ImageAttention(Strict):
    """Self-attention among the pixels of (B, C, H, W), GroupNorm in front and a residual
    around it (the attention of diffusers' UNet2D blocks)."""

    op: Literal["image_attention"]
    channels: Size
    """Channels of the image: the attention's width."""
    heads: Size
    """Number of heads; must divide channels."""
    groups: Size = 32
    """GroupNorm groups; must divide channels."""
    eps: Scalar = 1e-6
    """Epsilon of the GroupNorm."""


@op
class ImageAttentionOp(Op):
    name, schema, order = "image_attention", ImageAttention, 260
    sizes, scalars = ("channels", "heads", "groups"), ("eps",)
    example = Example("attn: {op: image_attention, channels: 8, heads: 2, groups: 4}", {},
                      {"x": "[B, 8, 4, 4]"}, dims={})

    def check(self, scope, layer):
        check_divides(scope, layer, "heads", "channels")
        check_divides(scope, layer, "groups", "channels")

    def submodules(self, layer):
        s = layer.sizes
        return [Submodule(layer.name, "class", {"channels": s["channels"], "n_head": s["heads"],
                                                "groups": s["groups"], "eps": s["eps"]},
                          layer.loc)]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        image_arity(layer, shapes, kwargs)
        image(ctx, layer.name, shapes[0], layer.dim("channels"))
        return shapes[0], FLOAT

    def lower(self, layer, kwargs):
        return lower()

    def params(self, values):
        channels = values["channels"]
        return 2 * channels + 4 * (channels * channels + channels)

    def flops(self, values, shapes):
        batch, channels, height, width = shapes[0]
        pixels = height * width
        return 2 * batch * pixels * channels * channels * 4 + 4 * batch * pixels * pixels * channels


def lower() -> ModuleIR:
    """x + to_out(attention(group_norm(x) as (B, H*W, C) tokens)), back in (B, C, H, W)."""
    b = Builder("ImageSelfAttention")
    x = b.input("x", "B, channels, H, W")
    subs = {"group_norm": groupnorm.in_class("group_norm", "channels")}
    h = b.line().op("flatten", b.call("group_norm", x, var="h"), var="h", start=2)
    h = b.op("transpose", h, var="h", dim0=1, dim1=2)
    qkv = []
    for n in "qkv":
        subs[f"to_{n}"] = linear.submodule(f"to_{n}", E("channels"), E("channels"), True)
        qkv.append(split_heads(b, b.line().call(f"to_{n}", h, var=n), n))
    q, k, v = qkv
    att = b.line().op("matmul", q, b.op("transpose", k, var="att", dim0=-2, dim1=-1), var="att")
    att = b.op("mul", att, b.op("const", var="scale", value=E("head_dim ** -0.5")), var="att")
    att = b.line().op("softmax", att, var="att", dim=-1)
    y = b.line().op("matmul", att, v, var="y")
    y = b.line().op("flatten", b.op("transpose", y, var="y", dim0=1, dim1=2), var="y", start=2)
    subs["to_out"] = linear.submodule("to_out", E("channels"), E("channels"), True)
    y = b.line().call("to_out", y, var="y")
    y = b.op("reshape_as", b.op("transpose", y, var="y", dim0=1, dim1=2), x, var="y")
    b.ret(b.line().op("add", x, y, var="out"))
    return ModuleIR(
        "ImageSelfAttention", "lowered", b.g, subs,
        ctor_args=[("channels", None), ("n_head", None), ("groups", 32), ("eps", 1e-6)],
        scalars={"n_head": E("n_head"), "head_dim": E("channels // n_head")},
        doc="Self-attention among the H*W pixels, GroupNorm in front, residual around.",
        signature=("image_attention",),
        display={"channels": "C", "n_head": "nh", "head_dim": "hs"})
