"""The Python API: compile a spec, write the module, import it.

    >>> source = compile_spec("specs/gpt2.yaml").source     # text only, nothing written
    >>> module = build("specs/gpt2.yaml", out_dir="generated")
    >>> module = load("specs/gpt2.yaml")                     # cached by the spec's hash
"""

from __future__ import annotations

import copy
import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from archcc.cache import cache_dir, compiler_fingerprint, private
from archcc.codegen.emit import generate
from archcc.ir.build import build as build_ir
from archcc.ir.graph import Program
from archcc.ir.infer import infer_shapes
from archcc.ir.kv_cache import add_kv_cache, causal_kv_shapes
from archcc.ir.layouts import check_layouts
from archcc.ir.passes import optimize
from archcc.output import write_all, write_atomic
from archcc.parser import load_spec
from archcc.runtime.loader import import_file, import_source


@dataclass
class Compiled:
    """Everything one compilation produced, for the CLI and tests."""

    program: Program
    source: str
    sources: tuple[str, ...] = ()
    """Every spec file read: the spec, then what it extends and imports."""
    libraries: tuple[str, ...] = ()
    """Libraries the checkpoint layout was proved against (the spec's ``reference:``)."""

    @property
    def name(self) -> str:
        return self.program.name


def compile_spec(path: str | Path, opt_level: int = 2, stop_after: str | None = None,
                 target: str = "torch", sets: Sequence[str] = ()) -> Compiled:
    """Spec file -> optimized IR -> generated source. Raises ArchccError on bad input.

    ``target="tensorrt"`` also emits a ``compile()`` helper for Torch-TensorRT; ``sets`` are
    ``--set`` overrides: ``("n_layer=24", "blocks.Block.layers.attn.heads=16")``.
    """
    loaded = load_spec(path, sets)
    program = build_ir(loaded)
    infer_shapes(program)
    check_layouts(loaded, program)  # checkpoint rules against the (unfused) parameter names
    # for the budget and summary, before passes rewrite attention
    program.kv_shapes = kv_shapes = causal_kv_shapes(program)
    add_kv_cache(program, loaded)  # the `generate:` facet, before the passes fuse attention
    # layouts name the unfused keys (a fused module concatenates its parts on load)
    unfused = copy.deepcopy(program) if loaded.spec.reference is not None else None
    optimize(program, opt_level=opt_level, stop_after=stop_after)
    source = generate(program, target)
    if loaded.spec.budget is not None:  # `budget:` limits, measured on meta (imports torch)
        from archcc.inspect.budget import check_budget

        check_budget(loaded, program, source, kv_shapes)
    if unfused is not None:  # the layout against the reference's own keys
        from archcc.inspect.reference_keys import check_reference

        check_reference(loaded, unfused)
    libraries = (loaded.spec.reference.library,) if unfused is not None else ()
    return Compiled(program, source, loaded.sources, libraries)


def build(path: str | Path, out_dir: str | Path = "generated", opt_level: int = 2,
          sets: Sequence[str] = ()) -> ModuleType:
    """Write ``<out_dir>/<name>.py`` for the spec and return the imported module."""
    compiled = compile_spec(path, opt_level=opt_level, sets=sets)
    target = Path(out_dir) / f"{compiled.name}.py"
    write_atomic(target, compiled.source)
    return import_file(target, f"archcc_generated.{compiled.name}")


def load(path: str | Path, opt_level: int = 2, sets: Sequence[str] = ()) -> ModuleType:
    """Build into a cache keyed by the bytes of the spec and every file it extends or
    imports (and archcc's own sources, the opt level and ``sets``), then import.

    A cached module is imported only when its bytes still have the digest recorded when it
    was written, and only from a cache folder no other user can write; otherwise it is
    compiled afresh (and rewritten)."""
    loaded = load_spec(path, sets)
    digest = hashlib.sha256(f"{compiler_fingerprint()}|O{opt_level}|{list(sets)}".encode())
    for source in loaded.sources:
        digest.update(b"\0" + Path(source).read_bytes())
    key = digest.hexdigest()[:16]
    folder = cache_dir() / key
    cached = _verified_cache(folder)
    if cached is not None:
        name, source = cached
        module_name = f"archcc_cache_{key}.{name}"
        return sys.modules.get(module_name) or import_source(source, module_name)
    compiled = compile_spec(path, opt_level=opt_level, sets=sets)
    target = folder / f"{compiled.name}.py"
    write_all({target: compiled.source, target.with_suffix(".sha256"): _sha256(compiled.source)})
    return import_source(compiled.source, f"archcc_cache_{key}.{compiled.name}")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _verified_cache(folder: Path) -> tuple[str, str] | None:
    """(module name, source) of the one cached module whose digest checks out, else None."""
    if not folder.is_dir() or not private(folder):
        return None
    files = list(folder.glob("*.py"))
    if len(files) != 1 or not files[0].with_suffix(".sha256").is_file():
        return None
    source = files[0].read_bytes().decode("utf-8", errors="replace")
    recorded = files[0].with_suffix(".sha256").read_text(encoding="utf-8").strip()
    return (files[0].stem, source) if _sha256(source) == recorded else None
