"""``op: patch_merge``: Swin's downsampling between stages.

Each 2x2 neighbourhood of a channels-last grid is concatenated (4 * dim), normalised and
projected::

    merge: {op: patch_merge, dim: embed_dim, out: 2 * embed_dim}
    merge(x) with x (B, H, W, embed_dim)  ->  (B, H/2, W/2, 2 * embed_dim)
"""

from __future__ import annotations

from typing import Literal

from archcc.ir.builder import Builder, E
from archcc.ir.graph import ModuleIR, Submodule
from archcc.ir.shapes import FLOAT, ShapeError
from archcc.ops import Example, Op, linear, norms, op
from archcc.ops.attention.windows import grid_input
from archcc.parser.fields import Scalar, Size, Strict


class PatchMerge(Strict):
    """Swin downsampling: each 2x2 patch neighbourhood of a (B, H, W, dim) grid is
    concatenated (4 * dim), normalised and projected: (B, H/2, W/2, out)."""

    op: Literal["patch_merge"]
    dim: Size
    """Channels of the input grid."""
    out: Size
    """Channels after merging (Swin: 2 * dim)."""
    eps: Scalar = 1e-5
    """LayerNorm epsilon over the 4 * dim concatenation."""


@op
class PatchMergeOp(Op):
    name, schema, order = "patch_merge", PatchMerge, 270
    sizes, scalars = ("dim", "out"), ("eps",)
    example = Example("merge: {op: patch_merge, dim: n_embd, out: 2 * n_embd}", {"n_embd": 16},
                      {"x": "[B, 4, 4, n_embd]"}, dims={})

    def submodules(self, layer):
        s = layer.sizes
        return [Submodule(layer.name, "class", {"dim": s["dim"], "out": s["out"],
                                                "eps": s["eps"]}, layer.loc)]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        x = grid_input(ctx, layer, shapes, kwargs)
        for side in x[1:3]:
            if ctx.concrete(side / 2).is_number and not ctx.concrete(side / 2).is_integer:
                raise ShapeError(f"{layer.name}: grid side {side} is odd")
        return (x[0], x[1] / 2, x[2] / 2, layer.dim("out")), FLOAT

    def lower(self, layer, kwargs):
        return lower()

    def params(self, values):
        return 4 * values["dim"] * 2 + 4 * values["dim"] * values["out"]

    def flops(self, values, shapes):
        batch, height, width, _ = shapes[0]
        return 2 * batch * (height // 2) * (width // 2) * 4 * values["dim"] * values["out"]


def lower() -> ModuleIR:
    """(B, H, W, dim) -> (B, H/2, W/2, out): 2x2 neighbours concatenated, normed, projected."""
    b = Builder("PatchMerging")
    x = b.input("x", "B, H, W, dim")
    subs = {"norm": norms.submodule("layernorm", "norm", E("4 * dim"), E("eps")),
            "reduction": linear.submodule("reduction", E("4 * dim"), E("out"), False)}
    x = b.line().op("merge_patches", x, var="x")
    x = b.line().call("norm", x, var="x")
    b.ret(b.line().call("reduction", x, var="x"))
    return ModuleIR("PatchMerging", "lowered", b.g, subs,
                    ctor_args=[("dim", None), ("out", None), ("eps", 1e-5)],
                    doc="Swin downsampling: 2x2 neighbours concatenated, normed, projected.",
                    signature=("patch_merge",))
