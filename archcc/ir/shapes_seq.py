"""Shape rules of the sequence primitives: tuple ports, packing, length masks, pooling, cat.

    port(lstm call, index=1)              ((B, T, H), (L, B, H), (L, B, H)) -> (L, B, H)
    pack_padded(x (B, T, C), lengths (B,)) -> (B, T, C)   a PackedSequence, padded shape kept
    length_mask(lengths (B,), x (B, T, C)) -> (B, T, 1)   True where t < length
    global_max_pool(x (B, C, T), dim=-1)   -> (B, C)
    cat(a (B, 3), b (B, 5), dim=-1)        -> (B, 8)
    sum(x (B, K, D), dim=-1)               -> (B, K);  unsqueeze(v (B, D), dim=-1) -> (B, D, 1)
"""

from __future__ import annotations

from archcc.ir import dtypes as types
from archcc.ir import shapes as s
from archcc.lazy import sympy


def port(ctx, attrs, shapes, dtypes):
    """One value of a tuple-valued call (an RNN's out, h or c)."""
    return shapes[0][attrs["index"]], dtypes[0]


def _lengths(shapes, dtypes, x_index: int, batch_first: bool):
    lengths, x = shapes[1 - x_index], shapes[x_index]
    dtype = dtypes[1 - x_index]
    batch = x[0] if batch_first else x[1]
    if len(lengths) != 1 or dtype != s.INT:
        raise s.ShapeError(f"lengths must be int64 (B,), got {dtype} {s.fmt(lengths)}")
    return lengths, x, batch


def pack_padded(ctx, attrs, shapes, dtypes):
    lengths, x, batch = _lengths(shapes, dtypes, 0, attrs["batch_first"])
    if not ctx.equal(lengths[0], batch):
        raise s.ShapeError(f"lengths {s.fmt(lengths)} must have one entry per sequence of "
                           f"{s.fmt(x)}")
    return x, dtypes[0]


def pad_packed(ctx, attrs, shapes, dtypes):
    out, like = shapes
    time = like[1] if attrs["batch_first"] else like[0]
    return ((out[0], time, out[2]) if attrs["batch_first"] else (time, out[1], out[2])), FLOAT


def length_mask(ctx, attrs, shapes, dtypes):
    lengths, x, batch = _lengths(shapes, dtypes, 1, attrs["batch_first"])
    if not ctx.equal(lengths[0], batch):
        raise s.ShapeError(f"lengths {s.fmt(lengths)} must have one entry per sequence of "
                           f"{s.fmt(x)}")
    return (*x[:2], sympy.Integer(1)), s.BOOL


def reduce_dim(ctx, attrs, shapes, dtypes):
    """Global pooling: the pooled axis disappears."""
    x = shapes[0]
    d = s._norm_dim(attrs["dim"], len(x))
    return (*x[:d], *x[d + 1:]), s.FLOAT


def cat(ctx, attrs, shapes, dtypes):
    first = shapes[0]
    d = s._norm_dim(attrs["dim"], len(first))
    total = first[d]
    for other in shapes[1:]:
        same_rest = len(other) == len(first) and all(
            ctx.equal(a, b) for i, (a, b) in enumerate(zip(first, other, strict=True)) if i != d)
        if not same_rest:
            raise s.ShapeError(f"cat along dim {attrs['dim']}: {s.fmt(first)} and "
                               f"{s.fmt(other)} differ in another dim")
        total = total + other[d]
    return (*first[:d], total, *first[d + 1:]), types.result([(d, False) for d in dtypes])


def unsqueeze(ctx, attrs, shapes, dtypes):
    x = shapes[0]
    d = s._norm_dim(attrs["dim"], len(x) + 1)
    return (*x[:d], sympy.Integer(1), *x[d:]), dtypes[0]


def flip(ctx, attrs, shapes, dtypes):
    s._norm_dim(attrs["dim"], len(shapes[0]))
    return shapes[0], dtypes[0]


def unflatten_as(ctx, attrs, shapes, dtypes):
    """(B*T, ...) back to (B, T, ...), the first two dims of ``like``: undoes
    ``flatten(x, start=0, end=1)`` after per-token work such as a character CNN."""
    x, like = shapes
    if len(like) < 2 or not ctx.equal(x[0], like[0] * like[1]):
        raise s.ShapeError(f"unflatten_as: dim 0 of {s.fmt(x)} is not the product of the "
                           f"first two dims of {s.fmt(like)}")
    return (like[0], like[1], *x[1:]), dtypes[0]


FLOAT = s.FLOAT
RULES = {"port": port, "pack_padded": pack_padded, "pad_packed": pad_packed,
         "length_mask": length_mask, "global_max_pool": reduce_dim,
         "global_avg_pool": reduce_dim, "sum": reduce_dim, "cat": cat,
         "unsqueeze": unsqueeze, "flip": flip, "logsigmoid": s.float_only("logsigmoid"),
         "unflatten_as": unflatten_as}
