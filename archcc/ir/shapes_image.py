"""Shape rules of the primitives image and two-tower models add (merged into ``RULES``).

    token_at((B, T, D), argmax(ids))           -> (B, D)        # CLIP's EOS pooling
"""

from __future__ import annotations

from archcc.ir.params import to_sympy
from archcc.ir.shapes import FLOAT, INT, ShapeError, _norm_dim, float_only, fmt, to_float
from archcc.lazy import sympy


def argmax(ctx, attrs, shapes, dtypes):
    shape = shapes[0]
    if not shape:
        raise ShapeError("argmax() needs a tensor with at least one dim, got a scalar")
    d = _norm_dim(attrs["dim"], len(shape))
    return (*shape[:d], *shape[d + 1:]), INT


def token_at(ctx, attrs, shapes, dtypes):
    """x (B, T, D) and one index per row (B,) -> (B, D): ``x[arange(B), index]``."""
    x, index = shapes
    if len(x) != 3:
        raise ShapeError(f"token_at() picks one token per row of a (B, T, D) tensor, got {fmt(x)}")
    if len(index) != 1 or not ctx.equal(index[0], x[0]) or dtypes[1] != INT:
        raise ShapeError(f"token_at() needs one int64 index per row {fmt(x[:1])}, "
                         f"got {dtypes[1]} {fmt(index)}", "e.g. token_at(x, argmax(input_ids))")
    return (x[0], x[2]), dtypes[0]


def _image(shape, what: str):
    if len(shape) != 4:
        raise ShapeError(f"{what} needs an image (B, C, H, W), got {fmt(shape)}")


def interpolate(ctx, attrs, shapes, dtypes):
    x = shapes[0]
    _image(x, "nearest up-sampling")
    scale = to_sympy(attrs["scale"])
    return (x[0], x[1], x[2] * scale, x[3] * scale), FLOAT


def avg_pool(ctx, attrs, shapes, dtypes):
    x, k = shapes[0], attrs["kernel"]
    _image(x, "average pooling")
    sides = []
    for side in x[2:]:
        value = ctx.concrete(sympy.floor(side / k))
        sides.append(side / k if ctx.concrete(side / k) == value else value)
    return (x[0], x[1], *sides), FLOAT


def pad(ctx, attrs, shapes, dtypes):
    """``F.pad(x, (left, right, top, bottom))`` on the last two dims."""
    x, (left, right, top, bottom) = shapes[0], attrs["pad"]
    if len(x) < 2:
        raise ShapeError(f"pad() needs at least two dims, got {fmt(x)}")
    return (*x[:-2], x[-2] + top + bottom, x[-1] + left + right), dtypes[0]


def reshape_as(ctx, attrs, shapes, dtypes):
    y, like = shapes
    if not ctx.equal(sympy.Mul(*y), sympy.Mul(*like)):
        raise ShapeError(f"cannot reshape {fmt(y)} to {fmt(like)}: sizes differ")
    return like, dtypes[0]


IMAGE_RULES = {
    "quick_gelu": float_only("quick_gelu"), "exp": to_float, "sin": to_float, "cos": to_float,
    "normalize": float_only("normalize"),
    "argmax": argmax, "token_at": token_at,
    "interpolate": interpolate, "avg_pool": avg_pool, "reshape_as": reshape_as, "pad": pad,
}
