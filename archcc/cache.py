"""archcc's cache folder (``$ARCHCC_CACHE`` or ``~/.cache/archcc``) and whether to trust it.

Three things live there: modules ``archcc.load`` built (each beside the digest it was
written with), lark's analysed grammar (so the parser tables are not rebuilt on every start)
and ``archcc check`` verdicts keyed by the digest of every file a spec read and of archcc
itself (and the version of the library a ``reference:`` was proved against), so an editor
or pre-commit hook re-checking an unchanged spec gets its answer without loading the
compiler. All are read only from a folder this user owns and no one else
can write: a cache is a shortcut, never a way in.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from archcc import __version__


def cache_dir() -> Path:
    """The cache folder, created private (0700) when missing."""
    root = Path(os.environ.get("ARCHCC_CACHE") or Path.home() / ".cache" / "archcc")
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return root


def private(folder: Path) -> bool:
    """``folder`` is owned by this user and writable by no one else, and no one else can
    replace it: its parent is as private, or a sticky folder such as /tmp (where others
    cannot rename what is yours). Always true where the OS has no such notions."""
    if not hasattr(os, "getuid"):
        return True
    info = folder.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        return False
    parent = folder.parent.stat()
    sticky = parent.st_mode & stat.S_ISVTX
    return sticky or (parent.st_uid in (0, os.getuid()) and not parent.st_mode & 0o022)


def trusted_cache_dir() -> Path | None:
    """The cache folder if it can be created and is private, else None (work uncached)."""
    try:
        root = cache_dir()
    except OSError:
        return None
    return root if private(root) else None


@functools.cache
def compiler_fingerprint() -> str:
    """A digest of archcc's own sources (code, templates, grammar).

    Part of every cache key: the version string alone does not change while archcc is
    developed or installed from a checkout, and a stale cache would hand back code that an
    older compiler wrote."""
    digest = hashlib.sha256(__version__.encode())
    package = Path(__file__).parent
    for source in sorted(package.rglob("*")):
        if source.suffix in (".py", ".j2", ".lark") and "__pycache__" not in source.parts:
            digest.update(b"\0" + str(source.relative_to(package)).encode())
            digest.update(b"\0" + source.read_bytes())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------- check verdicts


def _installed_plugins() -> str:
    """The ``archcc.ops`` entry points a check would load (a verdict depends on them)."""
    if os.environ.get("ARCHCC_PLUGINS") == "0":
        return "none"
    from importlib.metadata import entry_points

    return ";".join(sorted(f"{e.name}={e.value}" for e in entry_points(group="archcc.ops")))


def _verdict_file(spec: Path, sets: Sequence[str]) -> Path | None:
    root = trusted_cache_dir()
    if root is None:
        return None
    key = f"{Path(spec).resolve()}|{list(sets)}|{_installed_plugins()}"
    return root / "check" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def _file_digest(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def cached_verdict(spec: Path, sets: Sequence[str]) -> str | None:
    """The ``ok`` line of an earlier check whose spec files and archcc are unchanged."""
    record_file = _verdict_file(spec, sets)
    if record_file is None or not record_file.is_file():
        return None
    try:
        record = json.loads(record_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("archcc") != compiler_fingerprint() or not record.get("sources"):
        return None
    unchanged = all(_file_digest(path) == digest for path, digest in record["sources"].items())
    libraries = record.get("libraries", {})
    same = all(_library_version(name) == v for name, v in libraries.items())
    return record.get("verdict") if unchanged and same else None


def _library_version(name: str) -> str | None:
    """The installed version of a library (read from its metadata, not imported)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def record_verdict(spec: Path, sets: Sequence[str], sources: Sequence[str],
                   verdict: str, libraries: Sequence[str] = ()) -> None:
    """Remember that ``spec`` (reading ``sources``) checked out, for :func:`cached_verdict`;
    ``libraries`` were proved against (``reference:``), so their versions are part of it."""
    from archcc.output import write_atomic

    record_file = _verdict_file(spec, sets)
    digests = {str(Path(s).resolve()): _file_digest(s) for s in sources}
    if record_file is None or None in digests.values():
        return
    record = {"archcc": compiler_fingerprint(), "sources": digests, "verdict": verdict,
              "libraries": {name: _library_version(name) for name in libraries}}
    try:
        write_atomic(record_file, json.dumps(record, indent=1))
    except Exception:  # noqa: BLE001 - a cache that cannot be written is only slower
        pass
