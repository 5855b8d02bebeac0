"""Prove a checkpoint layout against the keys of the reference model the spec names.

``reference: {library: transformers, model: GPT2LMHeadModel, layout: hf}`` promises that
``convert_state_dict(GPT2LMHeadModel(config).state_dict(), "hf")`` loads strictly into the
generated model, which is what ``archcc bench`` does. Here both models are built on the meta
device (no memory: Mixtral-8x7B takes a fraction of a second) and the generated module's own
``convert_state_dict`` and ``load_state_dict`` (whose pre-hooks concatenate fused projections
and stack per-expert weights) run on them: the proof and a real load share one implementation
of every rule. A parameter no rule produces is an error at ``reference``::

    spec.yaml:70:1: error: reference: 24 parameters of the model come from no key of
    transformers.GPT2LMHeadModel under checkpoint.hf: h.{i}.mlp.down.bias, ... (i = 0..11)
    hint: its 'transformer.h.{i}.mlp.c_proj.weight' becomes 'h.{i}.mlp.c_proj.weight', no
    parameter of the model; add a rename rule under checkpoint.hf, e.g. ...

So are reference keys that reach no parameter (a strict load refuses them) and tensors of
another shape (a missing ``transpose``). Best effort: where the library is not installed
there is nothing to prove against and the check passes; a spec without ``reference:`` never
imports it.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from archcc.diagnostics import ArchccError, Diagnostic
from archcc.ir.graph import Program
from archcc.parser import LoadedSpec

SHOWN = 4  # key patterns named in a message; the count says how many there are in all


@dataclass(frozen=True)
class Mismatch:
    """What did not line up between the converted reference keys and ours."""

    missing: tuple[str, ...] = ()
    """Our keys no reference key produced (after the load's pre-hooks)."""
    unused: tuple[tuple[str, str], ...] = ()
    """(converted key, the reference key it came from) of keys that reach no parameter."""
    shapes: tuple[tuple[str, tuple, tuple], ...] = ()
    """(our key, the converted tensor's shape, our shape)."""
    failure: str | None = None
    """Why building, converting or loading raised, when it did."""
    cause: str = ""
    """What usually makes it raise there (the hint)."""
    ours: frozenset[str] = frozenset()
    theirs: frozenset[str] = frozenset()


_MEMO: dict[tuple[str, ...], Mismatch | None] = {}


def check_reference(loaded: LoadedSpec, program: Program) -> None:
    """Raise located errors where the reference's keys do not load into the model.

    ``program`` is the model before the optimizer fuses projections: layouts are written
    against those names, and so are the errors (a fused module's load pre-hook concatenates
    the parts, which the parity tests hold)."""
    from archcc.codegen.emit import generate

    reference = loaded.spec.reference
    if reference is None or reference.layout not in (loaded.spec.checkpoint or {}):
        return  # no claim, or a layout name that check_layouts reports
    source = generate(program)
    key = (hashlib.sha256(source.encode()).hexdigest(), reference.library, reference.model,
           reference.layout, program.name)
    if key not in _MEMO:  # tests and `archcc.load` compile the same spec again and again
        _MEMO[key] = _compare(reference, source, program.name)
    mismatch = _MEMO[key]
    if mismatch is None:
        return  # the library is not installed: nothing to prove against
    errors = _diagnostics(loaded, reference, mismatch)
    if errors:
        raise ArchccError(errors)


# --------------------------------------------------------------------------- the proof


def _compare(reference, source: str, name: str) -> Mismatch | None:
    """Build both models on meta, convert the reference's state_dict and load it into ours."""
    from archcc.inspect.load import _import_source
    from archcc.runtime.reference import build_reference

    module = _import_source(source, name)
    with torch.device("meta"):
        ours = module.Model(module.Config())
        try:
            theirs = build_reference(reference, module.Config()).state_dict()
        except ImportError:
            return None
        except Exception as exc:  # noqa: BLE001 - the library refuses these params
            return Mismatch(failure=f"building {reference.model} from the spec's params "
                            f"raised {_first_line(exc)}", cause="the reference is built from "
                            "the spec's params by name (as archcc bench does): they must "
                            "be values its config accepts")
    try:
        converted = module.convert_state_dict(theirs, reference.layout)
    except Exception as exc:  # noqa: BLE001 - a concat part or split size that is not there
        return Mismatch(failure=f"convert_state_dict(state_dict, {reference.layout!r}) on "
                        f"its keys raised {_first_line(exc)}", cause="a concat source the "
                        "reference does not have, or a split whose sizes do not fit")
    return dataclasses.replace(_load(ours, converted, _origins(theirs)),
                               theirs=frozenset(theirs))


def _load(ours: torch.nn.Module, converted: dict, origin_of) -> Mismatch:
    expected = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    shapes = tuple((k, tuple(v.shape), expected[k]) for k, v in sorted(converted.items())
                   if k in expected and tuple(v.shape) != expected[k])
    wrong = {k for k, _, _ in shapes}  # left out of the load, reported as shapes
    rest = {k: v for k, v in converted.items() if k not in wrong}
    try:
        result = ours.load_state_dict(rest, strict=False)
    except Exception as exc:  # noqa: BLE001 - a pre-hook's concatenation of wrong shapes
        return Mismatch(shapes=shapes, failure=f"load_state_dict raised {_first_line(exc)}",
                        cause="parts that a fused module concatenates on load differ in shape")
    return Mismatch(
        missing=tuple(sorted(k for k in result.missing_keys if k not in wrong)),
        unused=tuple((k, origin_of(rest.get(k)) or k) for k in sorted(result.unexpected_keys)),
        shapes=shapes, ours=frozenset(expected))


def _origins(theirs: dict):
    """converted tensor -> the reference key it came from: a rename keeps the tensor, a
    transpose or split makes a view of it (a concatenation is new: None)."""
    names = {id(t): k for k, t in theirs.items()}

    def origin_of(tensor) -> str | None:
        if tensor is None:
            return None
        return names.get(id(tensor)) or (names.get(id(tensor._base))
                                         if tensor._base is not None else None)
    return origin_of


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {'; '.join(lines[:3])}" if lines else type(exc).__name__


# ------------------------------------------------------------------------- the messages


def _diagnostics(loaded: LoadedSpec, reference, m: Mismatch) -> list[Diagnostic]:
    loc, rules = loaded.where.key(("reference",)), f"checkpoint.{reference.layout}"
    cls = f"{reference.library}.{reference.model}"
    out = []
    if m.failure:
        out.append(Diagnostic(loc, "reference", m.failure, f"{m.cause} ({cls}, {rules})"))
    if m.missing:
        out.append(Diagnostic(loc, "reference", f"{_count(m.missing, 'parameter')} of the "
                              f"model come from no key of {cls} under {rules}: "
                              + _listed(m.missing, m.ours),
                              _missing_hint(m, reference.model, rules)))
    elif m.unused:
        keys = [k for k, _ in m.unused]
        out.append(Diagnostic(loc, "reference", f"{_count(keys, 'key')} of {cls} reach no "
                              f"parameter of the model under {rules}: "
                              + _listed([o for _, o in m.unused], m.theirs),
                              f"rename them onto parameters under {rules}.rename, or list "
                              f"them under {rules}.drop if the model has no such tensor"))
    if m.shapes:
        out.append(_shape_error(loc, m, cls, rules))
    return out


def _shape_error(loc, m: Mismatch, cls: str, rules: str) -> Diagnostic:
    key, got, want = m.shapes[0]
    turned = len(got) == 2 and got == want[::-1]
    first = _names([k for k, _, _ in m.shapes], m.ours)[0]
    return Diagnostic(loc, "reference", f"{_count(m.shapes, 'parameter')} of the model get "
                      f"a tensor of another shape from {cls}: {first} is {list(want)} in the "
                      f"model, {list(got)} converted",
                      f"list '{re.sub(r'{[a-z]}', '*', first)}' under {rules}.transpose"
                      if turned else "the spec's params or layers differ from the reference's")


def _count(items, noun: str) -> str:
    return f"{len(items)} {noun}" + ("s" if len(items) != 1 else "")


def _missing_hint(m: Mismatch, cls: str, rules: str) -> str:
    want = _names(m.missing, m.ours)[0]
    unused = {_pattern(k): _pattern(o) for k, o in m.unused}
    near = difflib.get_close_matches(want, list(unused), n=1, cutoff=0.6)
    if not near:
        return (f"the reference has no tensor for it: the spec's model differs from the "
                f"reference's (a bias, a norm?), or a rule under {rules} renames it away")
    source, target = _common_suffix_cut(unused[near[0]], want)
    became = f" becomes '{near[0]}'" if near[0] != unused[near[0]] else " is left as is"
    return (f"{cls}'s '{unused[near[0]]}'{became}, no parameter of the model; add a rename rule "
            f"under {rules}, e.g. '{source}: {target}' (rename rules apply first-match: "
            "before any broader rule)")


def _common_suffix_cut(source: str, target: str) -> tuple[str, str]:
    """('transformer.h.{i}.mlp.c_proj', 'h.{i}.mlp.down') from the two .weight keys."""
    a, b = source.split("."), target.split(".")
    while len(a) > 1 and len(b) > 1 and a[-1] == b[-1]:
        a, b = a[:-1], b[:-1]
    return ".".join(a), ".".join(b)


_LETTERS = "ijklmn"


def _pattern(key: str) -> str:
    """'h.3.mlp.experts.5.weight' -> 'h.{i}.mlp.experts.{j}.weight'."""
    parts, n = [], 0
    for part in key.split("."):
        if part.isdigit() and n < len(_LETTERS):
            part, n = "{" + _LETTERS[n] + "}", n + 1
        parts.append(part)
    return ".".join(parts)


def _names(keys: Iterable[str], universe: Iterable[str]) -> list[str]:
    """Keys as patterns where a pattern covers all of them: every key of ``universe`` it
    matches is among ``keys`` (else the keys are named one by one)."""
    keys = sorted(keys)
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(_pattern(key), []).append(key)
    pool = sorted(universe)
    names = []
    for pattern, members in groups.items():
        regex = re.compile("^" + re.sub(r"\\\{\w\\\}", r"\\d+", re.escape(pattern)) + "$")
        covered = len(members) > 1 and len([k for k in pool if regex.match(k)]) == len(members)
        names += [pattern] if covered else members
    return names


def _listed(keys: Iterable[str], universe: Iterable[str]) -> str:
    names = _names(keys, universe)
    more = f", ... ({len(names) - SHOWN} more)" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more
