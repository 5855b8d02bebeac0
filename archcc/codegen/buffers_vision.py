"""``__init__`` lines of the fixed tensors vision classes register as buffers.

They are computed once at construction (never per call) and are not persistent, so they do
not appear in ``state_dict()`` and checkpoints never need to carry them::

    relative_index(window=7)  ->  self.relative_position_index, (49, 49) int64
"""

from __future__ import annotations

from archcc.codegen.render import render_expr


def _args(sub, resolve, *names: str) -> list[str]:
    return [f"({render_expr(sub.args[n], resolve)})" if " " in render_expr(sub.args[n], resolve)
            else render_expr(sub.args[n], resolve) for n in names]


def sincos2d(sub, resolve) -> list[str]:
    """MAE's fixed 2-D table: per token, sin|cos of its column, then sin|cos of its row."""
    grid, dim = _args(sub, resolve, "grid", "dim")
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


def relative_index(sub, resolve) -> list[str]:
    """Index into the (2w-1)^2 bias table for every (query, key) pair of a w x w window."""
    (w,) = _args(sub, resolve, "window")
    return [
        "# row-major (row, col) of each window position; offsets shifted to be >= 0",
        f"coords = torch.arange({w})",
        f"rows, cols = coords.repeat_interleave({w}), coords.repeat({w})",
        f"index = (rows[:, None] - rows[None, :] + {w} - 1) * (2 * {w} - 1)",
        f"index = index + cols[:, None] - cols[None, :] + {w} - 1",
        f'self.register_buffer("{sub.name}", index, persistent=False)',
    ]


def shift_mask(sub, resolve) -> list[str]:
    """-100 where query and key come from different regions of the rolled grid (Swin)."""
    grid, w, shift = _args(sub, resolve, "grid", "window", "shift")
    return [
        "# after the cyclic shift, tokens from the 3 x 3 regions of the grid must not mix",
        f"side = torch.arange({grid})",
        f"region = (side >= {grid} - {w}).long() + (side >= {grid} - {shift}).long()",
        "label = region[:, None] * 3 + region[None, :]",
        f"label = label.unflatten(0, (-1, {w})).unflatten(2, (-1, {w})).transpose(1, 2)",
        "label = label.flatten(0, 1).flatten(1, 2)  # (windows, window positions)",
        "apart = label[:, None, :, None] != label[:, None, None, :]",
        f'self.register_buffer("{sub.name}", torch.where(apart, -100.0, 0.0), '
        "persistent=False)",
    ]


VISION_BUFFERS = {"sincos2d": sincos2d, "relative_index": relative_index,
                  "shift_mask": shift_mask}
