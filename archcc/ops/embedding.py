"""``op: embedding``: a lookup table, ``nn.Embedding``. Learned positions are one too.

    wte: {op: embedding, num: vocab_size, dim: n_embd}
    ->  self.wte = nn.Embedding(config.vocab_size, config.n_embd)
    wte(ids) with int64 ids (B, T)  ->  (B, T, n_embd)
"""

from __future__ import annotations

from typing import Literal

from archcc.ir.graph import Submodule
from archcc.ir.params import to_sympy
from archcc.ir.shapes import FLOAT, INT, ShapeError
from archcc.ops import Example, Kind, Op, kind, op, register_helper
from archcc.ops.base import field_diag
from archcc.parser.expr import Num
from archcc.parser.fields import Scalar, Size, Strict


class Embedding(Strict):
    """Lookup table: int64 ids (B, T) -> vectors (B, T, dim). Learned positions use this too."""

    op: Literal["embedding"]
    num: Size
    """Number of rows (vocabulary size, or maximum positions)."""
    dim: Size
    """Width of each vector."""
    padding_idx: int | None = None
    """Row whose gradient is always zero (HF `pad_token_id`)."""
    scale: Scalar | None = None
    """Multiply every vector by this (Gemma: `hidden_size ** 0.5`), rounded to the weight's
    dtype first as Hugging Face does (bf16 Gemma multiplies by 55.5, not 55.4256)."""


def submodule(name: str, num, dim, padding_idx=None, loc=None, scale=None) -> Submodule:
    """An ``nn.Embedding`` line; lowered classes use it for their tables (T5 buckets)."""
    args = {"num": num, "dim": dim}
    if padding_idx is not None:
        args["padding_idx"] = Num(padding_idx)
    if scale is not None:
        args["scale"] = scale
    return Submodule(name, "embedding", args, loc)


@op
class EmbeddingOp(Op):
    name, schema, order = "embedding", Embedding, 10
    sizes = ("num", "dim")
    example = Example("wte: {op: embedding, num: vocab_size, dim: n_embd}",
                      {"vocab_size": 50, "n_embd": 16}, {"x": "[B, T] int64"})

    def declare(self, scope, layer):
        super().declare(scope, layer)
        if layer.spec.scale is not None:
            layer.sizes["scale"] = scope.scalar(layer.spec.scale, (*layer.path, "scale"))

    def check(self, scope, layer):
        pad, num = layer.spec.padding_idx, scope.value(layer.sizes["num"])
        if pad is not None and isinstance(num, int) and not -num <= pad < num:
            scope.errors.append(field_diag(scope, layer, "padding_idx",
                                           f"padding_idx {pad} is no row of {num}",
                                           f"a row index in [0, {num}) (negative counts "
                                           "from the end, as in torch)"))

    def submodules(self, layer):
        return [submodule(layer.name, layer.sizes["num"], layer.sizes["dim"],
                          layer.spec.padding_idx, layer.loc, layer.sizes.get("scale"))]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        if dtypes[0] != INT:
            raise ShapeError(f"{layer.name} is an embedding and needs int64 ids, got {dtypes[0]}")
        return (*shapes[0], layer.dim("dim")), FLOAT

    def weight_shape(self, layer):
        return layer.sizes["num"], layer.sizes["dim"]

    def params(self, values):
        return values["num"] * values["dim"]

    def flops(self, values, shapes):
        return 0


@kind
class EmbeddingKind(Kind):
    name = "embedding"
    init_params = ("weight",)
    init = {"weight": "normal(0.02)"}  # Hugging Face, nanoGPT; padding rows stay zero
    torch_init = {"weight": "normal(1.0)"}

    def init_lines(self, sub, arg):
        a = sub.args
        pad = f", padding_idx={arg(a['padding_idx'])}" if "padding_idx" in a else ""
        if "scale" in a:
            return [f"self.{sub.name} = ScaledEmbedding({arg(a['num'])}, {arg(a['dim'])}, "
                    f"{arg(a['scale'])}{pad})"]
        return [f"self.{sub.name} = nn.Embedding({arg(a['num'])}, {arg(a['dim'])}{pad})"]

    def call_shape(self, ctx, sub, shapes, dtypes):
        return (*shapes[0], to_sympy(sub.args["dim"])), FLOAT

    def state(self, sub, value):
        return ["weight"]


SCALED = '''
class ScaledEmbedding(nn.Embedding):
    """An embedding whose vectors are multiplied by ``scale`` (Gemma: sqrt(hidden_size)).

    The scale is a buffer, rounded to the weight's dtype before the product, as Hugging Face
    does: a bfloat16 model multiplies by bfloat16(scale).
    """

    def __init__(self, num: int, dim: int, scale: float, padding_idx: int | None = None) -> None:
        super().__init__(num, dim, padding_idx=padding_idx)
        self.register_buffer("scale", torch.tensor(scale), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return super().forward(ids) * self.scale.to(self.weight.dtype)
'''

register_helper("ScaledEmbedding", SCALED)
