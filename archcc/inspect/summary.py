"""``archcc summary``: per-layer output shapes, parameters, FLOPs/MACs and activation memory.

Rows follow the spec's structure: depth 1 is the model's layers (a repeat is one row,
``h  Block x12``), depth 2 the layers inside blocks (``h.*.attn``, summed over the
identical instances), depth 3 the torch layers inside lowered ops (``h.*.attn.qkv``)::

    >>> s = summarize("specs/gpt2.yaml", dims={"T": 1024}, sets=["n_layer=12"])
    >>> s.totals["params"], [r.path for r in s.rows][:4]
    (124439808, ['wte', 'wpe', 'drop', 'h'])

MACs are FLOPs / 2: FlopCounterMode counts a multiply-accumulate as two FLOPs.
Activation memory is the bytes of every new tensor the forward pass creates inside a
layer (views excluded): what eager training keeps at most for backward.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from archcc.diagnostics import ArchccError, Diagnostic, SourceLoc
from archcc.inspect.load import Inspected, Value, load_for_inspection
from archcc.inspect.measure import Measured, measure
from archcc.lazy import sympy
from archcc.parser.expr import did_you_mean

SCHEMA_VERSION = 1


@dataclass
class Row:
    """One displayed layer; figures are totals over the ``count`` instances it stands for."""

    path: str  # spec path, ``*`` for "every instance of the repeat"
    kind: str
    depth: int
    count: int
    shape: list[list[int]]
    params: int
    flops: int
    macs: int
    act_bytes: int


@dataclass
class Summary:
    name: str
    spec: str
    batch: int
    dims: dict[str, int]
    sets: list[str]
    inputs: dict[str, list[int]]
    totals: dict[str, int]
    rows: list[Row] = field(default_factory=list)
    tied: dict[str, str] = field(default_factory=dict)
    state: dict[str, list[int]] = field(default_factory=dict, repr=False)  # key -> shape
    kv_cache: dict[str, int] = field(default_factory=dict)
    """Keys and values cached per sequence at T (float32): bytes, layers, positions kept."""

    def to_json(self) -> dict:
        """A stable, versioned dict (``archcc_summary: 1``) for ``--json``."""
        data = asdict(self)
        data.pop("state")
        return {"archcc_summary": SCHEMA_VERSION, **data}


def input_symbols(inspected: Inspected) -> list[str]:
    """Free input dims of the spec (B, T, ...), in order of first appearance."""
    names: list[str] = []
    for shape in inspected.program.input_shapes.values():
        for dim in shape:
            for sym in sorted(getattr(dim, "free_symbols", ()), key=str):
                if isinstance(sym, sympy.Symbol) and str(sym) not in names \
                        and str(sym) not in inspected.program.params:
                    names.append(str(sym))
    return names


def split_dims(inspected: Inspected, dims: dict[str, Value]) -> tuple[int, dict[str, int]]:
    """``{"B": 2, "T": 64}`` -> batch 2 and ``{"T": 64}``; unknown or non-integer dims fail."""
    known = input_symbols(inspected)
    errors = []
    for name, value in dims.items():
        if name not in known:
            hint = did_you_mean(name, set(known)) or f"input dims of this spec: {', '.join(known)}"
            errors.append(Diagnostic(SourceLoc(inspected.loaded.path), "inputs",
                                     f"--dims {name}: not an input dim of this spec", hint))
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
            errors.append(Diagnostic(SourceLoc("--dims"), "", f"{name}={value!r} must be a "
                                     "positive integer"))
    if errors:
        raise ArchccError(errors)
    sizes = {k: int(v) for k, v in dims.items()}
    batch = sizes.pop("B", 1)
    return batch, {**inspected.program.dims, **sizes}


def summarize(path: str | Path, dims: dict[str, Value] | None = None,
              sets: Sequence[str] = (), depth: int = 1) -> Summary:
    """Measure the spec (``--set`` overrides applied) on the meta device; fold into rows."""
    inspected = load_for_inspection(path, sets)
    batch, sizes = split_dims(inspected, dims or {})
    measured = measure(inspected.module, batch, sizes)
    return summary_of(inspected, measured, batch, sizes, list(sets), depth)


def summary_of(inspected: Inspected, measured: Measured, batch: int, dims: dict[str, int],
               sets: list[str], depth: int) -> Summary:
    totals = {"params": measured.params[""], "flops": measured.flops[""],
              "macs": measured.flops[""] // 2, "act_bytes": measured.act_bytes[""]}
    inputs = dict(zip(inspected.program.inputs, measured.input_shapes, strict=False))
    summary = Summary(inspected.name, inspected.loaded.path, batch, dims, sets,
                      inputs, totals, tied=dict(measured.tied), state=measured.state)
    summary.rows = _Folder(measured).rows(depth)
    summary.kv_cache = _kv_cache(inspected, dims)
    return summary


def _kv_cache(inspected: Inspected, dims: dict[str, int]) -> dict[str, int]:
    """What a KV cache holds for one sequence of ``dims["T"]`` tokens (float32): grouped-query
    layers keep their kv heads only, sliding-window layers their window only."""
    from archcc.inspect.budget import kv_cache_layers

    shapes = inspected.program.kv_shapes
    if not shapes or "T" not in dims:
        return {}
    layers = kv_cache_layers(inspected.module, shapes, dims["T"])
    full = kv_cache_layers(inspected.module, shapes, dims["T"], window=False)
    return {"T": dims["T"], "bytes": sum(layer.bytes for layer in layers),
            "layers": len(layers), "unwindowed_bytes": sum(layer.bytes for layer in full)}


class _Folder:
    """Folds per-module figures into rows, merging identical repeat instances."""

    def __init__(self, measured: Measured) -> None:
        self.m = measured
        self.children: dict[str, list[str]] = {p: [] for p in measured.kinds}
        for path in measured.kinds:
            if path:
                self.children[path.rpartition(".")[0]].append(path)
        self._prints: dict[str, tuple] = {}

    def rows(self, max_depth: int) -> list[Row]:
        out: list[Row] = []
        self._walk([""], "", 1, max_depth, out)
        return out

    def _walk(self, group: list[str], shown: str, level: int, max_depth: int,
              out: list[Row]) -> None:
        for child in self.children[group[0]]:
            name = child.rpartition(".")[2]
            members = [f"{p}.{name}" if p else name for p in group]
            label = f"{shown}.{name}" if shown else name
            instances = [c for p in members for c in self.children[p]]
            is_repeat = self.m.kinds[child] == "ModuleList" and instances
            out.append(self._row(members, label, level, is_repeat))
            if level >= max_depth:
                continue
            if not is_repeat:
                self._walk(members, label, level + 1, max_depth, out)
            elif len({self._print(i) for i in instances}) == 1:
                self._walk(instances, f"{label}.*", level + 1, max_depth, out)
            else:  # per-layer differences: one row per instance
                for i in range(len(self.children[members[0]])):
                    same = [self.children[p][i] for p in members]
                    out.append(self._row(same, f"{label}.{i}", level + 1, False))
                    if level + 1 < max_depth:
                        self._walk(same, f"{label}.{i}", level + 2, max_depth, out)

    def _row(self, members: list[str], label: str, level: int, is_repeat: bool) -> Row:
        first = members[0]
        kind = self.m.kinds[first]
        shape = self.m.shapes.get(first, [])
        if is_repeat:
            inner = self.children[first]
            counts = Counter(self.m.kinds[p] for p in inner)  # a pattern mixes blocks
            kind = " + ".join(f"{name} x{n}" for name, n in counts.items())
            shape = self.m.shapes.get(inner[-1], [])
        flops = sum(self.m.flops[p] for p in members)
        return Row(label, kind, level, len(members), shape, sum(self.m.params[p] for p in members),
                   flops, flops // 2, sum(self.m.act_bytes[p] for p in members))

    def _print(self, path: str) -> tuple:
        """Everything measured in a subtree, relative to it: equal prints merge."""
        if path not in self._prints:
            m = self.m
            own = (m.kinds[path], str(m.shapes.get(path)), m.params[path], m.flops[path],
                   m.act_bytes[path])
            kids = tuple((c.rpartition(".")[2], self._print(c)) for c in self.children[path])
            self._prints[path] = (own, kids)
        return self._prints[path]
