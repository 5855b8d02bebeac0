"""Program -> source text -> file, deterministically and atomically.

    source = generate(program)            # the same spec always gives the same bytes
    write_atomic(Path("generated/gpt2.py"), source)
"""

from __future__ import annotations

import ast
import os
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import jinja2

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
        v=view, io=input_table(program, target), module_name=program.name)
    source = format_source(source)
    try:
        ast.parse(source)
    except SyntaxError as exc:  # a bug in archcc, reported in the usual format
        raise ArchccError(Diagnostic(SourceLoc(program.source), "codegen",
                                     f"generated code does not parse: {exc.msg} "
                                     f"(line {exc.lineno})",
                                     "please report this spec to archcc")) from None
    return source


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


def write_atomic(path: Path, text: str) -> None:
    """Write via a temp file in the same folder and rename: never a half-written module."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
