"""Program -> source text -> file, deterministically and atomically.

    source = generate(program)            # the same spec always gives the same bytes
    write_atomic(Path("generated/gpt2.py"), source)   # archcc.output: all or nothing
"""

from __future__ import annotations

import ast
import subprocess
from functools import lru_cache
from pathlib import Path

import jinja2

from archcc.codegen import safe_text
from archcc.codegen.targets import input_table
from archcc.codegen.views import file_view
from archcc.diagnostics import ArchccError, Diagnostic, SourceLoc
from archcc.ir.graph import Program


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined, autoescape=False,
    )


def generate(program: Program, target: str = "torch") -> str:
    """Render the generated module; checks that the result parses as Python.

    ``target="tensorrt"`` adds a ``compile()`` helper (see archcc.codegen.targets).
    """
    view = file_view(program)
    source = _environment().get_template("module.py.j2").render(
        v=view, io=input_table(program, target), module_name=program.name,
        training=view.extra["training"])
    source = format_source(source)
    try:
        ast.parse(source)
    except SyntaxError as exc:  # a bug in archcc, reported in the usual format
        _codegen_bug(program, f"generated code does not parse: {exc.msg} (line {exc.lineno})")
    broken = safe_text.check_source(source)
    if broken:  # never written, never imported: the invariant that keeps spec text inert
        _codegen_bug(program, f"generated code breaks a safety invariant: {broken}")
    return source


def _codegen_bug(program: Program, message: str) -> None:
    raise ArchccError(Diagnostic(SourceLoc(program.source), "codegen", message,
                                 "please report this spec to archcc"))


LINE_LENGTH = 100


def format_source(source: str) -> str:
    """Format with ruff (a pinned dependency, so output is byte-stable); unchanged if absent."""
    try:
        from ruff.__main__ import find_ruff_bin
    except ImportError:
        return source
    result = subprocess.run(
        [find_ruff_bin(), "format", "--isolated", f"--line-length={LINE_LENGTH}", "-"],
        input=source, capture_output=True, text=True, check=False)
    return result.stdout if result.returncode == 0 else source
