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
from archcc.ir.params import ParamScope, to_sympy
from archcc.lazy import sympy
from archcc.parser import schema
from archcc.parser.expr import Expr
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
        return "repeat" if isinstance(self.spec, schema.Repeat) else self.spec.op

    def dim(self, key: str) -> sympy.Expr:
        return to_sympy(self.sizes[key])


def declare(scope: ParamScope, name: str, spec: object, path: SpecPath,
            blocks: dict) -> Layer | None:
    """Resolve one layer; errors are recorded on ``scope`` and None returned."""
    layer = Layer(name, spec, path, scope.loaded.where.key(path))
    if layer.op == "repeat":
        return _declare_repeat(scope, layer, blocks)
    op = ops.get(layer.op)
    op.declare(scope, layer)
    if layer.broken or any(v is None for v in layer.sizes.values()):
        return None
    op.check(scope, layer)  # errors are recorded; the layer stays usable unless broken
    if layer.broken:
        return None
    layer.submodules = op.submodules(layer)
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
