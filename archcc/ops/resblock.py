"""``op: resblock``: the pre-activation ResNet block of diffusion UNets (diffusers
``ResnetBlock2D``).

    res: {op: resblock, in: 64, out: 128, temb: 512}
    res(x, temb) with x (B, 64, H, W), temb (B, 512)  ->  (B, 128, H, W)

GroupNorm, act, 3x3 conv, twice; the time embedding, projected, is added between the two
convolutions; a 1x1 conv shortcut when in != out, decided when the module is built (as
diffusers does), so one class serves every block of a stage loop.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archcc.ir.builder import Builder, E
from archcc.ir.graph import ModuleIR, Submodule
from archcc.ir.shapes import FLOAT, ShapeError, fmt
from archcc.ops import Example, Op, conv2d, dropout, groupnorm, linear, op
from archcc.ops.base import check_divides
from archcc.ops.conv2d import image, image_arity
from archcc.parser.fields import Activation, Scalar, Size, Strict


class ResBlock(Strict):
    """Pre-activation ResNet block over images (diffusers `ResnetBlock2D`): norm, act, 3x3 conv,
    twice, plus a 1x1 conv shortcut when in != out. With `temb`, call it as `res(x, temb)`:
    the time embedding is projected and added between the two convolutions."""

    op: Literal["resblock"]
    in_: Size = Field(alias="in")
    """Input channels."""
    out: Size
    """Output channels."""
    temb: Size | None = None
    """Width of the time embedding injected into the block (none: `res(x)`)."""
    groups: Size = 32
    """GroupNorm groups; must divide in and out."""
    eps: Scalar = 1e-6
    """Epsilon of both GroupNorms."""
    act: Activation = "silu"
    """The nonlinearity after each norm and on the time embedding."""
    dropout: Scalar = 0.0
    """Dropout before the second convolution."""


@op
class ResBlockOp(Op):
    name, schema, order = "resblock", ResBlock, 250
    sizes, scalars, optional_sizes = ("in_", "out", "groups"), ("eps", "dropout"), ("temb",)
    arity = (1, 2)
    example = Example("res: {op: resblock, in: 8, out: 16, groups: 4}", {},
                      {"x": "[B, 8, 4, 4]"}, dims={})

    def check(self, scope, layer):
        check_divides(scope, layer, "groups", "in_")
        check_divides(scope, layer, "groups", "out")

    def submodules(self, layer):
        s = layer.sizes
        return [Submodule(layer.name, "class", {
            "in_channels": s["in_"], "out_channels": s["out"],
            **({"temb_channels": s["temb"]} if "temb" in s else {}),
            "groups": s["groups"], "eps": s["eps"], "dropout": s["dropout"]}, layer.loc)]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        wants_temb = "temb" in layer.sizes
        image_arity(layer, shapes, kwargs, 2 if wants_temb else 1,
                    f"{layer.name}(x, temb)" if wants_temb else None)
        x = shapes[0]
        image(ctx, layer.name, x, layer.dim("in_"))
        if wants_temb and (len(shapes[1]) != 2 or not ctx.equal(shapes[1][1], layer.dim("temb"))):
            raise ShapeError(f"{layer.name}: the time embedding must be (B, "
                             f"{layer.dim('temb')}), got {fmt(shapes[1])}")
        return (x[0], layer.dim("out"), x[2], x[3]), FLOAT

    def lower(self, layer, kwargs):
        spec = layer.spec
        return lower(spec.act, spec.temb is not None)

    def params(self, values):
        cin, cout = values["in_"], values["out"]
        count = 2 * cin + cin * cout * 9 + cout + 2 * cout + cout * cout * 9 + cout
        if values.get("temb"):
            count += values["temb"] * cout + cout
        return count + (cin * cout + cout if cin != cout else 0)

    def flops(self, values, shapes):
        batch, cin, height, width = shapes[0]
        cout, pixels = values["out"], batch * height * width
        count = 2 * pixels * 9 * (cin * cout + cout * cout)
        if values.get("temb"):
            count += 2 * batch * values["temb"] * cout
        return count + (2 * pixels * cin * cout if cin != cout else 0)


def lower(act: str, temb: bool) -> ModuleIR:
    """norm1 -> act -> conv1 (+ projected time embedding) -> norm2 -> act -> conv2, + skip;
    the skip is a 1x1 conv where in != out, nn.Identity() elsewhere."""
    name = "ResnetBlock2D"
    cin, cout = "in_channels", "out_channels"
    b = Builder(name)
    x = b.input("x", f"B, {cin}, H, W")
    subs = {"norm1": groupnorm.in_class("norm1", cin),
            "conv1": conv2d.in_class("conv1", cin, cout, 3, padding=1)}
    h = b.line().call("conv1", b.op(act, b.call("norm1", x, var="h"), var="h"), var="h")
    if temb:
        emb = b.input("temb", "B, temb_channels")
        subs["time_emb_proj"] = linear.submodule("time_emb_proj", E("temb_channels"), E(cout),
                                                 True)
        emb = b.line().call("time_emb_proj", b.op(act, emb, var="temb"), var="temb")
        emb = b.op("unsqueeze", b.op("unsqueeze", emb, var="temb", dim=-1), var="temb", dim=-1)
        h = b.op("add", h, emb, var="h")
    subs["norm2"] = groupnorm.in_class("norm2", cout)
    subs["dropout"] = dropout.submodule("dropout", E("dropout"))
    subs["conv2"] = conv2d.in_class("conv2", cout, cout, 3, padding=1)
    h = b.line().op(act, b.call("norm2", h, var="h"), var="h")
    h = b.call("conv2", b.call("dropout", h, var="h"), var="h")
    subs["conv_shortcut"] = conv2d.in_class("conv_shortcut", cin, cout, 1)
    subs["conv_shortcut"].when = E(f"{cin} != {cout}")
    skip = b.line().call("conv_shortcut", x, var="x")
    b.ret(b.line().op("add", skip, h, var="out"))
    ctor = [(cin, None), (cout, None)] + ([("temb_channels", None)] if temb else [])
    return ModuleIR(name, "lowered", b.g, subs,
                    ctor_args=[*ctor, ("groups", 32), ("eps", 1e-6), ("dropout", 0.0)],
                    doc=f"ResNet block: (GroupNorm, {act}, conv3x3) x 2"
                        + (" + time embedding" if temb else "")
                        + "; a 1x1 conv skip if in != out.",
                    signature=("resblock", act, temb),
                    display={"in_channels": "C_in", "out_channels": "C_out",
                             "temb_channels": "T_emb"})
