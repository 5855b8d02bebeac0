"""Spec composition: ``extends``, ``imports`` and ``--set``, with every value's origin kept.

A spec may start from another and change only what differs::

    # specs/gpt2_medium.yaml
    extends: gpt2.yaml
    name: gpt2_medium
    params: {n_embd: 1024, n_head: 16, n_layer: 24}

Merge rules (one line each, like Kustomize's strategic merge without the strategy):
mappings merge key by key, everything else (lists, strings, numbers) replaces, and ``null``
deletes the key; a checkpoint's ``rename`` rules, which apply first-match, keep the child's
before the base's (a base's catch-all ``model: ""`` must not shadow the child's rule).
``imports: [lib/blocks.yaml]`` adds the ``blocks:`` of block libraries (files holding only
``archcc: 1`` and ``blocks:``); a name defined twice is an error.
``--set n_layer=24`` (a param) or ``--set blocks.Block.layers.attn.heads=16`` (any path)
applies next; then a block written ``{extends: Block, ...}`` becomes that block with its
changes. References are relative paths that must stay inside the project (the nearest
folder above the spec holding ``.git`` or ``pyproject.toml``): no absolute paths, no URLs,
nothing is fetched or imported as code.

The merged :class:`SourceMap` keeps each key's own file and line, so errors point into the
file that said it, and ``archcc resolve`` can show where every value came from.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from archcc.diagnostics import ArchccError, Diagnostic, SourceLoc
from archcc.parser.yaml_loader import SourceMap, SpecPath, load_yaml

MAX_CHAIN = 16  # extends/imports nesting; a real project stays under 4
LIBRARY_KEYS = {"archcc", "doc", "blocks", "imports"}
Reader = Callable[[Path], tuple[dict, SourceMap]]


def set_location(assignment: str) -> SourceLoc:
    """Where a ``--set`` value "is": shown as ``--set n_layer=24`` in errors and provenance."""
    return SourceLoc(f"--set {assignment}", 0, 0)


# ----------------------------------------------------------------------------- merging


def _under(path: SpecPath, prefixes: set[SpecPath]) -> bool:
    return any(path[:len(p)] == p for p in prefixes)


def _first_match(path: SpecPath) -> bool:
    """Mappings whose order is meaning: checkpoint ``rename`` rules apply first-match."""
    return len(path) == 3 and path[0] == "checkpoint" and path[2] == "rename"


def merge(base: dict, base_where: SourceMap, child: dict, child_where: SourceMap,
          ) -> tuple[dict, SourceMap]:
    """``child`` over ``base``: mappings merge, anything else replaces, ``None`` deletes.
    ``init:`` rules are tried in order, so a child's come first (they refine its base's)."""
    replaced: set[SpecPath] = set()  # base entries under these paths no longer apply
    deleted: set[SpecPath] = set()

    def walk(old: object, new: object, path: SpecPath) -> object:
        if isinstance(old, dict) and isinstance(new, dict):
            # `init:` rules are tried in order: a child's own rules come before its base's
            first = dict.fromkeys(new) if path == ("init",) else {}
            out = first | {k: v for k, v in old.items() if k not in first}
            for key, value in new.items():
                if value is None:
                    out.pop(key, None)
                    deleted.add((*path, key))
                else:
                    out[key] = walk(old.get(key), value, (*path, key))
            if _first_match(path):  # the child's rules are tried before its base's
                out = {**{k: out[k] for k in new if k in out}, **out}
            return out
        replaced.add(path)
        return new

    data = walk(base, child, ())
    where = SourceMap(child_where.file)
    gone = replaced | deleted
    for table, old, new in ((where.keys, base_where.keys, child_where.keys),
                            (where.values, base_where.values, child_where.values)):
        table.update({p: loc for p, loc in old.items() if not _under(p, gone)})
        table.update({p: loc for p, loc in new.items() if not _under(p, deleted)})
    return data, where


# -------------------------------------------------------------------------- references


def project_root(spec: Path) -> Path:
    """The nearest folder above ``spec`` holding ``.git`` or ``pyproject.toml``."""
    folder = spec.resolve().parent
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists() or (candidate / "pyproject.toml").exists():
            return candidate
    return folder


def _reference(ref: object, origin: Path, root: Path, loc: SourceLoc, path: str) -> Path:
    """Check a spec reference and return the file it names."""
    def fail(message: str, hint: str | None = None) -> ArchccError:
        return ArchccError(Diagnostic(loc, path, message, hint))

    if not isinstance(ref, str) or not ref:
        raise fail("expected a relative path to a spec file")
    if "://" in ref or ref.startswith(("/", "~", "\\")) or (len(ref) > 1 and ref[1] == ":"):
        raise fail(f"'{ref}' is not a relative path",
                   "specs reference files inside the project, relative to the spec")
    if Path(ref).suffix not in (".yaml", ".yml", ".arch"):
        raise fail(f"'{ref}' is not a spec file", "use a .yaml, .yml or .arch file")
    target = (origin.parent / ref).resolve()
    if not target.is_relative_to(root):
        raise fail(f"'{ref}' is outside the project ({root.name}/)",
                   "copy the file into the project; specs never reach outside it")
    if not target.is_file():
        raise fail(f"'{ref}' does not exist (looked for {target.relative_to(root)})")
    return target


# --------------------------------------------------------------------------- composing


def compose(path: Path, read: Reader) -> tuple[dict, SourceMap, list[Path]]:
    """Read ``path`` and everything it extends or imports; return merged data and sources."""
    return _Composer(read, project_root(path)).load(path.resolve(), ())


def _spec_keys() -> set[str]:
    from archcc.parser.schema import Spec

    return {field.alias or name for name, field in Spec.model_fields.items()}


class _Composer:
    def __init__(self, read: Reader, root: Path):
        self.read, self.root = read, root
        self.sources: list[Path] = []

    def load(self, path: Path, chain: tuple[Path, ...], ref: tuple[SourceLoc, str] | None = None,
             ) -> tuple[dict, SourceMap, list[Path]]:
        self.sources.append(path)
        data, where = self._read(path, ref)
        if not isinstance(data, dict):
            return data, where, self.sources
        base_ref, imports = data.pop("extends", None), data.pop("imports", [])
        if base_ref is not None:
            base = self._follow(base_ref, path, chain, where, ("extends",))
            base_data, base_where, _ = self.load(base, (*chain, path),
                                                 (where.key(("extends",)), "extends"))
            data, where = merge(base_data, base_where, data, where)
        if not isinstance(imports, list):
            raise ArchccError(Diagnostic(where.key(("imports",)), "imports",
                                         "imports is a list of block library files"))
        for i, ref in enumerate(imports):
            key = ("imports", str(i))
            library = self._follow(ref, path, chain, where, key)
            self._add_blocks(data, where, library, (*chain, path),
                             (where.key(key), ".".join(key)))
        return data, where, self.sources

    def _read(self, path: Path, ref: tuple[SourceLoc, str] | None) -> tuple[dict, SourceMap]:
        """Read a file; one that a spec references must prove itself a spec (a mapping of
        spec keys only) before any error quotes it. A stranger's ``extends:
        .config/gh/hosts.yml`` must not print that file's lines: failures are reported at
        the reference, naming only the file."""
        if ref is None:
            return self.read(path)
        loc, key = ref
        shown = path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) \
            else path.name
        hint = "a spec extends or imports only archcc specs and block libraries"
        try:
            data, where = self.read(path)
        except ArchccError as exc:
            first = exc.diagnostics[0].loc
            at = f" (line {first.line}, column {first.col})" if first and first.line else ""
            raise ArchccError(Diagnostic(loc, key, f"'{shown}' does not parse as an archcc "
                                         f"spec{at}", hint)) from None
        if not isinstance(data, dict) or not data or not set(data) <= _spec_keys():
            raise ArchccError(Diagnostic(loc, key, f"'{shown}' is not an archcc spec", hint))
        return data, where

    def _follow(self, ref: object, origin: Path, chain: tuple[Path, ...], where: SourceMap,
                key: SpecPath) -> Path:
        loc = where.key(key)
        target = _reference(ref, origin, self.root, loc, ".".join(key))
        if target in (*chain, origin):
            cycle = " -> ".join(p.name for p in (*chain, origin, target))
            raise ArchccError(Diagnostic(loc, ".".join(key), f"spec cycle: {cycle}",
                                         "a spec may not extend or import itself"))
        if len(chain) >= MAX_CHAIN:
            raise ArchccError(Diagnostic(loc, ".".join(key),
                                         f"specs nest more than {MAX_CHAIN} levels deep"))
        return target

    def _add_blocks(self, data: dict, where: SourceMap, library: Path,
                    chain: tuple[Path, ...], ref: tuple[SourceLoc, str]) -> None:
        lib_data, lib_where, _ = self.load(library, chain, ref)
        extra = sorted(set(lib_data) - LIBRARY_KEYS) if isinstance(lib_data, dict) else []
        if extra or not isinstance(lib_data, dict):
            first = extra[0] if extra else ""
            raise ArchccError(Diagnostic(lib_where.key((first,)), first,
                                         "a block library holds only archcc, doc and blocks",
                                         "move params and the model into the spec that "
                                         "imports it"))
        blocks = data.setdefault("blocks", {})
        for name, block in (lib_data.get("blocks") or {}).items():
            if name in blocks:
                first = where.key(("blocks", name))
                raise ArchccError(Diagnostic(lib_where.key(("blocks", name)),
                                             f"blocks.{name}",
                                             f"block '{name}' is also defined at {first}",
                                             "rename one of them"))
            blocks[name] = block
            for table, source in ((where.keys, lib_where.keys),
                                  (where.values, lib_where.values)):
                table.update({p: v for p, v in source.items() if p[:2] == ("blocks", name)})


# ------------------------------------------------------------------------- block bases


def _within(where: SourceMap, prefix: SpecPath) -> SourceMap:
    """The part of ``where`` under ``prefix``, with paths relative to it."""
    cut = len(prefix)
    return SourceMap(where.file,
                     {p[cut:]: loc for p, loc in where.keys.items() if p[:cut] == prefix},
                     {p[cut:]: text for p, text in where.values.items() if p[:cut] == prefix})


def expand_block_bases(data: dict, where: SourceMap) -> list[str]:
    """Blocks written as changes to another block: ``{extends: Block, ...}``.

    The base block is merged under the derived one by the spec merge rules (mappings merge,
    the rest replaces, ``null`` deletes), so a pattern can mix a block and a variant::

        blocks:
          Wide: {extends: Block, layers: {mlp: {hidden: 8 * n_embd}}}
        model: {layers: {h: {pattern: BBW, blocks: {B: Block, W: Wide}}}}

    Runs after ``--set``: a change to the base reaches what derives from it. Inherited keys
    keep the base's file:line. Returns the derived block names, in definition order.
    """
    blocks = data.get("blocks") if isinstance(data, dict) else None  # not a mapping:
    if not isinstance(blocks, dict):  # validation says so, at the document
        return []
    derived = [n for n, b in blocks.items() if isinstance(b, dict) and "extends" in b]
    for name in derived:
        _expand(blocks, where, name, ())
    return derived


def _expand(blocks: dict, where: SourceMap, name: str, chain: tuple[str, ...]) -> None:
    block = blocks[name]
    if not isinstance(block, dict) or "extends" not in block:
        return  # a plain block, or one expanded already
    path = ("blocks", name, "extends")
    base = block["extends"]

    def fail(message: str, hint: str | None = None) -> ArchccError:
        return ArchccError(Diagnostic(where.text(path), ".".join(path), message, hint))

    if not isinstance(base, str):
        raise fail("extends names a block", "a block extends another block under blocks: by "
                                            "name; a spec file is extended at the top level")
    if base == name or base in chain:
        raise fail(f"block cycle: {' -> '.join((*chain, name, base))}",
                   "a block may not extend itself, even through others")
    if base not in blocks:
        from archcc.parser.expr import did_you_mean

        raise fail(f"unknown block '{base}'", did_you_mean(base, set(blocks) - {name})
                   or f"blocks here: {', '.join(sorted(set(blocks) - {name}))}")
    _expand(blocks, where, base, (*chain, name))
    own = {k: v for k, v in block.items() if k != "extends"}
    prefix = ("blocks", name)
    merged, merged_where = merge(blocks[base], _within(where, ("blocks", base)), own,
                                 _within(where, prefix))
    merged_where.keys.pop(("extends",), None)
    blocks[name] = merged
    for table, fresh in ((where.keys, merged_where.keys), (where.values, merged_where.values)):
        for old in [p for p in table if p[:2] == prefix and p != prefix]:
            del table[old]
        table.update({(*prefix, *p): loc for p, loc in fresh.items() if p})


# ------------------------------------------------------------------------------- --set


def apply_sets(data: dict, where: SourceMap, assignments: list[str]) -> None:
    """Apply ``--set key=value`` overrides in order; a bare key names a param.

    Values are read by the spec loader, so a tag or a control character is refused as in a
    file. A spec that is no mapping is left to validation, which says so at its first line.
    """
    if not isinstance(data, dict):
        return
    for text in assignments:
        loc = set_location(text)
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ArchccError(Diagnostic(loc, "", f"--set expects key=value, got '{text}'",
                                         "e.g. --set n_layer=24"))
        path = tuple(key.split(".")) if "." in key else ("params", key)
        if "." not in key and key not in (data.get("params") or {}):
            from archcc.parser.expr import did_you_mean

            raise ArchccError(Diagnostic(loc, "", f"unknown param '{key}'",
                                         did_you_mean(key, set(data.get("params") or {}))
                                         or "use a dotted path for other fields, e.g. "
                                         "blocks.Block.layers.attn.heads=16"))
        value = _set_value(raw, loc, key)
        listed = isinstance((data.get("params") or {}).get(key), list) and path[0] == "params"
        if isinstance(value, dict) or isinstance(value, list) and (not listed or any(
                isinstance(v, dict | list) for v in value)):
            raise ArchccError(Diagnostic(loc, key, "--set takes a single value (a list only "
                                                   "for a list param: depths=[2,2,18,2])",
                                         "set nested fields one by one with dotted paths"))
        current = (data.get("params") or {}).get(key) if path[0] == "params" else None
        if _quoted(current) and isinstance(value, str) and not _quoted(value):
            value = json.dumps(value)  # a string param: --set layer_type=basic
        parent = data
        for part in path[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
            if not isinstance(parent, dict):
                raise ArchccError(Diagnostic(loc, key, f"'{part}' is not a mapping in this "
                                                       "spec", _set_hint(data, path)))
        if value is None:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = value
        where.keys[path] = loc
        where.values.pop(path, None)


def _set_value(raw: str, loc: SourceLoc, key: str) -> object:
    """The YAML value of ``--set key=raw`` (empty: the empty string)."""
    if not raw.strip():
        return ""
    try:
        return load_yaml(loc.file, raw)[0]
    except ArchccError as exc:
        first = exc.diagnostics[0]
        raise ArchccError(Diagnostic(loc, key, f"bad --set value: {first.message}",
                                     first.hint)) from None
def _quoted(value: object) -> bool:
    """A string param's value: a quoted literal expression (``'"bottleneck"'``)."""
    return isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"'


def _set_hint(data: dict, path: SpecPath) -> str:
    """A ``--set`` path runs before derived blocks are expanded: under one, only the keys it
    writes itself exist, so point at its base (a change there reaches both)."""
    block = (data.get("blocks") or {}).get(path[1]) if path[0] == "blocks" and len(path) > 2 \
        else None
    if isinstance(block, dict) and isinstance(block.get("extends"), str):
        base = ".".join(("blocks", block["extends"], *path[2:]))
        return (f"blocks.{path[1]} extends {block['extends']} and does not write this key: "
                f"set {base} (it reaches both), or write the key in {path[1]}")
    return "check the path with `archcc resolve`"
