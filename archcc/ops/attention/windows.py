"""Attention within windows of a channels-last grid (Swin), optionally shifted, with a
learned relative position bias.

    attn: {op: attention, dim: C, heads: nh, window: 7, shift: 3, grid: 56,
           position: relative_table}
    (B, H, W, C) -> roll -> windows (B, nW, N, C) -> attention per window -> merge -> roll back

It is the same matmul / softmax chain as plain attention plus additive biases (relative
positions, the shift mask), so ``fuse_attention`` makes it one SDPA call with ``attn_mask``.
"""

from __future__ import annotations

from archcc.ir.builder import Builder, E
from archcc.ir.graph import ModuleIR, Submodule
from archcc.ir.shapes import FLOAT, INT, ShapeError, fmt
from archcc.ops import dropout, parameter, register_buffer
from archcc.ops.attention.lowering import QKV
from archcc.ops.linear import projection
from archcc.parser.expr import Num


def facet_problems(scope, layer) -> list[tuple[str, str | None]]:
    """Window facet combinations that make no sense, as (message, hint)."""
    spec, problems = layer.spec, []
    if spec.window is None:
        if spec.shift != 0 or spec.position != "none" or spec.grid is not None:
            problems.append(("shift, grid and position: relative_table need `window`",
                             "add window: window_size"))
        return problems
    if spec.causal or spec.cross or spec.qkv != "fused":
        problems.append(("windowed attention is self attention with a fused qkv", None))
    if "shift" in layer.sizes and "grid" not in layer.sizes:
        problems.append(("a shifted window needs `grid` (the token grid side) for its "
                         "mask", "add grid: image_size // patch_size"))
    elif "shift" in layer.sizes:
        grid, window = (scope.value(layer.sizes[k]) for k in ("grid", "window"))
        shift = scope.value(layer.sizes["shift"])
        low = 0 if isinstance(spec.shift, str) else 1  # an expression may give 0: no shift
        if grid % window or not low <= shift < window:
            problems.append((f"grid ({grid}) must be a multiple of window ({window}) and "
                             f"{low} <= shift ({shift}) < window", None))
    return problems


def constructor_args(layer) -> dict:
    """The lowered class's arguments, as expressions over the owner's scope."""
    s, spec = layer.sizes, layer.spec
    args = {"dim": s["dim"], "n_head": s["heads"], "window": s["window"]}
    if "shift" in s:
        args.update(grid=s["grid"], shift=s["shift"])
    return {**args, "bias": Num(spec.bias), "dropout": s["dropout"]}


def grid_input(ctx, layer, shapes, kwargs):
    """The one (B, H, W, C) input of a grid layer (windowed attention, patch merging)."""
    x = shapes[0]
    if len(shapes) != 1 or kwargs:
        raise ShapeError(f"{layer.name} takes one input, a (B, H, W, C) grid")
    if len(x) != 4:
        raise ShapeError(f"{layer.name} needs a channels-last grid (B, H, W, C), got {fmt(x)}",
                         "patchify with layout: grid gives one")
    if not ctx.equal(x[3], layer.dim("dim")):
        raise ShapeError(f"{layer.name} expects {layer.dim('dim')} channels, got {fmt(x)}")
    return x


def call_shape(ctx, layer, shapes, kwargs) -> tuple:
    x = grid_input(ctx, layer, shapes, kwargs)
    window = layer.dim("window")
    for side in x[1:3]:
        ratio = ctx.concrete(side / window)
        if ratio.is_number and not ratio.is_integer:
            raise ShapeError(f"{layer.name}: grid side {side} ({ctx.concrete(side)}) is not a "
                             f"multiple of window {window} ({ctx.concrete(window)})")
    return x, FLOAT


# ---------------------------------------------------------------------------- lowering


def unshifted(layer) -> tuple:
    """(condition, constructor args, class) of the plain window attention a layer whose
    shift is an expression is where that expression is 0."""
    from archcc.parser.expr import BinOp

    args = {k: v for k, v in constructor_args(layer).items() if k not in ("grid", "shift")}
    zero = BinOp("eq", layer.sizes["shift"], Num(0))
    return zero, args, window_attention(False, layer.spec.position == "relative_table")


def window_attention(shifted: bool, relative: bool) -> ModuleIR:
    """Self-attention inside windows of a (B, H, W, C) grid; shifted windows roll first."""
    name = ("Shifted" if shifted else "") + "WindowAttention"
    b = Builder(name)
    side = "grid, grid" if shifted else "H, W"  # the shift mask fixes the grid
    grid = b.input("x", f"B, {side}, dim")
    subs: dict[str, Submodule] = {"qkv": projection("qkv", "dim", "3 * dim", QKV)}
    x = grid
    if shifted:
        grid = x = b.line().op("roll", x, var="x", shift=E("shift"), back=False)
    x = b.line().op("window_partition", x, var="x", window=E("window"))  # (B, nW, N, C)
    parts = b.op("split", b.line().call("qkv", x, var="qkv"), var="qkv", size=E("dim"), dim=-1)
    q, k, v = (b.op("getitem", parts, var=n, index=i) for i, n in enumerate("qkv"))
    q, k, v = (_heads(b, node, n) for node, n in ((q, "q"), (k, "k"), (v, "v")))
    att = b.line().op("matmul", q, b.op("transpose", k, var="att", dim0=-2, dim1=-1),
                      var="att")
    att = b.op("mul", att, b.op("const", var="scale", value=E("head_dim ** -0.5")), var="att")
    if relative:
        att = _relative_bias(b, subs, att)
    if shifted:
        subs["attn_mask"] = Submodule("attn_mask", "buffer", {
            "init": "shift_mask", "grid": E("grid"), "window": E("window"),
            "shift": E("shift")})
        mask = b.attr("attn_mask", "(grid / window) ** 2, 1, window ** 2, window ** 2")
        att = b.line().op("add", att, mask, var="att")
    att = b.line().op("softmax", att, var="att", dim=-1)
    att = b.line().op("dropout", att, var="att", p=E("dropout"))
    y = b.line().op("matmul", att, v, var="y")
    y = b.line().op("flatten", b.op("transpose", y, var="y", dim0=-3, dim1=-2), var="y",
                    start=-2)
    subs["proj"] = projection("proj", "dim", "dim")
    subs["drop"] = dropout.submodule("drop", E("dropout"))
    y = b.line().call("drop", b.call("proj", y, var="y"), var="y")
    y = b.line().op("window_merge", y, grid, var="y", window=E("window"))
    if shifted:
        y = b.line().op("roll", y, var="y", shift=E("shift"), back=True)
    b.ret(y)
    ctor = [("dim", None), ("n_head", None), ("window", None)]
    ctor += [("grid", None), ("shift", None)] if shifted else []
    scalars = {"dim": E("dim"), "n_head": E("n_head"), "head_dim": E("dim // n_head"),
               "window": E("window")}
    scalars.update({"shift": E("shift")} if shifted else {})
    return ModuleIR(
        name, "lowered", b.g, subs, ctor_args=[*ctor, ("bias", True), ("dropout", 0.0)],
        scalars={**scalars, "dropout": E("dropout")},
        doc=f"Self-attention within windows{' of the cyclically shifted grid' if shifted else ''}"
            f"{', relative position bias' if relative else ''} (Swin).",
        signature=("attention", "window", shifted, relative),
        display={"dim": "C", "n_head": "nh", "head_dim": "hs"})


def _heads(b: Builder, node: str, var: str) -> str:
    """(B, nW, N, C) -> (B, nW, nh, N, hs)."""
    b.line()
    node = b.op("unflatten", node, var=var, dim=-1, sizes=(E("n_head"), E("head_dim")))
    return b.op("transpose", node, var=var, dim0=-3, dim1=-2)


def _relative_bias(b: Builder, subs: dict, att: str) -> str:
    """Add the learned bias of each head for each (query, key) offset in the window."""
    subs["relative_position_bias_table"] = parameter.submodule(
        "relative_position_bias_table", (E("(2 * window - 1) ** 2"), E("n_head")),
        default_init="truncated_normal(0.02)")  # timm's
    subs["relative_position_index"] = Submodule("relative_position_index", "buffer",
                                                {"init": "relative_index",
                                                 "window": E("window")})
    table = b.attr("relative_position_bias_table", "(2 * window - 1) ** 2, n_head")
    index = b.attr("relative_position_index", "window ** 2, window ** 2", INT)
    bias = b.line().op("take", table, index, var="bias")  # (N, N, nh)
    bias = b.op("permute", bias, var="bias", dims=(2, 0, 1))
    return b.line().op("add", att, bias, var="att")


# ------------------------------------------------------------------------------ buffers


def _args(sub, arg, *names: str) -> list[str]:
    """Rendered arguments, parenthesised where they hold an operator."""
    return [f"({arg(sub.args[n])})" if " " in arg(sub.args[n]) else arg(sub.args[n])
            for n in names]


@register_buffer("relative_index")
def relative_index(sub, arg) -> list[str]:
    """Index into the (2w-1)^2 bias table for every (query, key) pair of a w x w window."""
    (w,) = _args(sub, arg, "window")
    return [
        "# row-major (row, col) of each window position; offsets shifted to be >= 0",
        f"coords = torch.arange({w})",
        f"rows, cols = coords.repeat_interleave({w}), coords.repeat({w})",
        f"index = (rows[:, None] - rows[None, :] + {w} - 1) * (2 * {w} - 1)",
        f"index = index + cols[:, None] - cols[None, :] + {w} - 1",
        f'self.register_buffer("{sub.name}", index, persistent=False)',
    ]


@register_buffer("shift_mask")
def shift_mask(sub, arg) -> list[str]:
    """-100 where query and key come from different regions of the rolled grid (Swin)."""
    grid, w, shift = _args(sub, arg, "grid", "window", "shift")
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
