"""Vision facets lowered to primitive IR: patch embeddings, windowed attention, merging.

Each facet is a field of an existing op, not a model name::

    patchify:  proj (conv | linear), cls_token, positions (none | learned | sincos),
               interpolate, layout (tokens | grid), norm
    attention: window, shift, grid, position: relative_table          (Swin)
    patch_merge                                                        (Swin downsampling)

Windowed attention is the same matmul / softmax chain as ``op: attention`` plus additive
biases (relative positions, the shift mask), so ``fuse_attention`` turns it into one
``F.scaled_dot_product_attention`` call with ``attn_mask``.
"""

from __future__ import annotations

from archcc.ir.graph import ModuleIR, Submodule
from archcc.ir.lowering import B, E, _Builder, _linear
from archcc.ir.params import ParamScope, symbol
from archcc.ir.shapes import FLOAT, INT, ShapeError, fmt
from archcc.parser.expr import Num

H, W = symbol("H"), symbol("W")


# ------------------------------------------------------------------------- declaration


def check_facets(scope: ParamScope, layer) -> bool:
    """Facet combinations that make no sense are spec errors, reported at the layer."""
    spec, problems = layer.spec, []
    if layer.op == "patchify":
        if spec.positions != "none" and spec.image is None:
            problems.append((f"positions: {spec.positions} needs `image` (the image side the "
                             "table is laid out for)", "add image: image_size"))
        if spec.interpolate and spec.positions != "learned":
            problems.append(("interpolate resamples learned positions; set positions: "
                             "learned", None))
        if spec.layout == "grid" and (spec.cls_token or spec.positions != "none"
                                      or spec.proj == "linear"):
            problems.append(("layout: grid is a conv stem without CLS token or position "
                             "table", None))
    if layer.op == "attention" and spec.window is None:
        if spec.shift != 0 or spec.position != "none" or spec.grid is not None:
            problems.append(("shift, grid and position: relative_table need `window`",
                             "add window: window_size"))
    if layer.op == "attention" and spec.window is not None:
        if spec.causal or spec.cross or spec.qkv != "fused":
            problems.append(("windowed attention is self attention with a fused qkv", None))
        if "shift" in layer.sizes and "grid" not in layer.sizes:
            problems.append(("a shifted window needs `grid` (the token grid side) for its "
                             "mask", "add grid: image_size // patch_size"))
        elif "shift" in layer.sizes:
            grid, window = (scope.value(layer.sizes[k]) for k in ("grid", "window"))
            shift = scope.value(layer.sizes["shift"])
            if grid % window or not 0 < shift < window:
                problems.append((f"grid ({grid}) must be a multiple of window ({window}) and "
                                 f"0 < shift ({shift}) < window", None))
    from archcc.ir.layers import _diag

    scope.errors += [_diag(layer, message, hint) for message, hint in problems]
    return not problems


def submodule_args(layer) -> dict:
    """Constructor arguments of the lowered class, as expressions over the owner's scope."""
    s, spec = layer.sizes, layer.spec
    if layer.op == "patch_merge":
        return {"dim": s["dim"], "out": s["out"], "eps": s["eps"]}
    if layer.op == "patchify":
        args = {"in_channels": s["in_channels"], "dim": s["dim"], "patch": s["patch"]}
        if "image" in s:
            args["image"] = s["image"]
        if spec.norm:
            args["eps"] = s["eps"]
        return args
    args = {"dim": s["dim"], "n_head": s["heads"], "window": s["window"]}
    if "shift" in s:
        args.update(grid=s["grid"], shift=s["shift"])
    return {**args, "bias": Num(spec.bias), "dropout": s["dropout"]}


def call_shape(ctx, layer, shapes, kwargs) -> tuple:
    """Windowed attention and patch merging take a channels-last grid (B, H, W, C)."""
    x = shapes[0]
    if len(shapes) != 1 or kwargs:
        raise ShapeError(f"{layer.name} takes one input, a (B, H, W, C) grid")
    if len(x) != 4:
        raise ShapeError(f"{layer.name} needs a channels-last grid (B, H, W, C), got {fmt(x)}",
                         "patchify with layout: grid gives one")
    if not ctx.equal(x[3], layer.dim("dim")):
        raise ShapeError(f"{layer.name} expects {layer.dim('dim')} channels, got {fmt(x)}")
    if layer.op == "patch_merge":
        for side in x[1:3]:
            if ctx.concrete(side / 2).is_number and not ctx.concrete(side / 2).is_integer:
                raise ShapeError(f"{layer.name}: grid side {side} is odd")
        return (x[0], x[1] / 2, x[2] / 2, layer.dim("out")), FLOAT
    window = layer.dim("window")
    for side in x[1:3]:
        ratio = ctx.concrete(side / window)
        if ratio.is_number and not ratio.is_integer:
            raise ShapeError(f"{layer.name}: grid side {side} ({ctx.concrete(side)}) is not a "
                             f"multiple of window {window} ({ctx.concrete(window)})")
    return x, FLOAT


def builder(layer):
    """The lowered-class factory for a vision layer, or None if it is not one."""
    spec = layer.spec
    if layer.op == "patchify":
        return lambda: patchify(spec)
    if layer.op == "patch_merge":
        return patch_merge
    if layer.op == "attention" and spec.window is not None:
        return lambda: window_attention(spec.shift != 0, spec.position == "relative_table")
    return None


# ------------------------------------------------------------------------------ patchify


def _table(b: _Builder, name: str, shape: tuple, dtype: str = FLOAT) -> str:
    node = b.op("get_attr", var=name, target=name)
    b.g.nodes[node].update(shape=shape, dtype=dtype)
    return node


def patchify(spec) -> ModuleIR:
    """(B, C, H, W) -> (B, N, dim) tokens [+ CLS] [+ positions], or a (B, H/p, W/p, dim) grid."""
    b = _Builder("PatchEmbed")
    fixed = spec.positions != "none" and not spec.interpolate  # the table fixes the size
    side = (symbol("image"),) * 2 if fixed else (H, W)
    image = b.input("x", (B, symbol("in_channels"), *side))
    subs, scalars = {}, {}
    ctor = [("in_channels", None), ("dim", None), ("patch", None)]
    if spec.proj == "conv":
        subs["proj"] = Submodule("proj", "conv2d", {"in": E("in_channels"), "out": E("dim"),
                                                    "kernel": E("patch"), "stride": E("patch")})
        x = b.line().call("proj", image, var="x")  # (B, dim, H/p, W/p)
        if spec.layout == "grid":
            x = b.op("permute", x, var="x", dims=(0, 2, 3, 1))
        else:
            x = b.op("transpose", b.op("flatten", x, var="x", start=2), var="x", dim0=1, dim1=2)
    else:
        subs["proj"] = _linear("proj", "in_channels * patch * patch", "dim")
        subs["proj"].args["bias"] = Num(True)
        scalars["patch"] = E("patch")
        x = b.line().op("unfold_patches", image, var="x", patch=E("patch"))
        x = b.op("transpose", x, var="x", dim0=1, dim1=2)
        x = b.call("proj", x, var="x")
    if spec.norm:
        subs["norm"] = Submodule("norm", "layernorm", {"dim": E("dim"), "eps": E("eps"),
                                                       "bias": Num(True)})
        ctor.append(("eps", 1e-5))
        x = b.line().call("norm", x, var="x")
    prefix = 1 if spec.cls_token else 0
    if spec.cls_token:
        subs["cls_token"] = Submodule("cls_token", "parameter",
                                      {"shape": (Num(1), Num(1), E("dim")), "init": "zeros"})
        token = _table(b, "cls_token", (1, 1, symbol("dim")))
        x = b.line().op("prepend", token, x, var="x")
    if spec.positions != "none":
        ctor.insert(3, ("image", None))
        x = _positions(b, spec, subs, scalars, image, x, prefix)
    b.ret(x)
    return ModuleIR("PatchEmbed", "lowered", b.g, subs, ctor_args=ctor, scalars=scalars,
                    doc=_patch_doc(spec),
                    signature=("patchify", spec.proj, spec.cls_token, spec.positions,
                               spec.interpolate, spec.layout, spec.norm))


def _positions(b, spec, subs, scalars, image, x, prefix) -> str:
    rows = E(f"(image // patch) ** 2 + {prefix}" if prefix else "(image // patch) ** 2")
    shape = (1, (symbol("image") / symbol("patch")) ** 2 + prefix, symbol("dim"))
    if spec.positions == "learned":
        subs["pos_embed"] = Submodule("pos_embed", "parameter",
                                      {"shape": (Num(1), rows, E("dim")), "init": "zeros"})
    else:
        subs["pos_embed"] = Submodule("pos_embed", "buffer", {
            "init": "sincos2d", "grid": E("image // patch"), "dim": E("dim"),
            "prefix": Num(prefix)})
    pos = _table(b, "pos_embed", shape)
    if spec.interpolate:
        scalars.update(patch=E("patch"), grid=E("image // patch"))
        b.line()
        table = b.op("subscript", pos, var="pos", index=((None, None), (prefix, None)))
        pos = b.op("resample_grid", table, image, var="pos", grid=E("grid"), patch=E("patch"))
        if prefix:
            head = b.op("subscript", _table(b, "pos_embed", shape), var="pos",
                        index=((None, None), (None, prefix)))
            pos = b.op("prepend", head, pos, var="pos")
    return b.line().op("add", x, pos, var="x")


def _patch_doc(spec) -> str:
    how = "a strided conv" if spec.proj == "conv" else "unfold + linear"
    extras = [("a CLS token", spec.cls_token),
              (f"{spec.positions} positions" + (" (resampled)" if spec.interpolate else ""),
               spec.positions != "none"),
              ("a LayerNorm", spec.norm)]
    extra = ", ".join(text for text, on in extras if on)
    out = "a channels-last grid" if spec.layout == "grid" else "tokens"
    return f"Image patches to {out} by {how}" + (f"; {extra}." if extra else ".")


# -------------------------------------------------------------------------- patch merge


def patch_merge() -> ModuleIR:
    """(B, H, W, dim) -> (B, H/2, W/2, out): 2x2 neighbours concatenated, normed, projected."""
    b = _Builder("PatchMerging")
    x = b.input("x", (B, H, W, symbol("dim")))
    subs = {"norm": Submodule("norm", "layernorm", {"dim": E("4 * dim"), "eps": E("eps"),
                                                    "bias": Num(True)}),
            "reduction": Submodule("reduction", "linear", {"in": E("4 * dim"), "out": E("out"),
                                                           "bias": Num(False)})}
    x = b.line().op("merge_patches", x, var="x")
    x = b.line().call("norm", x, var="x")
    b.ret(b.line().call("reduction", x, var="x"))
    return ModuleIR("PatchMerging", "lowered", b.g, subs,
                    ctor_args=[("dim", None), ("out", None), ("eps", 1e-5)],
                    doc="Swin downsampling: 2x2 neighbours concatenated, normed, projected.",
                    signature=("patch_merge",))


# ------------------------------------------------------------------- window attention


def window_attention(shifted: bool, relative: bool) -> ModuleIR:
    """Self-attention inside windows of a (B, H, W, C) grid; shifted windows roll first."""
    name = ("Shifted" if shifted else "") + "WindowAttention"
    b = _Builder(name)
    side = (symbol("grid"),) * 2 if shifted else (H, W)  # the shift mask fixes the grid
    grid = b.input("x", (B, *side, symbol("dim")))
    subs: dict[str, Submodule] = {"qkv": _linear("qkv", "dim", "3 * dim")}
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
        nw, n = (symbol("grid") / symbol("window")) ** 2, symbol("window") ** 2
        att = b.line().op("add", att, _table(b, "attn_mask", (nw, 1, n, n)), var="att")
    att = b.line().op("softmax", att, var="att", dim=-1)
    att = b.line().op("dropout", att, var="att", p=E("dropout"))
    y = b.line().op("matmul", att, v, var="y")
    y = b.line().op("flatten", b.op("transpose", y, var="y", dim0=-3, dim1=-2), var="y",
                    start=-2)
    subs["proj"] = _linear("proj", "dim", "dim")
    subs["drop"] = Submodule("drop", "dropout", {"p": E("dropout")})
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


def _heads(b: _Builder, node: str, var: str) -> str:
    """(B, nW, N, C) -> (B, nW, nh, N, hs)."""
    b.line()
    node = b.op("unflatten", node, var=var, dim=-1, sizes=(E("n_head"), E("head_dim")))
    return b.op("transpose", node, var=var, dim0=-3, dim1=-2)


def _relative_bias(b: _Builder, subs: dict, att: str) -> str:
    """Add the learned bias of each head for each (query, key) offset in the window."""
    subs["relative_position_bias_table"] = Submodule(
        "relative_position_bias_table", "parameter",
        {"shape": (E("(2 * window - 1) ** 2"), E("n_head")), "init": "zeros"})
    subs["relative_position_index"] = Submodule("relative_position_index", "buffer",
                                                {"init": "relative_index",
                                                 "window": E("window")})
    n, nh = symbol("window") ** 2, symbol("n_head")
    table = _table(b, "relative_position_bias_table", ((2 * symbol("window") - 1) ** 2, nh))
    index = _table(b, "relative_position_index", (n, n), INT)
    bias = b.line().op("take", table, index, var="bias")  # (N, N, nh)
    bias = b.op("permute", bias, var="bias", dims=(2, 0, 1))
    return b.line().op("add", att, bias, var="att")
