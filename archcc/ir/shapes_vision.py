"""Shape rules of the vision primitives (patches, windows, grids), merged into ``RULES``.

Images are (B, C, H, W); Swin grids are channels last (B, H, W, C)::

    window_partition (B, H, W, C), window=7   ->  (B, H/7 * W/7, 49, C)
    merge_patches    (B, H, W, C)             ->  (B, H/2, W/2, 4*C)
"""

from __future__ import annotations

from archcc.ir.params import to_sympy
from archcc.ir.shapes import INT, ShapeError, _norm_dim, fmt


def _rank(shape, rank: int, what: str) -> None:
    if len(shape) != rank:
        raise ShapeError(f"{what} needs a rank-{rank} tensor, got {fmt(shape)}")


def _divides(ctx, side, size, what: str) -> None:
    ratio = ctx.concrete(side / size)
    if ratio.is_number and not ratio.is_integer:
        raise ShapeError(f"{what}: grid side {side} ({ctx.concrete(side)}) is not a multiple "
                         f"of {size} ({ctx.concrete(size)})")


def roll(ctx, attrs, shapes, dtypes):
    return shapes[0], dtypes[0]


def permute(ctx, attrs, shapes, dtypes):
    """``x.permute(*dims)``; an op that permutes around a layer may say in ``attrs["needs"]``
    what the layer takes ("norm needs an image (B, C, H, W)"), for a rank mismatch."""
    shape = shapes[0]
    if len(attrs["dims"]) != len(shape) and attrs.get("needs"):
        raise ShapeError(f"{attrs['needs']}, got {fmt(shape)}")
    dims = [_norm_dim(d, len(shape)) for d in attrs["dims"]]
    if sorted(dims) != list(range(len(shape))):
        raise ShapeError(f"permute{tuple(attrs['dims'])} does not fit {fmt(shape)}")
    return tuple(shape[d] for d in dims), dtypes[0]


def window_partition(ctx, attrs, shapes, dtypes):
    """(B, H, W, C) -> (B, nW, w*w, C): non-overlapping windows, row-major."""
    b, h, w, c = _grid(shapes[0], "window partition")
    size = to_sympy(attrs["window"])
    for side in (h, w):
        _divides(ctx, side, size, "window partition")
    return (b, (h / size) * (w / size), size * size, c), dtypes[0]


def window_merge(ctx, attrs, shapes, dtypes):
    """(B, nW, w*w, C) windows back onto the grid of ``like`` (B, H, W, C')."""
    windows, like = shapes
    _rank(windows, 4, "window merge")
    return (*_grid(like, "window merge")[:3], windows[3]), dtypes[0]


def merge_patches(ctx, attrs, shapes, dtypes):
    b, h, w, c = _grid(shapes[0], "patch merging")
    for side in (h, w):
        _divides(ctx, side, 2, "patch merging")
    return (b, h / 2, w / 2, 4 * c), dtypes[0]


def _grid(shape, what: str):
    _rank(shape, 4, what)
    return shape


def take(ctx, attrs, shapes, dtypes):
    """``table[index]``: rows of a table picked by an int64 index of any shape."""
    table, index = shapes
    if dtypes[1] != INT:
        raise ShapeError(f"take() needs an int64 index, got {dtypes[1]}")
    return (*index, *table[1:]), dtypes[0]


def unfold_patches(ctx, attrs, shapes, dtypes):
    """(B, C, H, W) -> (B, C*p*p, H/p * W/p), as ``F.unfold`` with stride = kernel = p."""
    b, c, h, w = _grid(shapes[0], "unfold")
    p = to_sympy(attrs["patch"])
    return (b, c * p * p, (h / p) * (w / p)), dtypes[0]


def resample_grid(ctx, attrs, shapes, dtypes):
    """A (1, g*g, D) position table resized to the patch grid of image ``like``."""
    table, like = shapes
    _rank(table, 3, "position resampling")
    p = to_sympy(attrs["patch"])
    return (table[0], (like[-2] / p) * (like[-1] / p), table[2]), dtypes[0]


VISION_RULES = {
    "roll": roll, "permute": permute, "window_partition": window_partition,
    "window_merge": window_merge, "merge_patches": merge_patches, "take": take,
    "unfold_patches": unfold_patches, "resample_grid": resample_grid,
}
