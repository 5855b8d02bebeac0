"""Spec layers -> ``__init__`` submodules, and the shape each layer gives when called.

``declare`` turns one ``layers:`` entry into a :class:`Layer`: its resolved sizes, the
``Submodule`` line(s) it adds to the owning class, and (for attention, ffn, patchify and
sinusoidal) which lowered class it instantiates. ``call_shape`` is the layer's shape rule at
a call site, checked with concrete param values::

    ln_1: {op: layernorm, dim: n_embd}   ->  self.ln_1 = nn.LayerNorm(config.n_embd, ...)
    ln_1(x) with x (B, T, 512)           ->  ShapeError("ln_1 expects last dim n_embd (768)")
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from archcc import plugins
from archcc.diagnostics import Diagnostic, SourceLoc
from archcc.ir import layers_image, layers_seq, lower_decoder
from archcc.ir.graph import Submodule
from archcc.ir.params import ParamScope, to_sympy
from archcc.ir.shapes import FLOAT, INT, DimContext, Shape, ShapeError, fmt
from archcc.parser import schema
from archcc.parser.expr import Expr, Num
from archcc.parser.yaml_loader import SpecPath

# Which spec fields hold sizes (integers) and which hold float settings, per op.
_SIZES = {"embedding": ("num", "dim"), "linear": ("in_", "out"), "layernorm": ("dim",),
          "rmsnorm": ("dim",), "attention": ("dim", "heads"), "ffn": ("dim", "hidden"),
          "patchify": ("in_channels", "dim", "patch"), "sinusoidal": ("dim", "max_len"),
          "residual": ("dim",), "dropout": (), "activation": (), "parameter": (),
          "relative_bias": ("heads", "buckets", "max_distance"),
          "patch_merge": ("dim", "out"),
          **{op: () for op in layers_image.OPS}}  # image ops resolve their own sizes
_SCALARS = {"layernorm": ("eps",), "rmsnorm": ("eps",), "dropout": ("p",),
            "attention": ("dropout",), "ffn": ("dropout",), "residual": ("eps",),
            "parameter": ("value",), "patchify": ("eps",), "patch_merge": ("eps",)}
_SIZES.update(layers_seq.SIZES)
_SCALARS.update(layers_seq.SCALARS)
_SIZES[lower_decoder.OP] = lower_decoder.SIZES
_SCALARS[lower_decoder.OP] = lower_decoder.SCALARS
# Sizes only some facets need: resolved when given (vision facets, see lower_vision.py).
_OPTIONAL_SIZES = {"attention": ("window", "shift", "grid"), "patchify": ("image",),
                   lower_decoder.OP: lower_decoder.OPTIONAL_SIZES}


@dataclass
class Layer:
    """One resolved ``layers:`` entry of a block."""

    name: str
    spec: object
    path: SpecPath
    loc: SourceLoc
    sizes: dict[str, Expr] = field(default_factory=dict)
    submodules: list[Submodule] = field(default_factory=list)
    inner: Layer | None = None  # residual: the wrapped layer
    lowered: tuple | None = None  # facets of the lowered class, fixed at the first call
    facets: dict = field(default_factory=dict)  # facets fixed by concrete sizes (in != out)

    @property
    def op(self) -> str:
        return "repeat" if isinstance(self.spec, schema.Repeat) else self.spec.op

    def dim(self, key: str) -> sympy.Expr:
        return to_sympy(self.sizes[key])


def _field(spec: object, key: str) -> object:
    return getattr(spec, key)


def declare(scope: ParamScope, name: str, spec: object, path: SpecPath,
            blocks: dict) -> Layer | None:
    """Resolve one layer; errors are recorded on ``scope`` and None returned."""
    layer = Layer(name, spec, path, scope.loaded.where.key(path))
    op = layer.op
    if op == "repeat":
        return _declare_repeat(scope, layer, blocks)
    plugin = plugins.get(op)
    if plugin is not None:
        return _declare_plugin(scope, layer, plugin)
    for key in _SIZES[op]:
        layer.sizes[key] = scope.size(_field(spec, key), (*path, key.rstrip("_")))
    for key in _SCALARS.get(op, ()):
        layer.sizes[key] = scope.scalar(_field(spec, key), (*path, key))
    if op in layers_seq.OPS:
        layers_seq.declare_extra(scope, layer)
    for key in _OPTIONAL_SIZES.get(op, ()):
        raw = _field(spec, key)
        if raw is not None and not (key == "shift" and raw == 0):
            layer.sizes[key] = scope.size(raw, (*path, key))
    if op == "parameter":
        for i, raw in enumerate(spec.shape):
            layer.sizes[f"shape{i}"] = scope.size(raw, (*path, "shape", str(i)))
    if op in layers_image.OPS:
        layers_image.declare_sizes(scope, layer)
    if any(v is None for v in layer.sizes.values()):
        return None
    if op == "residual":
        layer.inner = declare(scope, name, spec.layer, (*path, "layer"), blocks)
        if layer.inner is None:
            return None
    _check_sizes(scope, layer)
    from archcc.ir import lower_vision

    if not lower_vision.check_facets(scope, layer):
        return None
    layer.submodules = _submodules(layer)
    return layer


def _declare_plugin(scope: ParamScope, layer: Layer, plugin: plugins.OpPlugin) -> Layer | None:
    """A plugin op: its sizes and scalars resolved, its own check, one ``__init__`` line."""
    fields = plugin.schema.model_fields
    for key in (*plugin.sizes, *plugin.scalars):
        resolve = scope.size if key in plugin.sizes else scope.scalar
        layer.sizes[key] = resolve(_field(layer.spec, key), (*layer.path, fields[key].alias or key))
    if any(v is None for v in layer.sizes.values()):
        return None
    if plugin.check is not None:
        problem = plugin.check({k: scope.value(layer.sizes[k]) for k in plugin.sizes})
        if problem:
            message, _, hint = problem.partition(schema.HINT_MARK)
            scope.errors.append(_diag(layer, message, hint or None))
            return None
    layer.submodules = [Submodule(layer.name, "plugin", plugins.constructor_args(plugin, layer),
                                  layer.loc, cls=plugin.class_name)]
    return layer


def _declare_repeat(scope: ParamScope, layer: Layer, blocks: dict) -> Layer | None:
    """``{repeat: Block, times: n}`` (with ``cycle``) or ``{pattern: AAF, blocks: {...}}``:
    one ``nn.ModuleList`` submodule; None (errors recorded) when a block is unknown."""
    from archcc.parser.expr import did_you_mean

    spec, path = layer.spec, layer.path
    if spec.pattern is not None and not _pattern_ok(scope, layer, blocks):
        return None
    for i, block in enumerate(spec.block_names() if spec.pattern is None else ()):
        if block not in blocks:
            where = "" if i == 0 else " in cycle"
            scope.errors.append(_diag(layer, f"unknown block '{block}'{where}",
                                      did_you_mean(block, set(blocks))
                                      or "define it under `blocks:`"))
            return None
    times = spec.times if spec.times is not None else len(spec.pattern)
    layer.sizes["times"] = scope.size(times, (*path, "times"), limit=10_000)
    if layer.sizes["times"] is None:
        return None
    args = {"times": layer.sizes["times"], "cycle": tuple(spec.cycle)}
    if spec.pattern is not None:
        count = scope.value(layer.sizes["times"])
        if count != len(spec.pattern):
            scope.errors.append(Diagnostic(scope.loaded.where.key((*path, "times")),
                                           ".".join((*path, "times")),
                                           f"times ({count}) disagrees with the pattern's "
                                           f"{len(spec.pattern)} layers",
                                           "the pattern's length is the layer count: drop "
                                           "`times` or make them agree"))
            return None
        args.update(pattern=spec.pattern,
                    letters={c: spec.blocks[c] for c in dict.fromkeys(spec.pattern)})
    layer.submodules.append(Submodule(layer.name, "repeat", args, layer.loc,
                                      cls=spec.block_names()[0]))
    return layer


def _pattern_ok(scope: ParamScope, layer: Layer, blocks: dict) -> bool:
    """Every letter of the pattern is in ``blocks:``, every letter there is used, and each
    names a block of the spec; errors point at the pattern (or the letter)."""
    from archcc.parser.expr import did_you_mean

    spec, path, where = layer.spec, layer.path, scope.loaded.where
    at = (*path, "pattern")
    unknown = next((i for i, c in enumerate(spec.pattern) if c not in spec.blocks), None)
    if unknown is not None:
        letter = spec.pattern[unknown]
        scope.errors.append(Diagnostic(where.key(at), ".".join(at),
                                       f"letter '{letter}' (layer {unknown}) is not in blocks",
                                       f"letters: {', '.join(spec.blocks)}; add "
                                       f"{letter}: <block> to `blocks`"))
        return False
    unused = [c for c in spec.blocks if c not in spec.pattern]
    if unused:
        key = (*path, "blocks", unused[0])
        scope.errors.append(Diagnostic(where.key(key), ".".join(key),
                                       f"letter '{unused[0]}' is not used by the pattern "
                                       f"{spec.pattern!r}", "drop it or use it in `pattern`"))
        return False
    for letter, block in spec.blocks.items():
        if block not in blocks:
            key = (*path, "blocks", letter)
            scope.errors.append(Diagnostic(where.key(key), ".".join(key),
                                           f"unknown block '{block}'",
                                           did_you_mean(block, set(blocks))
                                           or "define it under `blocks:`"))
            return False
    return True


def _diag(layer: Layer, message: str, hint: str | None = None):
    from archcc.diagnostics import Diagnostic

    return Diagnostic(layer.loc, ".".join(layer.path), message, hint)


def _check_sizes(scope: ParamScope, layer: Layer) -> None:
    layers_image.check_sizes(scope, layer, _diag)
    if layer.op == lower_decoder.OP:
        lower_decoder.check_facets(scope, layer)
    if layer.op == "attention":
        dim, heads = scope.value(layer.sizes["dim"]), scope.value(layer.sizes["heads"])
        if dim % heads:
            divisors = [d for d in range(1, min(dim, 64) + 1) if dim % d == 0]
            scope.errors.append(_diag(layer, f"heads ({heads}) must divide dim ({dim})",
                                      f"divisors of {dim}: {', '.join(map(str, divisors))}"))


def _num(value: object) -> Num:
    return Num(value)


def _submodules(layer: Layer) -> list[Submodule]:
    s, spec, loc, name = layer.sizes, layer.spec, layer.loc, layer.name
    op = layer.op
    if op in layers_seq.OPS:
        return layers_seq.submodules(layer)
    if op == lower_decoder.OP:
        return [Submodule(name, "class", lower_decoder.submodule_args(layer), loc)]
    if op == "embedding":
        args = {"num": s["num"], "dim": s["dim"]}
        if spec.padding_idx is not None:
            args["padding_idx"] = _num(spec.padding_idx)
        return [Submodule(name, "embedding", args, loc)]
    if op == "linear":
        return [Submodule(name, "linear", {"in": s["in_"], "out": s["out"],
                                           "bias": _num(spec.bias)}, loc, tie=spec.tie)]
    if op == "layernorm":
        return [Submodule(name, "layernorm", {"dim": s["dim"], "eps": s["eps"],
                                              "bias": _num(spec.bias)}, loc)]
    if op == "rmsnorm":
        return [Submodule(name, "rmsnorm", {"dim": s["dim"], "eps": s["eps"]}, loc)]
    if op == "dropout":
        return [Submodule(name, "dropout", {"p": s["p"]}, loc)]
    if op == "activation":
        return [Submodule(name, "activation", {"fn": spec.fn}, loc)]
    if op == "parameter":
        dims = tuple(s[k] for k in sorted(s) if k.startswith("shape"))
        return [Submodule(name, "parameter", {"shape": dims, "init": spec.init,
                                              "value": s["value"]}, loc)]
    if op == "residual":
        norm_args = {"dim": s["dim"], "eps": s["eps"]}
        if spec.norm == "layernorm":
            norm_args["bias"] = _num(True)
        return [*layer.inner.submodules, Submodule(f"{name}_norm", spec.norm, norm_args, loc)]
    if op in layers_image.OPS:
        return layers_image.submodules(layer)
    if op in ("patchify", "patch_merge") or getattr(spec, "window", None) is not None:
        from archcc.ir.lower_vision import submodule_args

        return [Submodule(name, "class", submodule_args(layer), loc)]
    args = {
        "attention": lambda: {"dim": s["dim"], "n_head": s["heads"], "bias": _num(spec.bias),
                              "dropout": s["dropout"]},
        "ffn": lambda: {"dim": s["dim"], "hidden": s["hidden"], "bias": _num(spec.bias),
                        "dropout": s["dropout"]},
        "sinusoidal": lambda: {"dim": s["dim"], "max_len": s["max_len"]},
        "relative_bias": lambda: {"n_head": s["heads"], "buckets": s["buckets"],
                                  "max_distance": s["max_distance"]},
    }[op]()
    return [Submodule(name, "class", args, loc)]  # cls is set once the call fixes facets


# ----------------------------------------------------------------------------- call rules


def _last_dim(ctx: DimContext, layer: Layer, shape: Shape, key: str, what: str) -> None:
    want = layer.dim(key)
    if not shape or not ctx.equal(shape[-1], want):
        raise ShapeError(f"{layer.name} expects {what} with last dim {want} "
                         f"({ctx.concrete(want)}), got {fmt(shape)}")


def call_shape(ctx: DimContext, layer: Layer, shapes: list[Shape], dtypes: list[str],
               kwargs: tuple[str, ...]) -> tuple[Shape, str]:
    """Output (shape, dtype) of calling ``layer`` on inputs of these shapes."""
    op, x = layer.op, shapes[0]
    plugin = plugins.get(op)
    if plugin is not None:
        return _plugin_shape(ctx, layer, plugin, shapes, dtypes, kwargs)
    if op in layers_seq.OPS:
        return layers_seq.call_shape(ctx, layer, shapes, dtypes, kwargs)
    if op == lower_decoder.OP:
        return lower_decoder.call_shape(ctx, layer, shapes, dtypes, kwargs)
    if op == "embedding":
        if dtypes[0] != INT:
            raise ShapeError(f"{layer.name} is an embedding and needs int64 ids, got {dtypes[0]}")
        return (*x, layer.dim("dim")), FLOAT
    if op == "linear":
        _last_dim(ctx, layer, x, "in_", "input")
        return (*x[:-1], layer.dim("out")), FLOAT
    if op in ("layernorm", "rmsnorm", "ffn"):
        _last_dim(ctx, layer, x, "dim", "input")
        return x, FLOAT
    if op in ("dropout", "activation"):
        return x, dtypes[0]
    if op in layers_image.OPS:
        return layers_image.call_shape(ctx, layer, shapes, dtypes, kwargs)
    if op == "attention" and layer.spec.window is not None or op == "patch_merge":
        from archcc.ir.lower_vision import call_shape as vision_call_shape

        return vision_call_shape(ctx, layer, shapes, kwargs)
    if op == "attention":
        return _attention_shape(ctx, layer, shapes, dtypes, kwargs)
    if op == "patchify":
        return _patchify_shape(ctx, layer, x)
    if op == "sinusoidal":
        if len(x) < 2:
            raise ShapeError(f"{layer.name} needs a (B, T, ...) input, got {fmt(x)}")
        return (x[1], layer.dim("dim")), FLOAT
    if op == "relative_bias":
        return _relative_bias_shape(layer, shapes, kwargs)
    raise ShapeError(f"{layer.name} ({op}) cannot be called")


def _plugin_shape(ctx, layer, plugin, shapes, dtypes, kwargs):
    """The plugin's own shape rule; a crash in it is reported as the plugin's, at the call."""
    if kwargs:
        raise ShapeError(f"{layer.name} ({plugin.name}) takes no keyword arguments")
    try:
        return plugin.shape(ctx, layer, shapes, dtypes)
    except ShapeError:
        raise
    except Exception as exc:
        raise ShapeError(f"{layer.name}: the shape rule of {plugin.origin} failed: "
                         f"{type(exc).__name__}: {exc}", "report this to the plugin's "
                         "authors") from None


def _attention_shape(ctx, layer, shapes, dtypes, kwargs):
    spec, x = layer.spec, shapes[0]
    positional = len(shapes) - len(kwargs)
    want = 2 if spec.cross else 1
    if positional != want:
        raise ShapeError(f"{layer.name} takes {want} positional input(s), got {positional}",
                         "cross attention is called as attn(x, memory); self attention as "
                         "attn(x) or attn(x, mask=m)")
    if set(kwargs) - {"mask", "bias"}:
        raise ShapeError(f"{layer.name}: unknown keyword(s) "
                         f"{sorted(set(kwargs) - {'mask', 'bias'})}",
                         "the keywords are mask= and bias=")
    _last_dim(ctx, layer, x, "dim", "queries")
    keys = shapes[1] if spec.cross else x
    if spec.cross:
        _last_dim(ctx, layer, keys, "dim", "memory")
    named = dict(zip(kwargs, shapes[positional:], strict=True))
    mask = named.get("mask")
    if mask is not None and (len(mask) != 2 or not ctx.equal(mask[0], x[0])
                             or not ctx.equal(mask[1], keys[1])):
        raise ShapeError(f"{layer.name}: mask must be (batch, keys) = "
                         f"{fmt((x[0], keys[1]))}, got {fmt(mask)}")
    bias = named.get("bias")
    if bias is not None and (len(bias) != 4 or not ctx.equal(bias[1], layer.dim("heads"))
                             or not ctx.equal(bias[2], x[1]) or not ctx.equal(bias[3], keys[1])):
        raise ShapeError(f"{layer.name}: bias must be (1, heads, queries, keys) = "
                         f"{fmt((1, layer.dim('heads'), x[1], keys[1]))}, got {fmt(bias)}")
    return x, FLOAT


def _relative_bias_shape(layer, shapes, kwargs):
    """``rel(x)`` with x (B, T, ...) -> (1, heads, T, T)."""
    if kwargs or len(shapes) != 1 or len(shapes[0]) < 2:
        raise ShapeError(f"{layer.name} is called as {layer.name}(x) on a (B, T, ...) sequence")
    return (sympy.Integer(1), layer.dim("heads"), shapes[0][1], shapes[0][1]), FLOAT


def _patchify_shape(ctx, layer, x):
    if len(x) != 4:
        raise ShapeError(f"{layer.name} needs an image (B, C, H, W), got {fmt(x)}")
    if not ctx.equal(x[1], layer.dim("in_channels")):
        raise ShapeError(f"{layer.name} expects {layer.dim('in_channels')} channels, "
                         f"got {fmt(x)}")
    patch = layer.dim("patch")
    for side in x[2:]:
        ratio = ctx.concrete(side / patch)
        if ratio.is_number and not ratio.is_integer:
            raise ShapeError(f"{layer.name}: image side {side} ({ctx.concrete(side)}) is not "
                             f"a multiple of patch {patch} ({ctx.concrete(patch)})")
    if layer.spec.layout == "grid":
        return (x[0], x[2] / patch, x[3] / patch, layer.dim("dim")), FLOAT
    tokens = (x[2] / patch) * (x[3] / patch) + (1 if layer.spec.cls_token else 0)
    return (x[0], tokens, layer.dim("dim")), FLOAT


def parameter_shape(layer: Layer) -> Shape:
    keys = sorted(k for k in layer.sizes if k.startswith("shape"))
    return tuple(layer.dim(k) for k in keys)
