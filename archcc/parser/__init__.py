"""Front end: a spec file -> a validated :class:`~archcc.parser.schema.Spec` with positions.

    >>> loaded = load_spec("specs/gpt2.yaml")
    >>> loaded.spec.params["n_embd"], loaded.where.key(("params", "n_embd")).line
    (768, 7)
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from archcc.diagnostics import ArchccError, Diagnostic, SourceLoc
from archcc.parser import schema
from archcc.parser.compose import apply_sets, compose, expand_block_bases, project_root
from archcc.parser.dsl import parse_arch
from archcc.parser.expr import did_you_mean
from archcc.parser.provenance import render_resolved
from archcc.parser.yaml_loader import SourceMap, load_yaml

MAX_SPEC_BYTES = 1_000_000


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec plus where each part of it came from."""

    spec: schema.Spec
    where: SourceMap
    path: str
    text: str
    sources: tuple[str, ...] = ()
    """Every file read: the spec first, then what it extends and imports."""
    sets: tuple[str, ...] = ()
    """The ``--set key=value`` overrides applied."""
    derived_blocks: tuple[str, ...] = ()
    """Blocks written ``{extends: Block, ...}``, now whole."""

    @property
    def composed(self) -> bool:
        """True when the spec is more than its own file says in full (extends, imports,
        --set or a derived block): fmt/convert would flatten it."""
        return len(self.sources) > 1 or bool(self.sets) or bool(self.derived_blocks)


def _model_fields(model: type[BaseModel]) -> set[str]:
    return {f.alias or name for name, f in model.model_fields.items()}


_STRUCTURE = (schema.Repeat, schema._Spec, schema._Block, schema.Input, schema.Layout,
              schema.Budget, schema.KVCacheBudget)
PLUGIN_HINT = ("an op from a plugin is known once its package is installed (entry point "
               "group archcc.ops); `archcc blocks list` shows every op")


def _parent_fields(data: object, path: tuple[str, ...]) -> set[str]:
    """Allowed keys of the mapping at ``path`` (for did-you-mean on an unknown key)."""
    node, ops = data, schema.op_models()
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict) and node.get("op") in ops:
        return _model_fields(ops[node["op"]])
    return set().union(*(_model_fields(m) for m in (*ops.values(), *_STRUCTURE)))


def _unknown_op(loc: SourceLoc, dotted: str, op: object, blocks=()) -> Diagnostic:
    """``unknown op 'x'``: a block used as an op gets the ``{block: X}`` form, a typo a
    did-you-mean, else the known ops and where new ones come from (a spec never imports
    anything; only installed plugins add ops)."""
    names = list(schema.op_models())
    if op is None:
        return Diagnostic(loc, dotted, "layer needs an 'op' (or 'repeat' or 'block')",
                          f"known ops: {', '.join(names)}")
    if not isinstance(op, str):  # a list or mapping where the op's name goes
        return Diagnostic(loc, dotted, f"op must be a name, got {type(op).__name__}",
                          f"known ops: {', '.join(names)}")
    if op in blocks:
        return Diagnostic(loc, dotted, f"unknown op '{op}'",
                          f"'{op}' is a block: use it as one layer with {{block: {op}}}, "
                          f"or as several with {{repeat: {op}, times: n}}")
    guess = did_you_mean(str(op), names)
    return Diagnostic(loc, dotted, f"unknown op '{op}'",
                      f"{guess} (a plugin op needs its package installed: entry point "
                      "group archcc.ops)" if guess
                      else f"known ops: {', '.join(names)}; {PLUGIN_HINT}")


def _diagnostic(err: dict, data: object, where: SourceMap) -> Diagnostic:
    path, loc = where.find(err["loc"])
    dotted = ".".join(path)
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        key = str(err["loc"][-1])
        return Diagnostic(where.key((*path[:-1], key)) if path else loc, dotted,
                          f"unknown key '{key}'",
                          did_you_mean(key, _parent_fields(data, path[:-1])))
    if kind == "missing":
        field = str(err["loc"][-1])
        return Diagnostic(loc, dotted, f"missing required field '{field}'")
    if kind == "unknown_op":
        blocks = data.get("blocks") if isinstance(data, dict) else None
        return _unknown_op(loc, dotted, value.get("op") if isinstance(value, dict) else None,
                           blocks if isinstance(blocks, dict) else ())
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    message, _, hint = message.partition(schema.HINT_MARK)
    return Diagnostic(loc, dotted, message[0].lower() + message[1:], hint or None)


def validate(data: object, where: SourceMap) -> schema.Spec:
    """Validate plain YAML data against the schema, reporting every problem at once."""
    if not isinstance(data, dict):
        raise ArchccError(Diagnostic(SourceLoc(where.file, 1, 1), "",
                                     "a spec must be a mapping with archcc, name, inputs, model"))
    try:
        return schema.spec_model().model_validate(data)
    except ValidationError as exc:
        diagnostics = {}
        for err in exc.errors():
            diag = _diagnostic(err, data, where)
            diagnostics.setdefault((diag.loc, diag.path, diag.message), diag)
        raise ArchccError(list(diagnostics.values())) from None


def display_path(path: str | Path) -> str:
    """The path as users see it: relative to the working folder when inside it.

    Generated banners and error locations use it, so output does not depend on where the
    checkout lives (``specs/gpt2.yaml``, never ``/home/me/archcc/specs/gpt2.yaml``).
    """
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


def project_path(path: str | Path) -> str:
    """The path generated files name a spec by: relative to its project (the nearest folder
    above it holding ``.git`` or ``pyproject.toml``, else its own folder).

    Unlike :func:`display_path` it does not depend on the working folder or on how the path
    was typed: ``archcc build /abs/specs/gpt2.yaml`` and ``cd specs; archcc build
    gpt2.yaml`` write the same bytes (``specs/gpt2.yaml`` in the banner)."""
    resolved = Path(path).resolve()
    return resolved.relative_to(project_root(resolved)).as_posix()


def read_limited(path: str | Path, what: str, limit: int) -> str:
    """A file's UTF-8 text; unreadable, larger than ``limit`` bytes or not UTF-8 is a located
    error naming ``what`` ("spec", "config"), so a stranger's huge file is never parsed."""
    file = display_path(path)
    try:
        raw = _read_regular(Path(path), limit)
    except OSError as exc:
        raise ArchccError(Diagnostic(SourceLoc(file), "",
                                     f"cannot read {what}: {exc.strerror}")) from None
    if raw is None:
        raise ArchccError(Diagnostic(SourceLoc(file), "", f"{what} is not a regular file",
                                     "a FIFO, device or folder is never read"))
    if len(raw) > limit:
        raise ArchccError(Diagnostic(byte_loc(file, raw, limit), "", f"{what} file is larger "
                                     f"than {limit // 1_000_000} MB"))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start:exc.end]
        raise ArchccError(Diagnostic(byte_loc(file, raw, exc.start), "",
                                     f"{what} is not valid UTF-8 (byte{'s' * (len(bad) > 1)} "
                                     f"{bad.hex(' ')})",
                                     "save the file as UTF-8")) from None


def byte_loc(file: str, raw: bytes, offset: int) -> SourceLoc:
    """The line and column (in characters) of a byte offset into a file's raw bytes, so an
    encoding error or the size limit is shown where it happens, not as the whole file."""
    start = raw.rfind(b"\n", 0, offset) + 1
    column = len(raw[start:offset].decode("utf-8", errors="replace"))
    return SourceLoc(file, raw.count(b"\n", 0, offset) + 1, column + 1)


def _read_regular(path: Path, limit: int) -> bytes | None:
    """At most ``limit + 1`` bytes of a regular file; None for anything else. Opened without
    blocking and checked on the open descriptor, so a FIFO cannot hang the read and a swap
    between check and read cannot slip a device in."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return handle.read(limit + 1)


def read_text(path: str | Path) -> str:
    """A spec file's text, refusing unreadable, huge and non-UTF-8 files with a location."""
    return read_limited(path, "spec", MAX_SPEC_BYTES)


def read_document(path: str | Path) -> tuple[dict, SourceMap]:
    """One file as plain data with positions, YAML (.yaml/.yml) or the DSL (.arch)."""
    file, text = display_path(path), read_text(path)
    if Path(path).suffix == ".arch":
        return parse_arch(file, text)
    return load_yaml(file, text)


def _composed(path: str | Path, sets: Sequence[str]
              ) -> tuple[dict, SourceMap, list[Path], list[str]]:
    """Compose, override, expand derived blocks: the data validation sees."""
    data, where, sources = compose(Path(path), read_document)
    if sets:
        apply_sets(data, where, list(sets))
    return data, where, sources, expand_block_bases(data, where)


def load_spec(path: str | Path, sets: Sequence[str] = ()) -> LoadedSpec:
    """Read, compose (extends/imports), override (``--set``) and validate a spec file.

    Installed plugin ops are loaded first (once; see archcc.plugins), never because of
    anything the spec says."""
    from archcc import plugins

    plugins.load_installed()
    text = read_text(path)
    data, where, sources, derived = _composed(path, sets)
    return LoadedSpec(validate(data, where), where, display_path(path), text,
                      tuple(display_path(s) for s in sources), tuple(sets), tuple(derived))


def resolve_spec(path: str | Path, sets: Sequence[str] = ()) -> str:
    """The composed spec as YAML, each line commented with the file:line that set it.

    The spec is validated first, so what is printed is exactly what ``build`` compiles.
    """
    data, where, *_ = _composed(path, sets)
    validate(data, where)
    return render_resolved(data, where)
