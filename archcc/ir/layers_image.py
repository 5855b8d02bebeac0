"""Image layers (conv2d, groupnorm, up/down sampling, timesteps, resblock, image_attention):
their sizes, checks, ``__init__`` submodules and shape rules.

:mod:`archcc.ir.layers` hands these ops over here, so the convolutional vocabulary lives in
one place. Output sides follow ``nn.Conv2d``: ``floor((H + 2 * padding - kernel) / stride) + 1``::

    conv_in: {op: conv2d, in: 3, out: 32, kernel: 3, padding: 1}  # (B, 3, H, W) -> (B, 32, H, W)
    down: {op: downsample, channels: 32}                  # (B, 32, H, W) -> (B, 32, H/2, W/2)
"""

from __future__ import annotations

import sympy

from archcc.ir.graph import Submodule
from archcc.ir.params import to_sympy
from archcc.ir.shapes import FLOAT, DimContext, Shape, ShapeError, fmt
from archcc.parser.expr import Num

# op -> (integer sizes, sizes that may be 0, float settings)
_FIELDS = {
    "conv2d": (("in_", "out", "kernel", "stride", "groups"), ("padding",), ()),
    "groupnorm": (("groups", "channels"), (), ("eps",)),
    "upsample": (("channels", "scale"), (), ()),
    "downsample": (("channels",), ("padding",), ()),
    "timesteps": (("dim",), (), ("downscale_freq_shift", "max_period", "scale")),
    "resblock": (("in_", "out", "groups"), (), ("eps", "dropout")),
    "image_attention": (("channels", "heads", "groups"), (), ("eps",)),
}
OPS = frozenset(_FIELDS)
_LOWERED = {"upsample", "downsample", "timesteps", "resblock", "image_attention"}


def declare_sizes(scope, layer) -> None:
    """Resolve this op's sizes onto ``layer.sizes`` (errors go to ``scope``)."""
    ints, zero_ok, scalars = _FIELDS[layer.op]
    spec, path = layer.spec, layer.path
    for key in ints:
        layer.sizes[key] = scope.size(getattr(spec, key), (*path, key.rstrip("_")))
    for key in zero_ok:
        layer.sizes[key] = scope.size(getattr(spec, key), (*path, key), positive=False)
    for key in scalars:
        layer.sizes[key] = scope.scalar(getattr(spec, key), (*path, key))
    if layer.op == "resblock" and spec.temb is not None:
        layer.sizes["temb"] = scope.size(spec.temb, (*path, "temb"))
    if any(v is None for v in layer.sizes.values()):
        return
    # facets that pick the generated class, from the spec's values (as diffusers decides)
    if layer.op == "resblock":
        shortcut = scope.value(layer.sizes["in_"]) != scope.value(layer.sizes["out"])
        layer.facets["shortcut"] = shortcut
    if layer.op == "timesteps":
        layer.facets["scaled"] = scope.value(layer.sizes["scale"]) != 1
    if layer.op == "downsample":
        layer.facets["pad_after"] = scope.value(layer.sizes["padding"]) == 0


def _divides(scope, layer, diag, part: str, whole: str) -> None:
    p, w = scope.value(layer.sizes[part]), scope.value(layer.sizes[whole])
    if w % p:
        divisors = [d for d in range(1, min(w, 64) + 1) if w % d == 0]
        scope.errors.append(diag(layer, f"{part} ({p}) must divide {whole.rstrip('_')} ({w})",
                                 f"divisors of {w}: {', '.join(map(str, divisors))}"))


def check_sizes(scope, layer, diag) -> None:
    """Divisibility rules torch would only report at construction or run time."""
    op = layer.op
    if op == "activation" and layer.spec.fn == "quick_gelu":
        scope.errors.append(diag(layer, "quick_gelu has no nn module; call it in forward",
                                 "write quick_gelu(x) in the forward wiring"))
    if op == "conv2d":
        _divides(scope, layer, diag, "groups", "in_")
        _divides(scope, layer, diag, "groups", "out")
    elif op == "groupnorm":
        _divides(scope, layer, diag, "groups", "channels")
    elif op == "resblock":
        _divides(scope, layer, diag, "groups", "in_")
        _divides(scope, layer, diag, "groups", "out")
    elif op == "image_attention":
        _divides(scope, layer, diag, "heads", "channels")
        _divides(scope, layer, diag, "groups", "channels")
    elif op == "downsample" and scope.value(layer.sizes["padding"]) not in (0, 1):
        scope.errors.append(diag(layer, f"padding ({scope.value(layer.sizes['padding'])}) "
                                 "must be 1 or 0", "0 pads right and bottom by one, as "
                                 "diffusers' downsample_padding: 0"))
    elif op == "timesteps" and scope.value(layer.sizes["dim"]) % 2:
        scope.errors.append(diag(layer, f"dim ({scope.value(layer.sizes['dim'])}) must be "
                                 "even: half sines, half cosines"))


def submodules(layer) -> list[Submodule]:
    """The ``__init__`` line of an image layer (lowered ones get their class at the call)."""
    s, spec, name, loc = layer.sizes, layer.spec, layer.name, layer.loc
    if layer.op == "conv2d":
        return [Submodule(name, "conv2d", {
            "in": s["in_"], "out": s["out"], "kernel": s["kernel"], "stride": s["stride"],
            "padding": s["padding"], "groups": s["groups"], "bias": Num(spec.bias)}, loc)]
    if layer.op == "groupnorm":
        return [Submodule(name, "groupnorm", {"groups": s["groups"], "channels": s["channels"],
                                              "eps": s["eps"], "affine": Num(spec.affine)}, loc)]
    args = {
        "upsample": lambda: {"channels": s["channels"], "scale": s["scale"]},
        "downsample": lambda: {"channels": s["channels"]},
        "timesteps": lambda: {"dim": s["dim"], "downscale_freq_shift": s["downscale_freq_shift"],
                              "max_period": s["max_period"], "scale": s["scale"]},
        "resblock": lambda: {"in_channels": s["in_"], "out_channels": s["out"],
                             "channels": s["in_"],  # the class without a shortcut
                             **({"temb_channels": s["temb"]} if "temb" in s else {}),
                             "groups": s["groups"], "eps": s["eps"], "dropout": s["dropout"]},
        "image_attention": lambda: {"channels": s["channels"], "n_head": s["heads"],
                                    "groups": s["groups"], "eps": s["eps"]},
    }[layer.op]()
    return [Submodule(name, "class", args, loc)]


# ----------------------------------------------------------------------------- shapes


def conv_side(ctx: DimContext, side, kernel, stride, padding) -> sympy.Expr:
    """``floor((side + 2 * padding - kernel) / stride) + 1``, kept in the spec's names where
    a plain form has the same value (``sample_size / 2`` rather than ``8``)."""
    span = side + 2 * padding - kernel
    if ctx.concrete(span).is_number and ctx.concrete(span) < 0:
        raise ShapeError(f"kernel {_both(ctx, kernel)} is larger than the padded input side "
                         f"{_both(ctx, side + 2 * padding)}",
                         "pad more, or use a smaller kernel")
    exact = sympy.expand(span / stride + 1)
    value = ctx.concrete(sympy.floor(span / stride) + 1)
    if not value.is_number:  # symbolic input side (a lowered class's H)
        if ctx.is_one(stride):
            return exact
        if ctx.equal(kernel, stride) and ctx.concrete(padding) == 0:
            return side / stride  # patches: callers check that the side divides
        return sympy.floor((span + stride) / stride)
    for candidate in (exact, side / stride):
        if ctx.concrete(candidate) == value:
            return candidate
    return value


def _both(ctx: DimContext, dim) -> str:
    """``sample_size + 2 (34)``; a plain number once."""
    value = ctx.concrete(dim)
    return str(dim) if value == dim else f"{dim} ({value})"


def _image(ctx: DimContext, name: str, x: Shape, channels, what: str = "channels") -> None:
    if len(x) != 4:
        raise ShapeError(f"{name} needs an image (B, C, H, W), got {fmt(x)}")
    if not ctx.equal(x[1], channels):
        raise ShapeError(f"{name} expects {channels} ({ctx.concrete(channels)}) {what}, "
                         f"got {fmt(x)}")


def conv2d_shape(ctx: DimContext, name: str, x: Shape, args: dict) -> Shape:
    """Shape rule of an ``nn.Conv2d`` built from these (expression) args."""
    get = {"stride": sympy.Integer(1), "padding": sympy.Integer(0)}
    get.update({k: to_sympy(v) for k, v in args.items() if k not in ("bias", "groups")})
    _image(ctx, name, x, get["in"], "input channels")
    try:
        h, w = (conv_side(ctx, side, get["kernel"], get["stride"], get["padding"])
                for side in x[2:])
    except ShapeError as exc:
        raise ShapeError(f"{name}: {exc.message}", exc.hint) from None
    return (x[0], get["out"], h, w)


def call_shape(ctx: DimContext, layer, shapes: list[Shape], dtypes: list[str],
               kwargs: tuple[str, ...]) -> tuple[Shape, str]:
    """Output (shape, dtype) of calling an image layer; raises ShapeError in spec words."""
    op, x, name = layer.op, shapes[0], layer.name
    wants_temb = op == "resblock" and "temb" in layer.sizes
    arity = 2 if wants_temb else 1
    if len(shapes) != arity or kwargs:
        usage = f"{name}(x, temb)" if wants_temb else f"{name}(x)"
        raise ShapeError(f"{name} takes {arity} input(s), got {len(shapes)}", f"call {usage}")
    if op == "conv2d":
        return conv2d_shape(ctx, name, x, layer.submodules[0].args), FLOAT
    if op == "timesteps":
        if len(x) != 1:
            raise ShapeError(f"{name} embeds one timestep per sample: needs (B,), got {fmt(x)}")
        return (x[0], layer.dim("dim")), FLOAT
    if op == "groupnorm":
        if len(x) < 2 or not ctx.equal(x[1], layer.dim("channels")):
            raise ShapeError(f"{name} expects (B, {layer.dim('channels')}, ...) "
                             f"({ctx.concrete(layer.dim('channels'))} channels), got {fmt(x)}")
        return x, FLOAT
    if op == "resblock":
        _image(ctx, name, x, layer.dim("in_"))
        if wants_temb and (len(shapes[1]) != 2 or not ctx.equal(shapes[1][1], layer.dim("temb"))):
            raise ShapeError(f"{name}: the time embedding must be (B, {layer.dim('temb')}), "
                             f"got {fmt(shapes[1])}")
        return (x[0], layer.dim("out"), x[2], x[3]), FLOAT
    _image(ctx, name, x, layer.dim("channels"))
    if op == "upsample":
        return (x[0], x[1], x[2] * layer.dim("scale"), x[3] * layer.dim("scale")), FLOAT
    if op == "downsample":
        conv, extra = layer.spec.conv, int(layer.facets["pad_after"])
        k, s, p = (sympy.Integer(v) for v in ((3, 2, 1 - extra) if conv else (2, 2, 0)))
        sides = (conv_side(ctx, side + extra if conv else side, k, s, p) for side in x[2:])
        return (x[0], x[1], *sides), FLOAT
    return x, FLOAT  # image_attention keeps the shape


def is_lowered(op: str) -> bool:
    return op in _LOWERED
