"""Which scheme draws each parameter: the spec's ``init:`` rules over the model's tensors.

For every parameter :func:`archcc.ir.tensors.parameters` lists (a path template such as
``h.*.attn.qkv.weight``), :func:`resolve` picks the scheme of the first rule that matches
it, or its kind's default when none does (:class:`archcc.ops.Kind`)::

    table = resolve(program)     # [Entry("h.*.attn.proj.weight", [(None, Drawn(normal...))]), ...]

A fused projection (``qkv``, or q, k, v fused by ``-O2``) is drawn block of rows by block
of rows where its parts' rules differ (T5's q is scaled, k and v not). A rule that names one
index of a repeat (``h.0.mlp``) gives that layer an entry of its own, before the general one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

from archcc import ops
from archcc.diagnostics import ArchccError, Diagnostic, SourceLoc
from archcc.ir.graph import Program
from archcc.ir.tensors import Param, parameters
from archcc.parser.expr import Expr, ExprError, ExprSyntaxError, did_you_mean, evaluate, names_in
from archcc.parser.init import Scheme, default_bias, numbers, parse_scheme

_PLACEHOLDER = re.compile(r"^\{\w+\}$")


@dataclass(frozen=True)
class Rule:
    """One ``init:`` entry: a kind name or a dotted pattern, and its scheme."""

    key: str
    scheme: Scheme
    loc: SourceLoc | None = None

    @property
    def is_kind(self) -> bool:
        return "." not in self.key and "*" not in self.key and \
            ops.get_kind(self.key) is not None


@dataclass(frozen=True)
class Drawn:
    """A scheme and the names its arguments use (a kind's ``in``, ``hidden``), each an
    expression over params; a rule from the spec uses params directly (empty ``env``)."""

    scheme: Scheme
    env: tuple[tuple[str, Expr], ...] = ()


@dataclass
class Entry:
    """One line of the generated ``init_weights``: a path pattern and how it is drawn, whole
    (``blocks == [(None, drawn)]``) or by blocks of rows (``[(rows, drawn), ...]``)."""

    path: str
    blocks: list[tuple[Expr | None, Drawn]]
    no_decay: bool = False


# ---------------------------------------------------------------------------- matching


def _segment(pattern: str, template: str) -> bool | str:
    """Does a pattern segment cover a template segment: True (every instance), False, or a
    concrete segment (the pattern names one instance of a ``*`` template: ``0`` of ``*``)."""
    glob = "*" if _PLACEHOLDER.match(pattern) else pattern
    if "*" not in template:
        return fnmatchcase(template, glob)
    if fnmatchcase(template.replace("*", "\0"), glob):
        return True
    return glob if "*" not in glob and fnmatchcase(glob, template) else False


def match(pattern: str, path: str) -> tuple[bool, dict[int, str]] | None:
    """Pattern against a parameter path template, as a prefix at segment boundaries:
    None, or (whole parameter named?, the segments the pattern fixes ({} = all instances))."""
    want, have = pattern.split("."), path.split(".")
    if len(want) > len(have):
        return None
    fixed = {}
    for i, (p, t) in enumerate(zip(want, have, strict=False)):
        covered = _segment(p, t)
        if covered is False:
            return None
        if covered is not True:
            fixed[i] = covered
    return len(want) == len(have), fixed


def _fill(path: str, fixed: dict[int, str]) -> str:
    segments = path.split(".")
    for i, value in fixed.items():
        if i < len(segments):
            segments[i] = value
    return ".".join(segments)


# -------------------------------------------------------------------------- resolution


@dataclass(frozen=True)
class _Target:
    path: str
    kind: str | None  # kind rules apply to this target
    whole: bool       # the fused tensor itself, not one of its parts


def _hit(rule: Rule, target: _Target, role: str) -> Scheme | None:
    """The scheme ``rule`` gives ``target``, or None if it does not match (fully)."""
    if rule.is_kind:
        named = False if rule.key == target.kind else None
    else:
        found = match(rule.key, target.path)
        named = None if found is None or found[1] else found[0]
    if named is None:
        return None
    return rule.scheme if named or role == "weight" else default_bias(rule.scheme)


def _choose(rules: list[Rule], targets: list[_Target], role: str):
    """(scheme, whole?) of the first rule matching one of ``targets``; None if none does."""
    for rule in rules:
        for target in targets:
            scheme = _hit(rule, target, role)
            if scheme is not None:
                return scheme, target.whole
    return None


def _with_env(scheme: Scheme, env: dict[str, Expr]) -> Drawn:
    """A kind's scheme text with the argument names it uses (``in``) bound."""
    used = {n for _, value in numbers(scheme) for n in names_in(value)}
    return Drawn(scheme, tuple((k, v) for k, v in env.items() if k in used))


def _drawn(param: Param, scheme: Scheme) -> Drawn | None:
    """A rule's scheme, with ``torch_default`` spelled out as what PyTorch draws; None:
    the constructor's draw is the only one known (kept as it is)."""
    if scheme.name == "torch_default":
        text = ops.get_kind(param.kind).torch_default(param.sub, param.name)
        return None if text is None else _with_env(parse_scheme(text), param.env)
    return Drawn(scheme)


def _default(param: Param) -> Drawn | None:
    """The kind's own default (its Hugging Face-like scheme, or PyTorch's)."""
    scheme = parse_scheme(ops.get_kind(param.kind).default_init(param.sub, param.name))
    if scheme.name == "torch_default":
        return _drawn(param, scheme)
    return _with_env(scheme, param.env)


def _resolve_one(param: Param, rules: list[Rule], fixed: dict[int, str]) -> list | None:
    """The blocks of one parameter (specialised by ``fixed``)."""
    path = _fill(param.path, fixed)
    if not param.parts:
        chosen = _choose(rules, [_Target(path, param.kind, True)], param.role)
        drawn = _default(param) if chosen is None else _drawn(param, chosen[0])
        return None if drawn is None else [(None, drawn)]
    fused = param.sub.fused
    blocks, wholes = [], []
    for part, rows in param.parts:
        targets = [] if fused else [_Target(path, param.kind, True)]
        targets.append(_Target(_fill(part, fixed), param.kind if fused else None, False))
        chosen = _choose(rules, targets, param.role)
        drawn = _default(param) if chosen is None else _drawn(param, chosen[0])
        if drawn is None:
            return None
        blocks.append((rows, drawn))
        wholes.append(chosen is None or chosen[1])
    same = all(d == blocks[0][1] for _, d in blocks)
    if same and (all(wholes) and not fused or blocks[0][1].scheme.row_invariant()):
        return [(None, blocks[0][1])]
    return blocks


def resolve(program: Program, rules: list[Rule] | None = None) -> list[Entry]:
    """The init table: one entry per parameter template, an index a rule names first."""
    rules = program.init_rules if rules is None else rules
    table: list[Entry] = []
    seen: dict[str, Entry] = {}
    known = set(program.params)
    for param in parameters(program):
        general = _over_params(_resolve_one(param, rules, {}), known)
        for fixed in _specialisations(param, rules):
            blocks = _over_params(_resolve_one(param, rules, fixed), known)
            if blocks is not None and blocks != general:
                _add(table, seen, Entry(_fill(param.path, fixed), blocks))
        if general is not None:
            _add(table, seen, Entry(param.path, general))
    return table


def _over_params(blocks: list | None, known: set[str]) -> list | None:
    """``blocks``, or None (the constructor's draw is kept) when a scheme's size is not an
    expression over params: a stage block's argument, whose value differs per instance
    (ConvNeXt's depthwise conv bias, ``1 / sqrt(fan_in)`` of each stage's width)."""
    if blocks is None:
        return None
    names = {n for rows, drawn in blocks for value in ([rows] if rows is not None else [])
             + [v for _, v in drawn.env] for n in names_in(value)}
    return blocks if names <= known else None


def _specialisations(param: Param, rules: list[Rule]) -> list[dict[int, str]]:
    """The repeat indices rules name for this parameter (``h.0.attn``), in rule order."""
    out: list[dict[int, str]] = []
    paths = [param.path, *(part for part, _ in param.parts)]
    for rule in rules:
        if rule.is_kind:
            continue
        for path in paths:
            found = match(rule.key, path)
            if found is not None and found[1] and found[1] not in out:
                out.append(found[1])
    return out


def _add(table: list[Entry], seen: dict[str, Entry], entry: Entry) -> None:
    """One entry per path; two blocks of a repeat (Swin's plain and shifted) must agree."""
    if entry.path in seen:
        if seen[entry.path].blocks != entry.blocks:
            raise ArchccError(Diagnostic(SourceLoc(""), "init", "the blocks of one repeat "
                                         f"initialise {entry.path} differently",
                                         "name the layers apart in `init:` or give them "
                                         "the same scheme"))
        return
    seen[entry.path] = entry
    table.append(entry)


def no_decay(program: Program) -> list[str]:
    """Paths of the parameters kept out of weight decay: biases, the tensors of
    normalisation kinds, and what the spec's ``no_decay:`` names (kinds or patterns)."""
    out: list[str] = []
    for param in parameters(program):
        kind = ops.get_kind(param.kind)
        paths = [param.path] if param.role == "bias" or kind.no_decay or \
            param.kind in program.no_decay else []
        for key in program.no_decay:
            found = match(key, param.path)
            if found is not None:
                paths.append(_fill(param.path, found[1]))
        out += [p for p in paths if p not in out]
    return out


# ---------------------------------------------------------------------- spec checking


def parse_rules(scope) -> list[Rule]:
    """The spec's ``init:`` as rules; bad schemes and unknown params are located errors
    recorded on ``scope`` (a :class:`archcc.ir.params.ParamScope`)."""
    where, rules = scope.loaded.where, []
    for key, text in scope.loaded.spec.init.items():
        path = ("init", key)
        try:
            scheme = parse_scheme(text)
        except ExprSyntaxError as exc:
            scope.errors.append(Diagnostic(where.text(path, exc.pos), f"init.{key}",
                                           exc.message, exc.hint))
            continue
        for arg, value in numbers(scheme):
            try:
                number = evaluate(value, scope.values)
            except ExprError as exc:
                scope.errors.append(Diagnostic(where.text(path, exc.pos), f"init.{key}",
                                               exc.message, exc.hint))
                continue
            if isinstance(number, bool) or not isinstance(number, int | float):
                scope.errors.append(Diagnostic(where.text(path, value.pos), f"init.{key}",
                                               f"{arg} must be a number, got {number!r}"))
        rules.append(Rule(key, scheme, where.key(path)))
    return rules


def check_rules(program: Program, loaded) -> None:
    """Every ``init:`` and ``no_decay:`` key names a layer kind or matches a parameter (a
    typo would otherwise silently leave the layer at its default)."""
    params = parameters(program, tied=True)
    paths = [p for param in params for p in (param.path, *(part for part, _ in param.parts))]
    errors = []
    for section, keys in (("init", [r.key for r in program.init_rules]),
                          ("no_decay", program.no_decay)):
        for key in keys:
            if Rule(key, Scheme("zeros")).is_kind or any(match(key, p) for p in paths):
                continue
            layers = sorted({p.rsplit(".", 1)[0] for p in paths})
            hint = did_you_mean(key, set(paths) | set(layers)) or \
                f"layer kinds: {', '.join(sorted({p.kind for p in params}))}; paths look " \
                f"like {', '.join(layers[:3])}"
            path = (section, key) if section == "init" else (section,)
            errors.append(Diagnostic(loaded.where.key(path), f"{section}.{key}",
                                     f"'{key}' is neither a layer kind nor a path of the "
                                     "model's parameters", hint))
    errors += _bad_values(program, loaded)
    if errors:
        raise ArchccError(errors)


def _bad_values(program: Program, loaded) -> list[Diagnostic]:
    """A negative std or bound (a param such as ``initializer_range: -0.5``) would fail in
    ``init_weights()`` at construction: refuse it at the rule."""
    errors = []
    for rule in program.init_rules:
        for key, value in numbers(rule.scheme):
            if key not in ("std", "bound"):
                continue
            try:
                number = evaluate(value, program.params)
            except (ExprError, TypeError):
                continue  # not over params alone: checked where it is drawn
            if isinstance(number, int | float) and number < 0:
                errors.append(Diagnostic(loaded.where.key(("init", rule.key)),
                                         f"init.{rule.key}", f"{key} ({number}) must be >= 0",
                                         f"a {'standard deviation' if key == 'std' else 'bound'}"
                                         " is never negative: check the params it uses"))
    return errors
