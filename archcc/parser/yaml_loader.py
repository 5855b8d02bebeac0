"""YAML with positions: every key and value keeps its file:line:col, duplicates are refused.

PyYAML's plain loader forgets where things came from and silently keeps the last of two
duplicate keys. Like torchgen's loader we compose the node tree ourselves and record a
:class:`SourceMap` beside plain Python data, so later stages can point at the exact line::

    data, where = load_yaml("specs/gpt2.yaml")
    where.key(("blocks", "Block", "layers", "attn"))   # SourceLoc('specs/gpt2.yaml', 14, 7)

Anchors and aliases are refused: they are the door to "billion laughs" blow-ups and a
spec gains nothing from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from archcc.diagnostics import ArchccError, Diagnostic, SourceLoc
from archcc.parser.expr import Pos

SpecPath = tuple[str, ...]
MAX_NODES = 100_000  # far above any real spec; a guard against generated monsters
MAX_DEPTH = 32  # a real spec nests 6 deep; recursion must never reach Python's limit


@dataclass
class _Text:
    """Where the characters of a scalar begin, so positions inside it map to the file."""

    loc: SourceLoc
    block: bool  # literal/folded block scalar: content starts on the next line
    indent: int


@dataclass
class SourceMap:
    """Positions of every key and value of one YAML document, by spec path."""

    file: str
    keys: dict[SpecPath, SourceLoc] = field(default_factory=dict)
    values: dict[SpecPath, _Text] = field(default_factory=dict)

    def key(self, path: SpecPath) -> SourceLoc:
        """Location of the key at ``path``, or of its nearest recorded ancestor."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.keys:
                return self.keys[path[:end]]
        return SourceLoc(self.file, 1, 1)

    def find(self, loose_path: tuple) -> tuple[SpecPath, SourceLoc]:
        """Best location for a path that may contain extra elements (pydantic union tags).

        Elements that are not keys of the document are skipped, so pydantic's
        ``('model', 'layers', 'wte', 'embedding', 'num')`` finds ``model.layers.wte.num``.
        """
        found: SpecPath = ()
        for element in loose_path:
            candidate = (*found, str(element))
            if candidate in self.keys:
                found = candidate
        return found, self.key(found) if found else SourceLoc(self.file, 1, 1)

    def text(self, path: SpecPath, pos: Pos | None = None) -> SourceLoc:
        """File location of position ``pos`` inside the scalar at ``path``."""
        pos = pos or Pos()
        origin = self.values.get(path)
        if origin is None:
            return self.key(path)
        file = origin.loc.file  # a composed spec's values come from several files
        if origin.block:
            return SourceLoc(file, origin.loc.line + pos.line, origin.indent + pos.col)
        if pos.line == 1:
            return SourceLoc(file, origin.loc.line, origin.loc.col + pos.col - 1)
        return SourceLoc(file, origin.loc.line + pos.line - 1, pos.col)


def _loc(file: str, mark: yaml.Mark) -> SourceLoc:
    return SourceLoc(file, mark.line + 1, mark.column + 1)


def _block_indent(lines: list[str], first_content_line: int) -> int:
    for line in lines[first_content_line:]:
        if line.strip():
            return len(line) - len(line.lstrip(" "))
    return 0


class _Converter:
    """Walks a composed node tree into plain data while filling a SourceMap."""

    def __init__(self, file: str, text: str):
        self.map = SourceMap(file)
        self.lines = text.splitlines()
        self.seen: set[int] = set()
        self.errors: list[Diagnostic] = []

    def convert(self, node: yaml.Node, path: SpecPath):
        if id(node) in self.seen:
            raise ArchccError(Diagnostic(_loc(self.map.file, node.start_mark), ".".join(path),
                                         "YAML anchors and aliases are not allowed in specs",
                                         "write the value out; specs are shared and must stay "
                                         "small and explicit"))
        self.seen.add(id(node))
        if len(path) > MAX_DEPTH:
            raise ArchccError(Diagnostic(_loc(self.map.file, node.start_mark), ".".join(path[:3]),
                                         f"spec nests deeper than {MAX_DEPTH} levels"))
        if len(self.seen) > MAX_NODES:
            raise ArchccError(Diagnostic(_loc(self.map.file, node.start_mark), ".".join(path),
                                         f"spec has more than {MAX_NODES} YAML nodes"))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*path, str(i))) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: SpecPath) -> dict:
        out: dict = {}
        for key_node, value_node in node.value:
            key = self._scalar(key_node, path)
            if not isinstance(key, str | int):
                self.errors.append(Diagnostic(_loc(self.map.file, key_node.start_mark),
                                              ".".join(path), "mapping keys must be names"))
                continue
            key = str(key)
            here = (*path, key)
            if key in out:
                first = self.map.keys[here]
                self.errors.append(Diagnostic(
                    _loc(self.map.file, key_node.start_mark), ".".join(here),
                    f"duplicate key '{key}' (first defined at line {first.line})",
                    "YAML keeps only the last of duplicate keys; remove or rename one"))
                continue
            self.map.keys[here] = _loc(self.map.file, key_node.start_mark)
            out[key] = self.convert(value_node, here)
        return out

    def _scalar(self, node: yaml.ScalarNode, path: SpecPath):
        loc = _loc(self.map.file, node.start_mark)
        block = node.style in ("|", ">")
        if block:
            indent = _block_indent(self.lines, node.start_mark.line + 1)
            self.map.values[path] = _Text(loc, True, indent)
        else:
            quoted = 1 if node.style in ("'", '"') else 0
            self.map.values[path] = _Text(SourceLoc(loc.file, loc.line, loc.col + quoted),
                                          False, 0)
        return yaml.SafeLoader.construct_object(_CONSTRUCTOR, node)


class _Constructor(yaml.SafeLoader):
    def __init__(self):  # a constructor only; it never reads a stream
        yaml.constructor.SafeConstructor.__init__(self)


_CONSTRUCTOR = _Constructor()


def load_yaml(path: str | Path, text: str | None = None) -> tuple[object, SourceMap]:
    """Load one YAML document, returning plain data and the positions of everything in it."""
    file = str(path)
    if text is None:
        text = Path(path).read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise ArchccError(Diagnostic(SourceLoc(file, 1, 1), "",
                                     f"spec nests deeper than {MAX_DEPTH} levels")) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ArchccError(Diagnostic(_loc(file, mark) if mark else SourceLoc(file), "",
                                     f"invalid YAML: {exc.problem or exc.context}",
                                     "check indentation and that every ':' has a space after it"
                                     )) from None
    converter = _Converter(file, text)
    data = converter.convert(node, ()) if node is not None else {}
    if converter.errors:
        raise ArchccError(converter.errors)
    return data, converter.map
