"""One error format for every stage: YAML, expressions, schema, wiring, shapes, codegen.

Every user-facing failure is an :class:`ArchccError` holding one or more :class:`Diagnostic`
records. The CLI prints them with :func:`render` and exits non-zero, never with a traceback::

    specs/gpt2.yaml:14:7: error: blocks.Block.layers.attn: heads (10) must divide dim (768)
       14 |       attn: {op: attention, dim: n_embd, heads: 10}
          |       ^
    hint: pick heads from the divisors of 768, e.g. 12
"""

from __future__ import annotations

import unicodedata
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


def _unseen(char: str) -> bool:
    """Control, format (bidi overrides, zero-width) and line/paragraph separator characters:
    printed raw they move the cursor, clear the screen or reorder what a reader sees."""
    return char not in "\t\n" and unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")


def _escaped(text: str) -> str:
    """Message text with unseen characters written as escapes (``\\x0c``, ``\\u202e``)."""
    if not any(_unseen(c) for c in text):
        return text
    return "".join(ascii(c)[1:-1] if _unseen(c) else c for c in text)


def _source_line(loc: SourceLoc) -> str | None:
    """Line ``loc.line`` of the file, counted by ``\\n`` as every stage counts them (not
    str.splitlines, which also breaks at a form feed or U+2028); unseen characters become
    U+FFFD one for one, so the caret below stays under its column."""
    try:  # decoded with U+FFFD for bad bytes, as the error for them counts its column
        text = Path(loc.file).read_bytes().decode("utf-8", errors="replace")
    except (OSError, ValueError):  # no such file, or a name no file can have (a NUL)
        return None
    text = text.removeprefix("\ufeff")
    lines = text.split("\n")
    if 1 <= loc.line <= len(lines):
        line = lines[loc.line - 1].removesuffix("\r")
        return "".join("\ufffd" if _unseen(c) else c for c in line)
    return None


def render_one(diag: Diagnostic) -> str:
    """Format one diagnostic as `file:line:col: error: path: message` + source + caret + hint."""
    where = f"{_escaped(str(diag.loc))}: " if diag.loc else ""
    path = f"{_escaped(diag.path)}: " if diag.path else ""
    out = [f"{where}error: {path}{_escaped(diag.message)}"]
    source = _source_line(diag.loc) if diag.loc and diag.loc.line > 0 else None
    if source is not None:
        gutter = f"{diag.loc.line:>6} | "
        out.append(gutter + source)
        out.append(" " * (len(gutter) - 2) + "| " + " " * max(diag.loc.col - 1, 0) + "^")
    if diag.hint:
        out.append(f"hint: {_escaped(diag.hint)}")
    return "\n".join(out)


def render(err: ArchccError) -> str:
    """Format every diagnostic of an error, separated by blank lines."""
    return "\n\n".join(render_one(d) for d in err.diagnostics)
