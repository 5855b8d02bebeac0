"""Spec layers -> resolved :class:`Layer` records, asking each layer's op what it needs.

``declare`` turns one ``layers:`` entry into a :class:`Layer`: its resolved sizes, the
``Submodule`` line(s) it adds to the owning class and the facets its values fix. Everything
op-specific is the op's (:mod:`archcc.ops`); a ``repeat`` is structure, declared here::

    ln_1: {op: layernorm, dim: n_embd}   ->  self.ln_1 = nn.LayerNorm(config.n_embd, ...)
    h: {repeat: Block, times: n_layer}   ->  self.h = nn.ModuleList(Block(config) for ...)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from archcc import ops
from archcc.diagnostics import Diagnostic, SourceLoc
from archcc.ir.graph import Submodule
from archcc.ir.params import MAX_REPEAT, ParamScope, to_sympy
from archcc.lazy import sympy
from archcc.parser import schema
from archcc.parser.expr import Call, Expr, ExprError, Name, Num, did_you_mean, parse_expr
from archcc.parser.yaml_loader import SpecPath


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
    broken: bool = False  # an op's declare found a part it could not resolve

    @property
    def op(self) -> str:
        if isinstance(self.spec, schema.Repeat):
            return "repeat"
        return "block" if isinstance(self.spec, schema.BlockLayer) else self.spec.op

    @property
    def structural(self) -> bool:
        """A repeat or a block used as a layer: built from blocks, not by an op."""
        return self.op in ("repeat", "block")

    def dim(self, key: str) -> sympy.Expr:
        return to_sympy(self.sizes[key])


def declare(scope: ParamScope, name: str, spec: object, path: SpecPath,
            blocks: dict) -> Layer | None:
    """Resolve one layer; errors are recorded on ``scope`` and None returned."""
    layer = Layer(name, spec, path, scope.loaded.where.key(path))
    if layer.op == "repeat":
        return _with_when(scope, _declare_repeat(scope, layer, blocks))
    if layer.op == "block":
        return _with_when(scope, _declare_block(scope, layer, blocks))
    op = ops.get(layer.op)
    op.declare(scope, layer)
    if layer.broken or any(v is None for v in layer.sizes.values()):
        return None
    op.check(scope, layer)  # errors are recorded; the layer stays usable unless broken
    if layer.broken:
        return None
    layer.submodules = op.submodules(layer)
    return _with_when(scope, layer)


def _with_when(scope: ParamScope, layer: Layer | None) -> Layer | None:
    """A layer with ``when`` builds each of its submodules only where the condition holds:
    the condition (an expression over params and block arguments) rides on each."""
    when = getattr(layer.spec, "when", None) if layer is not None else None
    if when is None:
        return layer
    expr = scope.parse(when, (*layer.path, "when")) if isinstance(when, str) else Num(when)
    if expr is None:
        return None
    try:
        scope.value(expr)
    except ExprError as exc:
        scope.errors.append(Diagnostic(scope.loaded.where.text((*layer.path, "when"), exc.pos),
                                       ".".join((*layer.path, "when")), exc.message, exc.hint))
        return None
    for sub in layer.submodules:
        sub.when = expr
    return layer


def _declare_repeat(scope: ParamScope, layer: Layer, blocks: dict) -> Layer | None:
    """``{repeat: Block, times: n}`` (with ``cycle``, ``args``, ``over``, ``steps``) or
    ``{pattern: AAF, blocks: {...}}``: one ``nn.ModuleList`` submodule; None (errors
    recorded) when a block is unknown."""
    spec, path = layer.spec, layer.path
    if spec.pattern is not None and not _pattern_ok(scope, layer, blocks):
        return None
    names = [n for n in spec.block_names() if n in blocks] if spec.pattern is None else []
    if spec.pattern is None and spec.repeat.isidentifier():
        for i, block in enumerate(spec.block_names()):
            if block not in blocks:
                where = "" if i == 0 else " in cycle"
                scope.errors.append(_diag(layer, f"unknown block '{block}'{where}",
                                          did_you_mean(block, set(blocks))
                                          or "define it under `blocks:`"))
                return None
    if spec.pattern is None and not names:
        scope.errors.append(_diag(layer, f"'{spec.repeat}' names no block",
                                  f"blocks: {', '.join(blocks) or 'none'}"))
        return None
    times = _times(scope, layer)
    if times is None:
        return None
    layer.sizes["times"] = times
    args = {"times": times, "cycle": tuple(spec.cycle), **_structure_args(scope, layer)}
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
    else:
        args.update(choose=_choice(spec.repeat), blocks=tuple(names))
        if spec.steps is not None:
            steps = scope.size(spec.steps, (*path, "steps"), limit=MAX_REPEAT)
            pick = scope.parse(spec.pick, (*path, "pick")) if spec.pick else None
            if steps is None or (spec.pick and pick is None):
                return None
            args.update(steps=steps, pick=pick)
    cls = names[0] if names else spec.block_names()[0]
    layer.submodules.append(Submodule(layer.name, "repeat", args, layer.loc, cls=cls))
    return layer


def _times(scope: ParamScope, layer: Layer) -> Expr | None:
    """The element count as an expression: ``times``, or ``len(<first list>)`` of
    ``over`` (at least 1: an optional repeat says ``when``)."""
    spec, path = layer.spec, layer.path
    if spec.times is None and spec.pattern is not None:
        return Num(len(spec.pattern))
    if spec.times is None:
        return Call("len", (Name(spec.over[0]),), ())
    return scope.size(spec.times, (*path, "times"), limit=MAX_REPEAT)


def _choice(text: str) -> Expr | None:
    """The expression choosing a block per instance (None: one block, named)."""
    return None if text.isidentifier() else parse_expr(text)


def _structure_args(scope: ParamScope, layer: Layer) -> dict:
    """The arguments each instance is built with, parsed (literals as numbers)."""
    out = {}
    for name, raw in layer.spec.args.items():
        expr = scope.parse(raw, (*layer.path, "args", name)) if isinstance(raw, str) \
            else Num(raw)
        out[name] = expr
    return {"args": out}


def _declare_block(scope: ParamScope, layer: Layer, blocks: dict) -> Layer | None:
    """``{block: Block, args: {...}}``: one instance of a block as a layer."""
    spec, path = layer.spec, layer.path
    names = [n for n in spec.block_names() if n in blocks]
    if not names:
        scope.errors.append(_diag(layer, f"unknown block '{spec.block}'",
                                  did_you_mean(spec.block, set(blocks))
                                  or "define it under `blocks:`"))
        return None
    args = {"choose": _choice(spec.block), "blocks": tuple(names),
            **_structure_args(scope, layer)}
    if spec.steps is not None:
        args["steps"] = scope.size(spec.steps, (*path, "steps"), limit=MAX_REPEAT)
        if args["steps"] is None:
            return None
    if any(v is None for v in args["args"].values()):
        return None
    layer.submodules.append(Submodule(layer.name, "block", args, layer.loc, cls=names[0]))
    return layer


def _pattern_ok(scope: ParamScope, layer: Layer, blocks: dict) -> bool:
    """Every letter of the pattern is in ``blocks:``, every letter there is used, and each
    names a block of the spec; errors point at the pattern (or the letter)."""
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
