"""``op: embedding_bag``: a bag of embeddings reduced per bag, ``nn.EmbeddingBag`` (fastText).

    bag: {op: embedding_bag, num: vocab, dim: 64, mode: mean}
    bag(ids) with ids (B, L)                 ->  (B, 64)
    bag(flat, offsets) with (N,), (nb,)      ->  (nb, 64)
"""

from __future__ import annotations

from typing import Literal

from archcc.codegen import safe_text
from archcc.ir.graph import Submodule
from archcc.ir.shapes import FLOAT, INT, ShapeError, fmt
from archcc.ops import Example, Kind, Op, kind, op
from archcc.parser.expr import Num
from archcc.parser.fields import Size, Strict


class EmbeddingBag(Strict):
    """Bag of embeddings reduced per bag: ids (B, L) -> (B, dim), or flat ids (N,) with
    offsets (nb,) -> (nb, dim)."""

    op: Literal["embedding_bag"]
    num: Size
    """Number of rows (vocabulary size)."""
    dim: Size
    """Width of each vector."""
    mode: Literal["mean", "sum", "max"] = "mean"
    """How a bag's vectors are reduced."""
    padding_idx: int | None = None
    """Row that is left out of every bag (and never trained)."""


@op
class EmbeddingBagOp(Op):
    name, schema, order, wrappable = "embedding_bag", EmbeddingBag, 170, False
    sizes, arity = ("num", "dim"), (1, 2)
    example = Example("bag: {op: embedding_bag, num: 50, dim: 8}", {}, {"x": "[B, T] int64"})

    def submodules(self, layer):
        s, spec = layer.sizes, layer.spec
        args = {"num": s["num"], "dim": s["dim"], "mode": spec.mode}
        if spec.padding_idx is not None:
            args["padding_idx"] = Num(spec.padding_idx)
        return [Submodule(layer.name, "embedding_bag", args, layer.loc)]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        return _embedding_bag(layer, shapes, dtypes), FLOAT

    def params(self, values):
        return values["num"] * values["dim"]

    def flops(self, values, shapes):
        return 0


@kind
class EmbeddingBagKind(Kind):
    name = "embedding_bag"
    init_params = ("weight",)
    init = {"weight": "normal(0.02)"}
    torch_init = {"weight": "normal(1.0)"}

    def init_lines(self, sub, arg):
        a = sub.args
        pad = f", padding_idx={arg(a['padding_idx'])}" if "padding_idx" in a else ""
        return [f"self.{sub.name} = nn.EmbeddingBag({arg(a['num'])}, {arg(a['dim'])}, "
                f"mode={safe_text.literal(a['mode'])}{pad})"]

    def state(self, sub, value):
        return ["weight"]


def _embedding_bag(layer, shapes, dtypes):
    if dtypes[0] != INT:
        raise ShapeError(f"{layer.name} is an embedding bag and needs int64 ids, got {dtypes[0]}")
    ids = shapes[0]
    if len(shapes) == 1 and len(ids) == 2:
        return (ids[0], layer.dim("dim"))
    if len(shapes) == 2 and len(ids) == 1 and len(shapes[1]) == 1 and dtypes[1] == INT:
        return (shapes[1][0], layer.dim("dim"))
    raise ShapeError(f"{layer.name} takes ids (B, L), or flat ids (N,) and int64 offsets "
                     f"(nb,); got {', '.join(fmt(s) for s in shapes)}")
