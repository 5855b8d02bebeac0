"""Load a spec for inspection: apply ``--set`` overrides, compile, import the module.

Overrides change the spec's own ``params`` before the IR is built, so derived params
(``num_patches: (image_size // patch_size) ** 2``) follow and every view of the
architecture (IR, generated code, figures) agrees::

    >>> loaded = load_for_inspection("specs/gpt2.yaml", {"n_layer": 24})
    >>> loaded.program.params["n_layer"], loaded.module.Config().n_layer
    (24, 24)
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, replace
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
from archcc.parser.expr import did_you_mean
from archcc.runtime.loader import import_file

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


def parse_assignments(items: list[str] | None, what: str = "--set") -> dict[str, Value]:
    """``["n_layer=24,n_head=16", "dropout=0"]`` -> ``{"n_layer": 24, "n_head": 16, ...}``.

    Values are ints, floats, true/false, or else kept as text (a param expression such as
    ``4*n_embd``, validated like any spec param).
    """
    out: dict[str, Value] = {}
    for item in items or []:
        for part in filter(None, (p.strip() for p in item.split(","))):
            name, sep, raw = part.partition("=")
            if not sep or not name.strip() or not raw.strip():
                raise ArchccError(Diagnostic(SourceLoc(what), "", f"expected NAME=VALUE, got "
                                             f"{part!r}", f"e.g. {what} n_layer=24"))
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


def with_params(loaded: LoadedSpec, overrides: dict[str, Value]) -> LoadedSpec:
    """The spec with some params replaced; an unknown name is a located error."""
    params = dict(loaded.spec.params)
    unknown = [n for n in overrides if n not in params]
    if unknown:
        raise ArchccError([Diagnostic(SourceLoc(loaded.path), "params",
                                      f"--set {n}: the spec has no param '{n}'",
                                      did_you_mean(n, set(params))
                                      or f"params: {', '.join(params)}") for n in unknown])
    if not overrides:
        return loaded
    params.update(overrides)
    return replace(loaded, spec=loaded.spec.model_copy(update={"params": params}))


def compile_program(loaded: LoadedSpec, stop_after: str | None = None,
                    opt_level: int = 1) -> Program:
    """Spec -> IR with shapes -> passes (all, or up to ``stop_after``)."""
    program = build_ir(loaded)
    infer_shapes(program)
    optimize(program, opt_level=opt_level, stop_after=stop_after)
    return program


def load_for_inspection(path: str | Path, overrides: dict[str, Value] | None = None
                        ) -> Inspected:
    """Compile ``path`` with ``overrides`` applied and import the generated module."""
    loaded = with_params(load_spec(path), overrides or {})
    program = compile_program(loaded)
    source = generate(program)
    return Inspected(loaded, program, source, _import_source(source, program.name))


@lru_cache(maxsize=32)
def _import_source(source: str, name: str) -> ModuleType:
    """Import generated source from a private temp folder, cached by its bytes."""
    key = hashlib.sha256(source.encode()).hexdigest()[:16]
    target = Path(tempfile.mkdtemp(prefix="archcc-inspect-")) / f"{name}.py"
    target.write_text(source, encoding="utf-8")
    return import_file(target, f"archcc_inspect_{key}.{name}")
