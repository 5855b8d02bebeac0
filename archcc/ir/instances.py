"""Which instances of each block a spec builds, with which arguments.

A block with arguments is one generated class, but every use instantiates it with other
values: stage 2 of a Swin is ``SwinStage(dim=384, depth=6, heads=12, downsample=True)``.
The compiler checks each distinct instance (heads must divide dim in every stage) and infers
shapes per instance, while the generated code keeps one class and a loop::

    for element in elements(scope, layer, env, spec.blocks):   # a repeat or block layer
        element.block, element.args        # "SwinStage", {"dim": 384, "depth": 6, ...}

:func:`enumerate_instances` walks the spec from the model down and returns every distinct
``(block, args)`` in first-use order; only distinct instances are walked, so a 24-block
stage costs what a 2-block stage does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from archcc.diagnostics import Diagnostic
from archcc.parser.expr import (
    Expr,
    ExprError,
    ExprSyntaxError,
    Num,
    did_you_mean,
    evaluate,
    names_in,
    parse_expr,
)
from archcc.parser.structure import BlockLayer, Repeat, block_refs

INDEX = "i"  # the element index inside a repeat's args, kind and pick
MAX_ELEMENTS = 10_000


class BlockRef(str):
    """A block named in an expression (``AttnBlock if attention[i] else Block``)."""


@dataclass
class Element:
    """One instance a repeat or block layer builds: element ``index`` of the ModuleList."""

    index: int
    block: str
    args: dict[str, object]  # every argument of the block, defaults filled in
    exprs: dict[str, Expr]  # the argument expressions as written (for symbolic values)
    env: dict[str, object]  # what the argument expressions were evaluated in (with i)


@dataclass
class Instance:
    """One distinct instance of a block: its argument values and where it is first built."""

    block: str
    args: dict[str, object]
    label: str  # "layers.2.blocks.1": module path of its first use
    env: dict[str, object] = field(default_factory=dict)  # params and args: its layers' names


def args_key(block: str, args: dict) -> tuple:
    return block, tuple(sorted(args.items()))


class _Failed(Exception):
    """One element could not be evaluated; its error is recorded."""


def _diag(scope, path, message, hint=None, pos=None) -> Diagnostic:
    loc = scope.loaded.where.text(path, pos) if pos is not None else scope.loaded.where.key(path)
    return Diagnostic(loc, ".".join(path), message, hint)


def _expr(scope, raw, path) -> Expr:
    """A literal or an expression of a structural field, parsed with its position."""
    if isinstance(raw, bool | int | float):
        return Num(raw)
    try:
        return parse_expr(raw)
    except ExprSyntaxError as exc:
        scope.errors.append(_diag(scope, path, exc.message, exc.hint, exc.pos))
        raise _Failed from None


def value(scope, raw, env: dict, path) -> object:
    """Evaluate one structural field (``when``, an argument, ``times``) in ``env``."""
    expr = _expr(scope, raw, path)
    try:
        return evaluate(expr, env)
    except ExprError as exc:
        scope.errors.append(_diag(scope, path, exc.message, exc.hint, exc.pos))
        raise _Failed from None


def is_on(scope, layer, env: dict, path) -> bool:
    """Whether a layer's ``when`` holds in ``env`` (no ``when``: always)."""
    when = getattr(layer, "when", None)
    if when is None:
        return True
    try:
        return bool(value(scope, when, env, (*path, "when")))
    except _Failed:
        return True


def _count(scope, layer: Repeat, env: dict, path) -> int:
    """How many instances a repeat holds: ``times``, the length of its ``over`` lists, or
    its pattern's length; a mismatch between them is an error at ``over``."""
    lengths = {}
    for name in layer.over:
        items = env.get(name)
        if not isinstance(items, tuple):
            what = "not defined" if name not in env else f"{items!r}, not a list"
            scope.errors.append(_diag(scope, (*path, "over"),
                                      f"over: '{name}' is {what}",
                                      did_you_mean(name, [k for k, v in env.items()
                                                          if isinstance(v, tuple)])
                                      or "over names list params, e.g. depths: [2, 2, 6, 2]"))
            raise _Failed
        lengths[name] = len(items)
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{n} has {k}" for n, k in lengths.items())
        scope.errors.append(_diag(scope, (*path, "over"),
                                  f"lists iterated together differ in length: {listed}",
                                  "one entry per stage in each list"))
        raise _Failed
    if layer.pattern is not None:
        return len(layer.pattern)
    count = next(iter(lengths.values()), None)
    if layer.times is not None:
        here = scope.with_values(env)  # at least 1: an optional repeat says `when`
        expr = here.size(layer.times, (*path, "times"), limit=MAX_ELEMENTS)
        scope.errors.extend(here.errors)
        if expr is None:
            raise _Failed
        times = here.value(expr)
        if count is not None and times != count:
            scope.errors.append(_diag(scope, (*path, "times"),
                                      f"times ({times}) disagrees with the {count} elements of "
                                      f"{', '.join(lengths)}", "drop `times`: over gives it"))
            raise _Failed
        count = times
    return count


def _block_of(scope, text: str, env: dict, blocks: dict, path) -> str:
    """The block a ``repeat:``/``block:`` names, or that its expression picks in ``env``."""
    if text.isidentifier():
        if text not in blocks:
            where = path[:-1] if path[-1] in ("repeat", "block") else path
            scope.errors.append(_diag(scope, where, f"unknown block '{text}'",
                                      did_you_mean(text, set(blocks))
                                      or "define it under `blocks:`"))
            raise _Failed
        return text
    refs = {n: BlockRef(n) for n in block_refs(text) if n in blocks}
    chosen = value(scope, text, {**env, **refs}, path)
    if not isinstance(chosen, BlockRef):
        scope.errors.append(_diag(scope, path, f"this chooses {chosen!r}, not a block",
                                  f"each branch names a block: {', '.join(blocks) or '-'}"))
        raise _Failed
    return str(chosen)


def arg_mismatches(block: str, declared: dict, given) -> list[tuple[str | None, str, str]]:
    """``(argument or None, message, hint)`` for each name ``given`` that the block lacks,
    else for the arguments without default it leaves out: a misspelt argument explains the
    missing one."""
    unknown = [(name, f"block {block} has no argument '{name}'",
                did_you_mean(name, set(declared))
                or f"its arguments: {', '.join(declared) or 'none'}")
               for name in given if name not in declared]
    missing = [n for n, default in declared.items() if default is None and n not in given]
    if unknown or not missing:
        return unknown
    return [(None, f"block {block} needs argument(s) {', '.join(missing)}",
             f"add args: {{{missing[0]}: ...}}")]


def _bind_args(scope, layer, block: str, blocks: dict, env: dict, path) -> tuple[dict, dict]:
    """The block's arguments for one element: given ones evaluated, defaults filled in."""
    declared = blocks[block].args
    problems = arg_mismatches(block, declared, getattr(layer, "args", {}))
    for arg, message, hint in problems:
        scope.errors.append(_diag(scope, path if arg is None else (*path, "args", arg),
                                  message, hint))
    if problems:
        raise _Failed
    given, exprs = {}, {}
    for name, raw in getattr(layer, "args", {}).items():
        where = (*path, "args", name)
        exprs[name] = _expr(scope, raw, where)
        given[name] = value(scope, raw, env, where)
    args = {n: given[n] if n in given else _default(d) for n, d in declared.items()}
    return args, exprs


def _default(default):
    return tuple(default) if isinstance(default, list) else default


def uses_index(layer) -> bool:
    texts = [*(v for v in getattr(layer, "args", {}).values() if isinstance(v, str)),
             getattr(layer, "repeat", None) or getattr(layer, "block", None) or ""]
    for text in texts:
        try:
            if INDEX in names_in(parse_expr(text)):
                return True
        except ExprSyntaxError:
            return True  # reported where it is evaluated
    return False


def is_stage_loop(layer) -> bool:
    """A repeat over list params (``over``, ``depths[i]``) or choosing its block per
    instance: its instances are stages, each worth showing (inspect lists them one by one);
    other repeats (even ``shift: ... if i % 2 ...``) show as one ``h.*``."""
    if not isinstance(layer, Repeat) or layer.pattern is not None:
        return False
    if layer.over or not (layer.repeat or "").isidentifier():
        return True
    for raw in layer.args.values():
        try:
            expr = parse_expr(raw) if isinstance(raw, str) else None
        except ExprSyntaxError:
            continue
        if expr is not None and _indexes_by_i(expr):
            return True
    return False


def _indexes_by_i(expr) -> bool:
    from archcc.parser.expr import Subscript

    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Subscript) and any(INDEX in names_in(i) for i in node.indices
                                               if not hasattr(i, "lower")):
            return True
        stack += [getattr(node, f) for f in ("left", "right", "operand", "cond", "then",
                                             "other", "value") if hasattr(node, f)]
        stack += [*getattr(node, "args", ())]
    return False


def elements(scope, layer, env: dict, blocks: dict, path) -> list[Element] | None:
    """The instances a repeat (one per element) or a block layer (one) builds in ``env``;
    None (errors recorded on ``scope``) when one cannot be evaluated."""
    try:
        if isinstance(layer, BlockLayer):
            block = _block_of(scope, layer.block, env, blocks, (*path, "block"))
            args, exprs = _bind_args(scope, layer, block, blocks, env, path)
            return [Element(0, block, args, exprs, env)]
        if INDEX in env and (layer.args or not (layer.repeat or "").isidentifier()):
            scope.errors.append(_diag(scope, path, f"the element index '{INDEX}' is also a "
                                      "param or argument here", f"rename that '{INDEX}'"))
            return None
        if layer.pattern is not None and not all(
                layer.blocks.get(c) in blocks for c in layer.pattern):
            return None  # the layer's declaration names the bad letter or block
        count = _count(scope, layer, env, path)
        if layer.pattern is not None or layer.cycle:
            names = [layer.blocks[c] for c in layer.pattern] if layer.pattern else \
                [([layer.repeat, *layer.cycle])[k % (1 + len(layer.cycle))] for k in range(count)]
            for k, name in enumerate([layer.repeat, *layer.cycle] if layer.cycle else ()):
                if name not in blocks:
                    scope.errors.append(_diag(scope, path, f"unknown block '{name}'"
                                              + (" in cycle" if k else ""),
                                              did_you_mean(name, set(blocks))
                                              or "define it under `blocks:`"))
                    return None
            for name in dict.fromkeys(names):
                _block_of(scope, name, env, blocks, (*path, "repeat"))
            return [Element(k, name, {}, {}, env) for k, name in enumerate(names)]
        out, first = [], None
        for k in range(count):
            if first is not None and not uses_index(layer):  # every element alike
                out.append(Element(k, first.block, first.args, first.exprs, first.env))
                continue
            here = {**env, INDEX: k}
            block = _block_of(scope, layer.repeat, here, blocks, (*path, "repeat"))
            args, exprs = _bind_args(scope, layer, block, blocks, here, path)
            first = first or Element(k, block, args, exprs, here)
            out.append(Element(k, block, args, exprs, here))
        return out
    except _Failed:
        return None


def enumerate_instances(scope, spec, start: list[Instance] | None = None
                        ) -> dict[str, list[Instance]]:
    """Every distinct ``(block, args)`` the model builds, by block, in first-use order;
    with ``start``, those built inside these instances instead (a block's defaults).

    ``when`` is evaluated per instance: a layer that is off builds nothing there."""
    found: dict[str, list[Instance]] = {}
    seen: set[tuple] = set()
    params = dict(scope.values)

    def walk(layers: dict, env: dict, prefix: str, path: tuple) -> None:
        for name, layer in layers.items():
            here = (*path, "layers", name)
            if not isinstance(layer, Repeat | BlockLayer) or not is_on(scope, layer, env, here):
                continue
            for element in elements(scope, layer, env, spec.blocks, here) or ():
                key = args_key(element.block, element.args)
                if key in seen:
                    continue
                seen.add(key)
                index = f".{element.index}" if isinstance(layer, Repeat) else ""
                label = f"{prefix}{name}{index}"
                inst_env = {**params, **element.args}
                found.setdefault(element.block, []).append(
                    Instance(element.block, element.args, label, inst_env))
                if len(seen) > MAX_ELEMENTS:
                    scope.errors.append(_diag(scope, here, "more than "
                                              f"{MAX_ELEMENTS} distinct block instances"))
                    return
                walk(spec.blocks[element.block].layers, inst_env, label + ".",
                     ("blocks", element.block))

    if start is None:
        walk(spec.model.layers, params, "", ("model",))
    for inst in start or ():
        walk(spec.blocks[inst.block].layers, {**params, **inst.args}, f"{inst.label}.",
             ("blocks", inst.block))
    return found


def describe(instance: Instance) -> str:
    """``layers.2 (dim=384, heads=12)``: how an error names the instance it is about."""
    shown = ", ".join(f"{k}={_short(v)}" for k, v in instance.args.items())
    return f"{instance.label} ({shown})" if shown else instance.label


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."
