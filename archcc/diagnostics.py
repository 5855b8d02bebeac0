"""One error format for every stage: YAML, expressions, schema, wiring, shapes, codegen.

Every user-facing failure is an :class:`ArchccError` holding one or more :class:`Diagnostic`
records. The CLI prints them with :func:`render` and exits non-zero, never with a traceback::

    specs/gpt2.yaml:14:7: error: blocks.Block.layers.attn: heads (10) must divide dim (768)
       14 |       attn: {op: attention, dim: n_embd, heads: 10}
          |       ^
    hint: pick heads from the divisors of 768, e.g. 12
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SourceLoc:
    """A 1-based position in a spec file; ``line == 0`` means "somewhere in this file"."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.col}"

    def shifted(self, lines: int, col: int) -> SourceLoc:
        """Position of a sub-string that starts ``lines`` lines below and at column ``col``.

        Used for text nested in a YAML scalar, e.g. a forward program: its line 3, column 5
        is ``block_loc.shifted(2, indent + 5)``.
        """
        return SourceLoc(self.file, self.line + lines, col)


@dataclass(frozen=True)
class Diagnostic:
    """One problem: where, which spec path, what, and how to fix it."""

    loc: SourceLoc | None
    path: str
    message: str
    hint: str | None = None

    def sort_key(self) -> tuple:
        loc = self.loc or SourceLoc("")
        return (loc.file, loc.line, loc.col, self.path, self.message)


class ArchccError(Exception):
    """Raised by any stage with every independent problem it found."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        super().__init__("\n".join(render_one(d) for d in self.diagnostics))


def error(loc: SourceLoc | None, path: str, message: str, hint: str | None = None) -> ArchccError:
    """Shorthand for the common single-diagnostic error: ``raise error(loc, path, msg)``."""
    return ArchccError(Diagnostic(loc, path, message, hint))


def _source_line(loc: SourceLoc) -> str | None:
    try:
        lines = Path(loc.file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if 1 <= loc.line <= len(lines):
        return lines[loc.line - 1]
    return None


def render_one(diag: Diagnostic) -> str:
    """Format one diagnostic as `file:line:col: error: path: message` + source + caret + hint."""
    where = f"{diag.loc}: " if diag.loc else ""
    path = f"{diag.path}: " if diag.path else ""
    out = [f"{where}error: {path}{diag.message}"]
    source = _source_line(diag.loc) if diag.loc and diag.loc.line > 0 else None
    if source is not None:
        gutter = f"{diag.loc.line:>6} | "
        out.append(gutter + source)
        out.append(" " * (len(gutter) - 2) + "| " + " " * max(diag.loc.col - 1, 0) + "^")
    if diag.hint:
        out.append(f"hint: {diag.hint}")
    return "\n".join(out)


def render(err: ArchccError) -> str:
    """Format every diagnostic of an error, separated by blank lines."""
    return "\n\n".join(render_one(d) for d in err.diagnostics)
