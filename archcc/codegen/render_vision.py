"""PyTorch spelling of the vision primitives (see archcc/ir/shapes_vision.py).

Window partition and merge are chains of views, not helper functions, so the generated
file stays one self-contained module that torch.fx and torch.export trace::

    window_partition(x, 7)  ->  x.unflatten(1, (-1, 7)).unflatten(3, (-1, 7))
                                 .transpose(2, 3).flatten(1, 2).flatten(2, 3)
"""

from __future__ import annotations

from archcc.codegen.render import ATOM, method
from archcc.parser.expr import wrap


def _roll(attrs, args, expr, dtypes):
    shift = expr(attrs["shift"])
    shift = f"-{shift}" if attrs["back"] is False else shift
    return f"torch.roll({args[0][0]}, ({shift}, {shift}), (1, 2))", ATOM


def _permute(attrs, args, expr, dtypes):
    return method(args[0], f"permute({', '.join(map(str, attrs['dims']))})")


def _window_partition(attrs, args, expr, dtypes):
    w = expr(attrs["window"])
    return method(args[0], f"unflatten(1, (-1, {w})).unflatten(3, (-1, {w}))"
                           ".transpose(2, 3).flatten(1, 2).flatten(2, 3)")


def _window_merge(attrs, args, expr, dtypes):
    w = expr(attrs["window"])
    like = wrap(args[1][0], args[1][1], ATOM)
    return method(args[0], f"unflatten(1, ({like}.shape[1] // {w}, -1)).unflatten(3, ({w}, {w}))"
                           ".transpose(2, 3).flatten(1, 2).flatten(2, 3)")


def _merge_patches(attrs, args, expr, dtypes):
    # 2x2 neighbours in the order (0,0), (1,0), (0,1), (1,1), as the Swin reference
    return method(args[0], "unflatten(1, (-1, 2)).unflatten(3, (-1, 2))"
                           ".permute(0, 1, 3, 4, 2, 5).flatten(3)")


def _take(attrs, args, expr, dtypes):
    return f"{wrap(args[0][0], args[0][1], ATOM)}[{args[1][0]}]", ATOM


def _unfold_patches(attrs, args, expr, dtypes):
    p = expr(attrs["patch"])
    return f"F.unfold({args[0][0]}, kernel_size={p}, stride={p})", ATOM


def _resample_grid(attrs, args, expr, dtypes):
    grid, p = expr(attrs["grid"]), expr(attrs["patch"])
    like = wrap(args[1][0], args[1][1], ATOM)
    table = method(args[0], f"unflatten(1, ({grid}, {grid})).permute(0, 3, 1, 2)")[0]
    size = f"({like}.shape[-2] // {p}, {like}.shape[-1] // {p})"
    return (f'F.interpolate({table}, size={size}, mode="bicubic", antialias=True)'
            ".flatten(2).transpose(1, 2)"), ATOM


VISION_RENDERERS = {
    "roll": _roll, "permute": _permute, "window_partition": _window_partition,
    "window_merge": _window_merge, "merge_patches": _merge_patches, "take": _take,
    "unfold_patches": _unfold_patches, "resample_grid": _resample_grid,
}
