"""Writing files: all or nothing, never half-written, readable like any file the user makes.

    write_all({Path("generated/gpt2.py"): source, Path("generated/bert.py"): other})

Each file is first written in full beside its target (``.gpt2.py.<pid>.tmp``), then every
one is renamed into place; if any write fails, no target changes. The temp name carries the
writer's process id, so the leftovers of a killed run are recognised and swept by the next.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from archcc.diagnostics import ArchccError, Diagnostic, SourceLoc


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: assume it is still writing
        return True
    return True


def _sweep(folder: Path, name: str) -> None:
    """Remove temp files of ``name`` left by writers that no longer run (SIGKILL, power)."""
    pattern = re.compile(rf"^\.{re.escape(name)}\.(\d+)\.tmp$")
    for leftover in folder.glob(f".{name}.*.tmp"):
        match = pattern.match(leftover.name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            leftover.unlink(missing_ok=True)


def _temp_beside(path: Path) -> Path:
    """The temp name for ``path`` (its folder created, dead writers' leftovers swept)."""
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise ArchccError(Diagnostic(SourceLoc(str(folder)), "", "the output folder is a file",
                                     "pass a folder to -o (it is created if missing)"))
    if path.is_dir():
        raise ArchccError(Diagnostic(SourceLoc(str(path)), "", "a folder stands where the file "
                                     "goes", "move it away, or write elsewhere with -o"))
    folder.mkdir(parents=True, exist_ok=True)
    _sweep(folder, path.name)
    return folder / f".{path.name}.{os.getpid()}.tmp"


def _write_new(tmp: Path, text: str) -> None:
    """Write with the mode any new file of the user gets (0644 under the usual umask)."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 & ~_umask())
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def write_all(files: dict[Path, str]) -> None:
    """Write every file or none: stage all, then rename each into place."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, text in files.items():
            staged.append((_temp_beside(path), path))
            _write_new(staged[-1][0], text)
    except BaseException as exc:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            where = exc.filename or next(iter(files), "")
            raise ArchccError(Diagnostic(SourceLoc(str(where)), "",
                                         f"cannot write: {exc.strerror}")) from None
        raise
    for i, (tmp, path) in enumerate(staged):
        try:
            os.replace(tmp, path)
        except OSError as exc:  # checked above; only a race gets here
            for left, _ in staged[i:]:
                left.unlink(missing_ok=True)
            raise ArchccError(Diagnostic(SourceLoc(str(path)), "",
                                         f"cannot write: {exc.strerror}")) from None


def write_atomic(path: Path, text: str) -> None:
    """One file, all or nothing (see :func:`write_all`)."""
    write_all({Path(path): text})
