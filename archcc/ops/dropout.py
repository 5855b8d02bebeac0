"""``op: dropout``: zeroes elements with probability p in training, ``nn.Dropout``.

    drop: {op: dropout, p: dropout}  ->  self.drop = nn.Dropout(config.dropout)
"""

from __future__ import annotations

from typing import Literal

from archcc.ir.graph import Submodule
from archcc.ops import Example, Kind, Op, kind, op
from archcc.parser.fields import Scalar, Strict


class Dropout(Strict):
    """Zeroes elements with probability p in training; identity in eval."""

    op: Literal["dropout"]
    p: Scalar = 0.0
    """Probability of zeroing each element, in [0, 1]."""


def submodule(name: str, p, loc=None) -> Submodule:
    """An ``nn.Dropout`` line (lowered classes drop after their projections)."""
    return Submodule(name, "dropout", {"p": p}, loc)


@op
class DropoutOp(Op):
    name, schema, order = "dropout", Dropout, 50
    scalars = ("p",)
    example = Example("drop: {op: dropout, p: 0.1}")

    def submodules(self, layer):
        return [submodule(layer.name, layer.sizes["p"], layer.loc)]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        return shapes[0], dtypes[0]

    def params(self, values):
        return 0

    def flops(self, values, shapes):
        return 0


@kind
class DropoutKind(Kind):
    name = "dropout"

    def init_lines(self, sub, arg):
        return [f"self.{sub.name} = nn.Dropout({arg(sub.args['p'])})"]

    def call_shape(self, ctx, sub, shapes, dtypes):
        return shapes[0], dtypes[0]

    def state(self, sub, value):
        return []
