"""YAML with positions: every key and value keeps its file:line:col, duplicates are refused.

PyYAML's plain loader forgets where things came from and silently keeps the last of two
duplicate keys. Like torchgen's loader we compose the node tree ourselves and record a
:class:`SourceMap` beside plain Python data, so later stages can point at the exact line::

    data, where = load_yaml("specs/gpt2.yaml")
    where.key(("blocks", "Block", "layers", "attn"))   # SourceLoc('specs/gpt2.yaml', 14, 7)

Anchors and aliases are refused: they are the door to "billion laughs" blow-ups and a
spec gains nothing from them. So are tags other than YAML's plain types (``!!python/...``,
``!!binary``, ``!!set``, ``!custom``): a spec is data, never objects. Positions count lines by
``\n`` only, as editors, ``grep -n`` and the .arch parser do (PyYAML would also break lines
at U+2028, U+2029, U+0085 and a lone CR, and every later error would name the wrong line).
"""

from __future__ import annotations

import bisect
import re
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


class Lines:
    """Character index -> 1-based (line, column), counting lines by ``\n`` only."""

    def __init__(self, file: str, text: str):
        self.file, self.text = file, text
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.lines = text.split("\n")

    def loc(self, index: int) -> SourceLoc:
        index = min(max(index, 0), len(self.text))
        line = bisect.bisect_right(self.starts, index)
        col = index - self.starts[line - 1] + 1
        if line == 1 and self.text.startswith("\ufeff"):  # editors hide a byte order mark
            col = max(col - 1, 1)
        return SourceLoc(self.file, line, col)

    def mark(self, mark: yaml.Mark) -> SourceLoc:
        return self.loc(mark.index)


def _block_indent(lines: list[str], first_content_line: int) -> int:
    for line in lines[first_content_line:]:
        if line.strip():
            return len(line) - len(line.lstrip(" "))
    return 0


_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null")}
_COLLECTION_TAGS = {yaml.MappingNode: "tag:yaml.org,2002:map",
                    yaml.SequenceNode: "tag:yaml.org,2002:seq"}
MAX_NUMBER_TEXT = 40  # characters in a number, as in expressions: int() of 5000 digits is slow


def _tag_name(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


class _Converter:
    """Walks a composed node tree into plain data while filling a SourceMap."""

    def __init__(self, file: str, text: str):
        self.map = SourceMap(file)
        self.index = Lines(file, text)
        self.seen: set[int] = set()
        self.errors: list[Diagnostic] = []

    def _loc(self, node: yaml.Node) -> SourceLoc:
        return self.index.mark(node.start_mark)

    def convert(self, node: yaml.Node, path: SpecPath):
        if id(node) in self.seen:
            raise ArchccError(Diagnostic(self._loc(node), ".".join(path),
                                         "YAML anchors and aliases are not allowed in specs",
                                         "write the value out; specs are shared and must stay "
                                         "small and explicit"))
        self.seen.add(id(node))
        if len(path) > MAX_DEPTH:
            raise ArchccError(Diagnostic(self._loc(node), ".".join(path[:3]),
                                         f"spec nests deeper than {MAX_DEPTH} levels"))
        if len(self.seen) > MAX_NODES:
            raise ArchccError(Diagnostic(self._loc(node), ".".join(path),
                                         f"spec has more than {MAX_NODES} YAML nodes"))
        self._check_tag(node, path)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*path, str(i))) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _check_tag(self, node: yaml.Node, path: SpecPath) -> None:
        """Plain YAML types only: a tag such as ``!!python/object`` or ``!!binary`` is refused
        by name (an implicit one, like a date's timestamp, is left to validation)."""
        if isinstance(node, yaml.ScalarNode):
            implicit = _CONSTRUCTOR.resolve(yaml.ScalarNode, node.value, (True, False))
            allowed = node.tag in _PLAIN_TAGS or node.tag == implicit
        else:
            allowed = node.tag == _COLLECTION_TAGS[type(node)]
        if not allowed:
            raise ArchccError(Diagnostic(self._loc(node), ".".join(path),
                                         f"YAML tag '{_tag_name(node.tag)}' is not allowed "
                                         "in specs",
                                         "a spec holds plain values: strings, numbers, true/"
                                         "false, null, lists and mappings"))

    def _mapping(self, node: yaml.MappingNode, path: SpecPath) -> dict:
        out: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.errors.append(Diagnostic(self._loc(key_node), ".".join(path),
                                              "mapping keys must be names"))
                continue
            self._check_tag(key_node, path)
            key = self._scalar(key_node, path)
            if not isinstance(key, str | int):
                self.errors.append(Diagnostic(self._loc(key_node),
                                              ".".join(path), "mapping keys must be names"))
                continue
            key = str(key)
            here = (*path, key)
            if key in out:
                first = self.map.keys[here]
                self.errors.append(Diagnostic(
                    self._loc(key_node), ".".join(here),
                    f"duplicate key '{key}' (first defined at line {first.line})",
                    "YAML keeps only the last of duplicate keys; remove or rename one"))
                continue
            self.map.keys[here] = self._loc(key_node)
            out[key] = self.convert(value_node, here)
        return out

    def _scalar(self, node: yaml.ScalarNode, path: SpecPath):
        loc = self._loc(node)
        block = node.style in ("|", ">")
        if block:
            indent = _block_indent(self.index.lines, loc.line)
            self.map.values[path] = _Text(loc, True, indent)
        else:
            quoted = 1 if node.style in ("'", '"') else 0
            self.map.values[path] = _Text(SourceLoc(loc.file, loc.line, loc.col + quoted),
                                          False, 0)
        numeric = node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
        if numeric and len(node.value) > MAX_NUMBER_TEXT:
            raise ArchccError(Diagnostic(loc, ".".join(path), f"number is too long "
                                         f"({MAX_NUMBER_TEXT} characters at most)"))
        try:
            return yaml.SafeLoader.construct_object(_CONSTRUCTOR, node)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError):
            raise ArchccError(Diagnostic(loc, ".".join(path), f"'{node.value[:40]}' is not "
                                         f"a valid {_tag_name(node.tag)}")) from None


class _Constructor(yaml.SafeLoader):
    def __init__(self):  # a constructor only; it never reads a stream
        yaml.constructor.SafeConstructor.__init__(self)


_CONSTRUCTOR = _Constructor()


_BRACKETS = re.compile(r"[\[\]{}]")
_HIDDEN_BREAK = re.compile("[\x85\u2028\u2029]|\r(?!\n)")  # YAML 1.1 line breaks besides \n
_DEPTH = {yaml.BlockMappingStartToken: 1, yaml.BlockSequenceStartToken: 1,
          yaml.FlowMappingStartToken: 1, yaml.FlowSequenceStartToken: 1, yaml.BlockEndToken: -1,
          yaml.FlowMappingEndToken: -1, yaml.FlowSequenceEndToken: -1}


def flow_too_deep(index: Lines, limit: int = MAX_DEPTH) -> SourceLoc | None:
    """Where ``[``/``{`` brackets first nest past ``limit`` (cheap: composing such a text
    recurses until Python's limit, and PyYAML's scanner is quadratic in flow depth). Brackets
    in strings count too; a spec would need dozens of unbalanced ones to be refused."""
    depth = 0
    for match in _BRACKETS.finditer(index.text):
        depth += 1 if match.group() in "[{" else -1
        if depth > limit:
            return index.loc(match.start())
    return None


def _block_too_deep(index: Lines) -> SourceLoc:
    """Where block nesting (``- - - - x``, deep indentation) passes MAX_DEPTH; used once
    composing has already failed, so the slow token scan runs on hostile input only."""
    depth = 0
    try:
        for token in yaml.scan(index.text, Loader=yaml.SafeLoader):
            depth += _DEPTH.get(type(token), 0)
            if depth > MAX_DEPTH:
                return index.mark(token.start_mark)
    except (yaml.YAMLError, RecursionError):
        pass
    return index.loc(0)


def _yaml_error(index: Lines, exc: yaml.YAMLError) -> ArchccError:
    """A PyYAML error at its place: syntax (a mark) or a character it refuses (an index)."""
    if isinstance(exc, yaml.reader.ReaderError):
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        return ArchccError(Diagnostic(index.loc(exc.position), "",
                                      f"character U+{ord(char):04X} is not allowed in YAML",
                                      "remove it; YAML text holds printable characters, tabs "
                                      "and line breaks (write others as escapes such as "
                                      "\\x0c inside double quotes)"))
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or exc
    hint = "check indentation and that every ':' has a space after it"
    breaks = [m.start() for m in _HIDDEN_BREAK.finditer(index.text, 0, mark.index if mark
                                                        else len(index.text))]
    if breaks:  # YAML ended a line where the reader sees none: say where
        at = index.loc(breaks[-1])
        char = index.text[breaks[-1]]
        hint = (f"line {at.line}, column {at.col} holds U+{ord(char):04X}, which YAML reads "
                "as a line break though editors show none; remove it")
    return ArchccError(Diagnostic(index.mark(mark) if mark else index.loc(0), "",
                                  f"invalid YAML: {problem}", hint))


def load_yaml(path: str | Path, text: str | None = None) -> tuple[object, SourceMap]:
    """Load one YAML document, returning plain data and the positions of everything in it."""
    file = str(path)
    if text is None:
        text = Path(path).read_text(encoding="utf-8")
    index = Lines(file, text)
    deep = flow_too_deep(index)
    if deep is not None:
        raise ArchccError(Diagnostic(deep, "", f"spec nests deeper than {MAX_DEPTH} levels"))
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise ArchccError(Diagnostic(_block_too_deep(index), "",
                                     f"spec nests deeper than {MAX_DEPTH} levels")) from None
    except yaml.YAMLError as exc:
        raise _yaml_error(index, exc) from None
    converter = _Converter(file, text)
    data = converter.convert(node, ()) if node is not None else {}
    if converter.errors:
        raise ArchccError(converter.errors)
    return data, converter.map
