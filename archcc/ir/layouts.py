"""Checkpoint layouts proved against the model, before any tensor exists.

A layout (``checkpoint: {hf: {rename: ..., concat: ..., split: ..., transpose: ...}}``) maps
a foreign ``state_dict`` onto the generated module's keys. A rule whose target names no
parameter, or that an earlier rename always wins over (rename rules apply first-match), is a
mistake that would only show as a failed strict load; here it is a located error::

    specs/gpt2.yaml:64:7: error: checkpoint.hf.rename.transformer.h.{i}.attn.c_attn:
        'h.{i}.atn.qkv' names no parameter of the model

The model's keys come from the IR (each kind says which tensors it saves, ``Kind.state``),
as they are before the optimizer fuses projections (the generated class concatenates unfused
checkpoints on load, so layouts are written against the unfused names).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from archcc import ops
from archcc.diagnostics import ArchccError, Diagnostic
from archcc.ir.graph import ModuleIR, Program
from archcc.parser import LoadedSpec
from archcc.parser.expr import ExprError, evaluate


def state_keys(program: Program) -> set[str] | None:
    """The model's ``state_dict`` keys, a repeat's instances sampled (its first two periods
    and its last: patterns name indices with ``{i}``, specific ones with a number, so that
    is enough, and 10000 x 10000 layers stay cheap); None if some kind cannot say (a
    plugin)."""
    try:
        return set(_keys(program, program.model, dict(program.params), ""))
    except _Unknown:
        return None


class _Unknown(Exception):
    pass


def _value(expr, env: dict):
    if not hasattr(expr, "pos"):
        return expr
    try:
        return evaluate(expr, env)
    except ExprError:
        raise _Unknown from None


def _keys(program: Program, module: ModuleIR, env: dict, prefix: str) -> Iterator[str]:
    for name, sub in module.submodules.items():
        here = f"{prefix}{name}"
        if sub.when is not None and not _value(sub.when, env):
            continue  # nn.Identity() here: no tensors
        if sub.kind in ("class", "repeat", "block"):
            yield from _class_keys(program, sub, env, here)
            continue
        kind = ops.get_kind(sub.kind)
        state = kind.state(sub, lambda e: _value(e, env)) if kind is not None else None
        if state is None:
            raise _Unknown
        yield from (f"{here}.{s}" if s else here for s in state)


def _class_keys(program: Program, sub, env: dict, here: str) -> Iterator[str]:
    if sub.kind in ("repeat", "block") and not sub.args.get("pattern") \
            and not sub.args.get("cycle"):
        yield from _instance_keys(program, sub, env, here)
        return
    if sub.kind == "repeat":
        times = _value(sub.args["times"], env)
        pattern = sub.args.get("pattern")
        blocks = (sub.cls, *sub.args.get("cycle", ()))
        period = len(pattern) if pattern else len(blocks)
        for i in sorted({*range(min(times, 2 * period)), times - 1}):
            cls = sub.args["letters"][pattern[i]] if pattern else blocks[i % len(blocks)]
            yield from _keys(program, program.modules[cls], env, f"{here}.{i}.")
        return
    cls, args = program.modules[sub.cls], sub.args
    for when, alt_args, alt in sub.alternatives:  # another class where its condition holds
        if _value(when, env):
            cls, args = program.modules[alt], alt_args
            break
    inner = {k: _value(v, env) for k, v in args.items()}
    for k, default in cls.ctor_args:  # defaults of arguments the owner left out
        inner.setdefault(k, default)
    inner.update({k: _value(v, inner) for k, v in cls.scalars.items()})
    yield from _keys(program, cls, inner, f"{here}.")


def _instance_keys(program: Program, sub, env: dict, here: str) -> Iterator[str]:
    """A repeat's instances (or a block layer's one), each with its own arguments."""
    from archcc.ir.instances import INDEX, BlockRef

    blocks = {b: BlockRef(b) for b in sub.args.get("blocks", ())}
    count = _value(sub.args["times"], env) if sub.kind == "repeat" else 1
    for i in range(count):
        local = {**env, INDEX: i, **blocks}
        choose = sub.args.get("choose")
        block = program.modules[str(_value(choose, local)) if choose is not None else sub.cls]
        given = {k: _value(v, local) for k, v in sub.args.get("args", {}).items()}
        inner = {**program.params, **{k: d for k, d in block.args.items() if d is not None},
                 **given}
        yield from _keys(program, block, inner, f"{here}.{i}." if sub.kind == "repeat"
                         else f"{here}.")


# ------------------------------------------------------------------------------ proofs


def _regex(pattern: str, prefix: bool) -> re.Pattern:
    parts = re.split(r"(\{\w+\}|\*)", pattern)
    body = "".join("[^.]+" if p.startswith("{") or p == "*" else re.escape(p) for p in parts)
    return re.compile(f"^{body}" + (r"(?=\.|$)" if prefix else "$"))


def _sample(pattern: str) -> str:
    """A key the pattern matches: each placeholder filled with one segment."""
    return re.sub(r"\{\w+\}|\*", "0", pattern)


def check_layouts(loaded: LoadedSpec, program: Program) -> None:
    """Raise a located error per layout rule that cannot work against this model (and when
    ``reference.layout`` names no layout)."""
    reference, layouts = loaded.spec.reference, loaded.spec.checkpoint or {}
    if reference is not None and reference.layout not in layouts:
        raise ArchccError(Diagnostic(
            loaded.where.key(("reference", "layout")), "reference.layout",
            f"'{reference.layout}' names no layout of checkpoint",
            f"layouts of this spec: {', '.join(layouts)}" if layouts else
            "add a checkpoint: section mapping the reference's state_dict keys onto ours"))
    if not layouts:
        return
    keys = state_keys(program)
    if keys is None:
        return
    errors = []
    for name, layout in loaded.spec.checkpoint.items():
        errors += _check_one(loaded, name, layout, keys)
    if errors:
        raise ArchccError(errors)


def _check_one(loaded: LoadedSpec, name: str, layout, keys: set[str]) -> list[Diagnostic]:
    errors = []

    def fail(path: tuple, message: str, hint: str) -> None:
        where = ("checkpoint", name, *path)
        errors.append(Diagnostic(loaded.where.key(where), ".".join(where), message, hint))

    def missing(pattern: str, prefix: bool) -> bool:
        regex = _regex(pattern, prefix)
        return not any(regex.match(k) for k in keys)

    hint = "keys of the model look like " + ", ".join(sorted(keys)[:3]) + ", ..."
    rules = list(layout.rename.items())
    for i, (source, target) in enumerate(rules):
        if target and missing(target, prefix=True):
            fail(("rename", source), f"'{target}' names no parameter of the model", hint)
        earlier = next((s for s, _ in rules[:i] if _regex(s, True).match(_sample(source))),
                       None)
        if earlier is not None:
            fail(("rename", source), f"this rule never applies: the earlier rule '{earlier}' "
                 "matches every key it does", "rename rules apply first-match: put the "
                 "specific rule first")
    for target in layout.concat:
        if missing(target, prefix=False):
            fail(("concat", target), f"'{target}' names no parameter of the model", hint)
    for source, targets in layout.split.items():
        for target in targets if isinstance(targets, list) else targets.into:
            if missing(target, prefix=False):
                fail(("split", source), f"'{target}' names no parameter of the model", hint)
    for i, pattern in enumerate(layout.transpose):
        if missing(pattern, prefix=False):
            fail(("transpose", str(i)), f"'{pattern}' matches no parameter of the model",
                 hint)
    return errors
