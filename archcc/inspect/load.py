"""Load a spec for inspection: apply ``--set`` overrides, compile, import the module.

Overrides are the same ``--set KEY=VALUE`` as ``archcc build`` (``n_layer=24`` or a dotted
path), applied before the IR is built, so derived params follow and every view of the
architecture (IR, generated code, figures) agrees::

    >>> loaded = load_for_inspection("specs/gpt2.yaml", ["n_layer=24"])
    >>> loaded.program.params["n_layer"], loaded.module.Config().n_layer
    (24, 24)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from archcc.codegen.emit import generate
from archcc.diagnostics import ArchccError, Diagnostic, SourceLoc
from archcc.ir.build import build as build_ir
from archcc.ir.graph import Program
from archcc.ir.infer import infer_shapes
from archcc.ir.passes import optimize
from archcc.parser import LoadedSpec, load_spec
from archcc.runtime.loader import import_source

Value = bool | int | float | str


@dataclass
class Inspected:
    """One spec ready to inspect: the validated spec, its optimized IR and imported module."""

    loaded: LoadedSpec
    program: Program
    source: str
    module: ModuleType

    @property
    def name(self) -> str:
        return self.program.name


def parse_assignments(items: list[str] | None, what: str = "--dims") -> dict[str, Value]:
    """``["B=2,T=64", "S=8"]`` -> ``{"B": 2, "T": 64, "S": 8}`` (ints, floats, booleans,
    else text)."""
    out: dict[str, Value] = {}
    for item in items or []:
        for part in filter(None, (p.strip() for p in item.split(","))):
            name, sep, raw = part.partition("=")
            if not sep or not name.strip() or not raw.strip():
                raise ArchccError(Diagnostic(SourceLoc(what), "", f"expected NAME=VALUE, got "
                                             f"{part!r}", f"e.g. {what} B=1,T=1024"))
            out[name.strip()] = _value(raw.strip())
    return out


def _value(raw: str) -> Value:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def compile_program(loaded: LoadedSpec, stop_after: str | None = None,
                    opt_level: int = 1) -> Program:
    """Spec -> IR with shapes -> passes (all, or up to ``stop_after``)."""
    from archcc.ir.kv_cache import causal_kv_shapes

    program = build_ir(loaded)
    infer_shapes(program)
    program.kv_shapes = causal_kv_shapes(program)  # before the passes fuse attention
    optimize(program, opt_level=opt_level, stop_after=stop_after)
    return program


def load_for_inspection(path: str | Path, sets: Sequence[str] = ()) -> Inspected:
    """Compile ``path`` with ``--set`` overrides applied and import the generated module.

    Compiled once per process for the same composed spec and overrides.
    """
    loaded = load_spec(path, tuple(sets))
    key = (loaded.path, loaded.spec.model_dump_json(), tuple(sets))
    if key not in _COMPILED:
        program = compile_program(loaded)
        source = generate(program)
        _COMPILED[key] = Inspected(loaded, program, source,
                                   _import_source(source, program.name))
    return _COMPILED[key]


_COMPILED: dict[tuple, Inspected] = {}


@lru_cache(maxsize=32)
def _import_source(source: str, name: str) -> ModuleType:
    """Import generated source from memory (no temp folder is left), cached by its bytes."""
    key = hashlib.sha256(source.encode()).hexdigest()[:16]
    return import_source(source, f"archcc_inspect_{key}.{name}")
