"""``archcc diff A B``: what changed between two architectures, not between two files.

    >>> d = diff_specs("specs/gpt2.yaml", "specs/gpt2.yaml", set_b=["n_layer=24"])
    >>> [c.changes for c in d.layers if c.a == "h"]
    [[('times', 12, 24)]]
    >>> d.checkpoint.counts["new"]          # h.12 ... h.23 start from scratch
    288

Layers pair up by name, then by structure (see :mod:`archcc.inspect.match`); figures of
both sides are measured for the same input dims; the checkpoint section says which of A's
weights load into B unchanged, under a new name, with another shape, or not at all.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from archcc import ops
from archcc.diagnostics import ArchccError, Diagnostic, SourceLoc
from archcc.inspect.load import Inspected, Value, load_for_inspection
from archcc.inspect.match import core, match_layers
from archcc.inspect.structure import LayerInfo, layers, wiring
from archcc.inspect.summary import Summary, input_symbols, summarize
from archcc.ir.graph import node_str

SCHEMA_VERSION = 1


@dataclass
class LayerChange:
    """One layer of A, of B, or of both; ``status`` says which and whether it changed."""

    status: str  # same | changed | renamed | added | removed
    a: str | None
    b: str | None
    kind_a: str | None
    kind_b: str | None
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)  # (field, old, new)
    params: tuple[int, int] = (0, 0)
    flops: tuple[int, int] = (0, 0)
    act_bytes: tuple[int, int] = (0, 0)


@dataclass
class Checkpoint:
    """Which of A's state_dict tensors load into B, by category; patterns fold indices."""

    counts: dict[str, int]
    params: dict[str, int]  # elements per category
    unchanged: list[str]
    renamed: list[tuple[str, str]]
    reshaped: list[tuple[str, str, tuple[int, ...], tuple[int, ...]]]
    dropped: list[str]
    new: list[str]


@dataclass
class Diff:
    a: dict[str, Any]  # spec, name, overrides
    b: dict[str, Any]
    dims: dict[str, int]
    params: list[tuple[str, Any, Any]]  # (name, A value or None, B value or None)
    layers: list[LayerChange]
    wiring: list[str]
    totals: dict[str, tuple[int, int]]
    checkpoint: Checkpoint

    @property
    def identical(self) -> bool:
        return not (self.params or self.wiring
                    or any(c.status != "same" for c in self.layers))

    def to_json(self) -> dict:
        return {"archcc_diff": SCHEMA_VERSION, **asdict(self)}


def _side_dims(inspected: Inspected, dims: dict[str, Value]) -> dict[str, Value]:
    known = set(input_symbols(inspected)) | {"B"}
    return {k: v for k, v in dims.items() if k in known}


def _check_dims(a: Inspected, b: Inspected, dims: dict[str, Value]) -> None:
    unknown = set(dims) - set(input_symbols(a)) - set(input_symbols(b)) - {"B"}
    if unknown:
        raise ArchccError([Diagnostic(SourceLoc("--dims"), "", f"{n}: not an input dim of "
                                      "either spec") for n in sorted(unknown)])


def diff_specs(path_a: str | Path, path_b: str | Path, dims: dict[str, Value] | None = None,
               set_a: Sequence[str] = (), set_b: Sequence[str] = (),
               set_both: Sequence[str] = ()) -> Diff:
    """Compare two specs (YAML or .arch) for the same input ``dims``.

    ``set_b`` (the CLI's ``--set``) overrides B only, ``set_a`` A only, ``set_both`` both,
    e.g. ``diff_specs(p, p, set_b=["n_layer=24"])`` compares a spec with a deeper self.
    """
    dims = dims or {}
    over_a, over_b = [*set_both, *set_a], [*set_both, *set_b]
    a, b = load_for_inspection(path_a, over_a), load_for_inspection(path_b, over_b)
    _check_dims(a, b, dims)
    la, lb = layers(a), layers(b)
    depth = max(x.path.count(".") for x in la + lb) + 1
    sa = summarize(path_a, _side_dims(a, dims), over_a, depth=depth)
    sb = summarize(path_b, _side_dims(b, dims), over_b, depth=depth)
    pairs = match_layers(la, lb)
    return Diff(
        {"spec": a.loaded.path, "name": a.name, "set": over_a},
        {"spec": b.loaded.path, "name": b.name, "set": over_b},
        {k: int(v) for k, v in dims.items()},
        _param_changes(a.program.params, b.program.params),
        _layer_changes(la, lb, pairs, sa, sb),
        _wiring_changes(a, b, la, lb, pairs),
        {k: (sa.totals[k], sb.totals[k]) for k in ("params", "flops", "act_bytes")},
        checkpoint_transfer(sa.state, sb.state, la, pairs))


def _param_changes(pa: dict, pb: dict) -> list[tuple[str, Any, Any]]:
    out = [(k, pa[k], pb.get(k)) for k in pa if pa[k] != pb.get(k)]
    return out + [(k, None, pb[k]) for k in pb if k not in pa]


def _figures(summary: Summary, layer: LayerInfo | None) -> tuple[int, int, int]:
    if layer is None:
        return 0, 0, 0
    rows = {r.path: r for r in summary.rows}
    mine = [rows[layer.path + suffix] for suffix in _suffixes(layer)
            if layer.path + suffix in rows]
    return (sum(r.params for r in mine), sum(r.flops for r in mine),
            sum(r.act_bytes for r in mine))


def _suffixes(layer: LayerInfo) -> tuple[str, ...]:
    """The submodules a layer adds, as suffixes of its path (a residual's ``_norm``)."""
    op = ops.get(layer.kind)
    return op.suffixes if op is not None else ("",)


def _field_changes(a: LayerInfo, b: LayerInfo) -> list[tuple[str, Any, Any]]:
    (op_a, fa), (op_b, fb) = core(a), core(b)
    out = [("op", a.facet, b.facet)] if a.facet != b.facet else []
    if op_a == op_b:
        out += [(k, fa.get(k), fb.get(k)) for k in dict.fromkeys([*fa, *fb])
                if fa.get(k) != fb.get(k) and not k.startswith("residual.")
                or (k.startswith("residual.") and k in fa and k in fb and fa[k] != fb[k])]
    return out


def _layer_changes(la, lb, pairs, sa: Summary, sb: Summary) -> list[LayerChange]:
    by_b = {x.path: x for x in lb}
    out: list[LayerChange] = []
    for a in la:
        b = by_b.get(pairs.get(a.path, ""))
        fa, fb = _figures(sa, a), _figures(sb, b)
        if b is None:
            change = LayerChange("removed", a.path, None, a.facet, None)
        else:
            changes = _field_changes(a, b)
            status = "renamed" if a.name != b.name else "changed" if changes else "same"
            change = LayerChange(status, a.path, b.path, a.facet, b.facet, changes)
        change.params, change.flops, change.act_bytes = ((fa[i], fb[i]) for i in range(3))
        out.append(change)
    matched = set(pairs.values())
    for b in lb:
        if b.path not in matched:
            fb = _figures(sb, b)
            out.append(LayerChange("added", None, b.path, None, b.facet, [], (0, fb[0]),
                                   (0, fb[1]), (0, fb[2])))
    return out


def _wiring_changes(a: Inspected, b: Inspected, la: list[LayerInfo], lb: list[LayerInfo],
                    pairs: dict[str, str]) -> list[str]:
    """Residual connections and norm placement, block by matched block."""
    wa, wb = wiring(a), wiring(b)
    by_b = {x.path: x for x in lb}
    scopes = [(a.program.model.name, b.program.model.name, "")]
    scopes += [(x.block, by_b[pairs[x.path]].block, x.inner)
               for x in la if x.block and x.inner and x.path in pairs
               and by_b[pairs[x.path]].block]
    out: list[str] = []
    for ma, mb, pa in scopes:
        ra, rb = wa.get(ma, {}), wb.get(mb, {})
        names = {x.name: by_b[pairs[x.path]].name for x in la
                 if x.parent == pa and x.path in pairs}
        label = ma if ma == mb else f"{ma} -> {mb}"
        for name, place in ra.items():
            other = names.get(name, name)
            shown = name if other == name else f"{name} -> {other}"
            if other not in rb:
                out.append(f"{label}: residual around {name} removed")
            elif rb[other] != place:
                out.append(f"{label}: {shown}: {place} -> {rb[other]}")
        hit = {names.get(n, n) for n in ra}
        out += [f"{label}: new residual around {n} ({p})" for n, p in rb.items() if n not in hit]
        out += _dataflow_changes(label, a.program.modules.get(ma), b.program.modules.get(mb))
    return out


_ARGS = re.compile(r"%[\w.]+(, )?")


def _dataflow(module) -> Counter:
    """The forward's own operations (not layer calls): ``positions(pad=pad_token_id)``."""
    if module is None:
        return Counter()
    g = module.graph
    ops = Counter()
    for node, data in g.nodes(data=True):
        if data["op"] not in ("call", "input", "output"):
            text = node_str(g, node).split(" = ", 1)[1].split("  # ")[0]
            ops[_ARGS.sub("", text).replace(", )", ")")] += 1
    return ops


def _dataflow_changes(label: str, ma, mb) -> list[str]:
    """Operations only one side has, paired by op name where they look like one change."""
    oa, ob = _dataflow(ma), _dataflow(mb)
    gone, new = list((oa - ob).elements()), list((ob - oa).elements())
    out = []
    for text in gone:
        twin = next((t for t in new if t.split("(")[0] == text.split("(")[0]), None)
        if twin:
            new.remove(twin)
            out.append(f"{label}: {text} -> {twin}")
        else:
            out.append(f"{label}: - {text}")
    return out + [f"{label}: + {text}" for text in new]


# -------------------------------------------------------------------------- checkpoints


def _key_mapper(la: list[LayerInfo], pairs: dict[str, str]):
    """A state_dict key of A -> the key the same tensor has in B (None: layer removed)."""
    by_a = {x.path: x for x in la}
    rules = []
    for pa, pb in pairs.items():
        for suffix in _suffixes(by_a[pa]):
            regex = re.escape(pa + suffix).replace(r"\*", r"(\d+)")
            rules.append((re.compile(f"^{regex}(?=\\.|$)"), (pb + suffix).split("*")))
    rules.sort(key=lambda r: -len(r[0].pattern))  # most specific layer first

    def mapped(key: str) -> str | None:
        for pattern, parts in rules:
            m = pattern.match(key)
            if m:
                head = "".join(p + (m.group(i + 1) if i < len(parts) - 1 else "")
                               for i, p in enumerate(parts))
                return head + key[m.end():]
        return None
    return mapped


_INDEX = re.compile(r"\.(\d+)(?=\.|$)")


def _ranges(numbers: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2,5"."""
    spans, start = [], None
    for prev, n in zip([None, *numbers], numbers, strict=False):
        if prev is None or n != prev + 1:
            if start is not None:
                spans.append((start, prev))
            start = n
    spans.append((start, numbers[-1]))
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def _fold(items: list) -> list:
    """Keys that differ only in a repeat index become one: ``h.[12-23].attn.qkv.weight``.

    Items are keys or tuples whose strings are keys (renamed / reshaped entries)."""
    groups: dict[tuple, list[tuple[str, ...]]] = {}
    for item in items:
        parts = (item,) if isinstance(item, str) else item
        first = next(p for p in parts if isinstance(p, str))
        pattern = tuple(_INDEX.sub(".{}", p) if isinstance(p, str) else p for p in parts)
        groups.setdefault(pattern, []).append(tuple(_INDEX.findall(first)))
    out = []
    for pattern, indices in groups.items():
        if all(len(i) == 1 for i in indices):
            numbers = sorted({int(i[0]) for i in indices})
            fill = str(numbers[0]) if len(numbers) == 1 else f"[{_ranges(numbers)}]"
        else:
            fill = "*"
        parts = tuple(p.replace("{}", fill) if isinstance(p, str) else p for p in pattern)
        out.append(parts[0] if isinstance(items[0], str) else parts)
    return out


def checkpoint_transfer(state_a: dict[str, list[int]], state_b: dict[str, list[int]],
                        la: list[LayerInfo], pairs: dict[str, str]) -> Checkpoint:
    """Load A's state_dict into B: unchanged, renamed, reshaped, dropped; new in B."""
    mapped = _key_mapper(la, pairs)
    cats: dict[str, list] = {k: [] for k in ("unchanged", "renamed", "reshaped", "dropped")}
    sizes = dict.fromkeys([*cats, "new"], 0)
    hit: set[str] = set()
    for key, shape in state_a.items():
        target = mapped(key) or (key if key in state_b else None)
        numel = _numel(shape)
        if target is None or target not in state_b:
            cats["dropped"].append(key)
            sizes["dropped"] += numel
            continue
        hit.add(target)
        if state_b[target] != shape:
            cats["reshaped"].append((key, target, tuple(shape),
                                     tuple(state_b[target])))
            sizes["reshaped"] += numel
        elif target != key:
            cats["renamed"].append((key, target))
            sizes["renamed"] += numel
        else:
            cats["unchanged"].append(key)
            sizes["unchanged"] += numel
    new = [k for k in state_b if k not in hit]
    sizes["new"] = sum(_numel(state_b[k]) for k in new)
    counts = {k: len(v) for k, v in cats.items()} | {"new": len(new)}
    return Checkpoint(counts, sizes, _fold(cats["unchanged"]), _fold(cats["renamed"]),
                      _fold(cats["reshaped"]), _fold(cats["dropped"]), _fold(new))


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
