"""``op: patchify``: an image (B, C, H, W) to patch tokens, the stem of ViT, Swin and Mixer.

Facets: the projection (a strided conv, or unfold + linear), a CLS token, positions (none,
learned, fixed 2-D sin/cos), resampled positions for other image sizes, the output layout
(tokens or a channels-last grid) and a LayerNorm::

    embed: {op: patchify, in_channels: 3, dim: hidden_size, patch: 16, cls_token: true,
            positions: learned, image: image_size}
    embed(pixels) with pixels (B, 3, 224, 224)  ->  (B, 197, hidden_size)
"""

from __future__ import annotations

from typing import Literal

from archcc.ir.builder import Builder, E
from archcc.ir.graph import ModuleIR, Submodule
from archcc.ir.shapes import FLOAT, ShapeError, fmt
from archcc.ops import Example, Op, conv2d, linear, norms, op, parameter, register_buffer
from archcc.ops.base import diag
from archcc.parser.expr import Num
from archcc.parser.fields import Scalar, Size, Strict


class Patchify(Strict):
    """Image (B, C, H, W) -> patch tokens (B, H/patch * W/patch, dim) by a strided conv,
    optionally with a CLS token, positions and a norm (ViT, Swin and MLP-Mixer stems)."""

    op: Literal["patchify"]
    in_channels: Size
    """Image channels (3 for RGB)."""
    dim: Size
    """Width of each patch token."""
    patch: Size
    """Side of the square patches; must divide the image sides."""
    proj: Literal["conv", "linear"] = "conv"
    """`conv`: one strided Conv2d; `linear`: unfold the patches, then one Linear
    (the same map: its weight is the conv weight flattened)."""
    cls_token: bool = False
    """Prepend a learned CLS token (1, 1, dim): the output has one more token."""
    positions: Literal["none", "learned", "sincos"] = "none"
    """Added position table: learned (ViT) or fixed 2-D sin/cos (MAE); needs `image`."""
    image: Size | None = None
    """Image side the position table is laid out for."""
    interpolate: bool = False
    """Resample learned positions bicubically to the input's patch grid, so one model
    takes other image sizes (timm `dynamic_img_size`)."""
    layout: Literal["tokens", "grid"] = "tokens"
    """`tokens`: (B, N, dim); `grid`: (B, H/patch, W/patch, dim), channels last (Swin)."""
    norm: bool = False
    """LayerNorm over dim after the projection (Swin)."""
    eps: Scalar = 1e-5
    """Epsilon of that LayerNorm."""


@op
class PatchifyOp(Op):
    name, schema, order = "patchify", Patchify, 90
    sizes, scalars, optional_sizes = ("in_channels", "dim", "patch"), ("eps",), ("image",)
    example = Example("patch_embed: {op: patchify, in_channels: 3, dim: n_embd, patch: 4}",
                      {"n_embd": 16}, {"x": "[B, 3, 16, 16]"}, dims={})

    def check(self, scope, layer):
        spec, problems = layer.spec, []
        if spec.positions != "none" and spec.image is None:
            problems.append((f"positions: {spec.positions} needs `image` (the image side the "
                             "table is laid out for)", "add image: image_size"))
        if spec.interpolate and spec.positions != "learned":
            problems.append(("interpolate resamples learned positions; set positions: "
                             "learned", None))
        if spec.layout == "grid" and (spec.cls_token or spec.positions != "none"
                                      or spec.proj == "linear"):
            problems.append(("layout: grid is a conv stem without CLS token or position "
                             "table", None))
        scope.errors += [diag(layer, message, hint) for message, hint in problems]
        layer.broken = bool(problems)  # no class can be built for these facets

    def submodules(self, layer):
        s, spec = layer.sizes, layer.spec
        args = {"in_channels": s["in_channels"], "dim": s["dim"], "patch": s["patch"]}
        if "image" in s:
            args["image"] = s["image"]
        if spec.norm:
            args["eps"] = s["eps"]
        return [Submodule(layer.name, "class", args, layer.loc)]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        x = shapes[0]
        if len(x) != 4:
            raise ShapeError(f"{layer.name} needs an image (B, C, H, W), got {fmt(x)}")
        if not ctx.equal(x[1], layer.dim("in_channels")):
            raise ShapeError(f"{layer.name} expects {layer.dim('in_channels')} channels, "
                             f"got {fmt(x)}")
        patch = layer.dim("patch")
        for side in x[2:]:
            ratio = ctx.concrete(side / patch)
            if ratio.is_number and not ratio.is_integer:
                raise ShapeError(f"{layer.name}: image side {side} ({ctx.concrete(side)}) is "
                                 f"not a multiple of patch {patch} ({ctx.concrete(patch)})")
        if layer.spec.layout == "grid":
            return (x[0], x[2] / patch, x[3] / patch, layer.dim("dim")), FLOAT
        tokens = (x[2] / patch) * (x[3] / patch) + (1 if layer.spec.cls_token else 0)
        return (x[0], tokens, layer.dim("dim")), FLOAT

    def lower(self, layer, kwargs):
        return lower(layer.spec)

    def params(self, values):
        dim, patch, channels = values["dim"], values["patch"], values["in_channels"]
        count = channels * patch * patch * dim + dim + (dim if values["cls_token"] else 0)
        if values["positions"] == "learned":
            count += ((values["image"] // patch) ** 2 + values["cls_token"]) * dim
        return count + (2 * dim if values["norm"] else 0)

    def flops(self, values, shapes):
        batch, _, height, width = shapes[0]
        patches = (height // values["patch"]) * (width // values["patch"])
        return 2 * batch * patches * values["in_channels"] * values["patch"] ** 2 * values["dim"]


TABLES = "truncated_normal(0.02)"  # CLS token, positions: Hugging Face ViT, timm


def lower(spec) -> ModuleIR:
    """(B, C, H, W) -> (B, N, dim) tokens [+ CLS] [+ positions], or a (B, H/p, W/p, dim) grid."""
    b = Builder("PatchEmbed")
    fixed = spec.positions != "none" and not spec.interpolate  # the table fixes the size
    side = "image, image" if fixed else "H, W"
    image = b.input("x", f"B, in_channels, {side}")
    subs, scalars = {}, {}
    ctor = [("in_channels", None), ("dim", None), ("patch", None)]
    if spec.proj == "conv":
        subs["proj"] = conv2d.submodule("proj", E("in_channels"), E("dim"), E("patch"),
                                        stride=E("patch"))
        x = b.line().call("proj", image, var="x")  # (B, dim, H/p, W/p)
        if spec.layout == "grid":
            x = b.op("permute", x, var="x", dims=(0, 2, 3, 1))
        else:
            x = b.op("transpose", b.op("flatten", x, var="x", start=2), var="x", dim0=1, dim1=2)
    else:
        subs["proj"] = linear.submodule("proj", E("in_channels * patch * patch"), E("dim"), True)
        scalars["patch"] = E("patch")
        x = b.line().op("unfold_patches", image, var="x", patch=E("patch"))
        x = b.op("transpose", x, var="x", dim0=1, dim1=2)
        x = b.call("proj", x, var="x")
    if spec.norm:
        subs["norm"] = norms.submodule("layernorm", "norm", E("dim"), E("eps"))
        ctor.append(("eps", 1e-5))
        x = b.line().call("norm", x, var="x")
    prefix = 1 if spec.cls_token else 0
    if spec.cls_token:
        subs["cls_token"] = parameter.submodule("cls_token", (Num(1), Num(1), E("dim")),
                                                default_init=TABLES)
        token = b.attr("cls_token", "1, 1, dim")
        x = b.line().op("prepend", token, x, var="x")
    if spec.positions != "none":
        ctor.insert(3, ("image", None))
        x = _positions(b, spec, subs, scalars, image, x, prefix)
    b.ret(x)
    return ModuleIR("PatchEmbed", "lowered", b.g, subs, ctor_args=ctor, scalars=scalars,
                    doc=_patch_doc(spec),
                    signature=("patchify", spec.proj, spec.cls_token, spec.positions,
                               spec.interpolate, spec.layout, spec.norm))


def _positions(b, spec, subs, scalars, image, x, prefix) -> str:
    rows = E(f"(image // patch) ** 2 + {prefix}" if prefix else "(image // patch) ** 2")
    shape = f"1, (image / patch) ** 2 + {prefix}, dim"
    if spec.positions == "learned":
        subs["pos_embed"] = parameter.submodule("pos_embed", (Num(1), rows, E("dim")),
                                                default_init=TABLES)
    else:
        subs["pos_embed"] = Submodule("pos_embed", "buffer", {
            "init": "sincos2d", "grid": E("image // patch"), "dim": E("dim"),
            "prefix": Num(prefix)})
    pos = b.attr("pos_embed", shape)
    if spec.interpolate:
        scalars.update(patch=E("patch"), grid=E("image // patch"))
        b.line()
        table = b.op("subscript", pos, var="pos", index=((None, None), (prefix, None)))
        pos = b.op("resample_grid", table, image, var="pos", grid=E("grid"), patch=E("patch"))
        if prefix:
            head = b.op("subscript", b.attr("pos_embed", shape), var="pos",
                        index=((None, None), (None, prefix)))
            pos = b.op("prepend", head, pos, var="pos")
    return b.line().op("add", x, pos, var="x")


def _patch_doc(spec) -> str:
    how = "a strided conv" if spec.proj == "conv" else "unfold + linear"
    extras = [("a CLS token", spec.cls_token),
              (f"{spec.positions} positions" + (" (resampled)" if spec.interpolate else ""),
               spec.positions != "none"),
              ("a LayerNorm", spec.norm)]
    extra = ", ".join(text for text, on in extras if on)
    out = "a channels-last grid" if spec.layout == "grid" else "tokens"
    return f"Image patches to {out} by {how}" + (f"; {extra}." if extra else ".")


# ------------------------------------------------------------------------------- buffer


def _args(sub, arg, *names: str) -> list[str]:
    return [f"({arg(sub.args[n])})" if " " in arg(sub.args[n]) else arg(sub.args[n])
            for n in names]


@register_buffer("sincos2d")
def sincos2d(sub, arg) -> list[str]:
    """MAE's fixed 2-D table: per token, sin|cos of its column, then sin|cos of its row."""
    grid, dim = _args(sub, arg, "grid", "dim")
    lines = [
        "# fixed 2-D sin/cos positions (MAE): sin|cos of the column, then of the row",
        f"coords = torch.arange({grid}, dtype=torch.float64)",
        f"omega = 1.0 / 10000 ** (torch.arange({dim} // 4, dtype=torch.float64) / ({dim} // 4))",
        f"col = torch.outer(coords.repeat({grid}), omega)",
        f"row = torch.outer(coords.repeat_interleave({grid}), omega)",
        "pos = torch.cat([col.sin(), col.cos(), row.sin(), row.cos()], dim=1).float()",
    ]
    if sub.args["prefix"].value:
        lines.append(f"pos = torch.cat([torch.zeros(1, {dim}), pos])  # CLS: no position")
    return [*lines, f'self.register_buffer("{sub.name}", pos.unsqueeze(0), persistent=False)']
