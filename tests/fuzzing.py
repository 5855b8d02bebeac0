"""Seeded mutation fuzzing of the bundled specs (YAML and .arch) and of `archcc import hf`
configs: mutants, runner, judge, table.

Shared by tests/test_fuzz.py (the CI-sized run) and benchmarks/fuzz_report.py (the table for
any N and seed); it is test code, so it lives here and not in the package. A mutant is one
hostile edit of a bundled spec's (or a tiny config.json's) bytes; each is compiled in-process
with :func:`archcc.api.compile_spec` (or imported with ``import_hf``) under a time limit and
classified:

- ``located``: an ArchccError whose every diagnostic names a file and a line;
- ``misplaced``: located, but not on the line the mutation broke (checked where that line is
  certain: an unknown function, a typo below an odd comment, a bad byte, a repeated key);
- ``unlocated``: an ArchccError with a diagnostic that has no line;
- ``internal``: any other exception (the CLI's "archcc: internal error");
- ``hang``: longer than :data:`HANG_SECONDS`;
- ``right`` / ``wrong``: accepted, and judged. A mutation that changes what the spec means
  must change the generated code, or be refused: accepted with the same code (docstrings and
  comments aside) is a silent misconfiguration. Numbers outside their domain (a negative
  dropout, a NaN, a zero-width layer) and edits that must be refused (an unknown keyword, a
  second input to a linear) are wrong when accepted. Neutral edits (CRLF, a BOM, comments)
  must be accepted with the same code; refusing one is ``wrong`` too.

Everything is a function of (spec, N, seed): rerunning gives the same mutants and outcomes,
so a failure seen in CI replays with ``python benchmarks/fuzz_report.py --seed S --n N``.
"""

from __future__ import annotations

import ast
import json
import math
import random
import re
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
HANG_SECONDS = 5.0
OUTCOMES = ("located", "misplaced", "unlocated", "internal", "hang", "right", "wrong")
FAILURES = ("misplaced", "unlocated", "internal", "hang", "wrong")


@dataclass(frozen=True)
class Mutant:
    """One edit of one spec form. ``id`` names it stably (no offsets into random state), so an
    expected-failure list can refer to it by pattern."""

    base: str  # "gpt2.yaml" or "gpt2.arch": the file name it is compiled under
    kind: str  # the operator: delete_key, swap_type, number, forward_unknown_fn, ...
    where: str  # spec path or line it touched
    change: str  # what it wrote there
    data: bytes = field(repr=False, compare=False)
    neutral: bool = False  # must be accepted with unchanged code (CRLF, comments, a BOM)
    value: tuple[str, str, float] | None = None  # (key, old text, new number): judged by domain
    param: bool = False  # value is a param's (a size rule cannot tell how it is used)
    line: int = 0  # the line an error must name (0: not checked); implies must_refuse
    must_refuse: bool = False  # accepting it is wrong (an unknown keyword, a wrong arity)

    @property
    def id(self) -> str:
        return f"{self.base}|{self.kind}|{self.where}|{self.change}"


@dataclass(frozen=True)
class Result:
    mutant: Mutant
    outcome: str  # one of OUTCOMES
    detail: str = ""
    seconds: float = 0.0


# ------------------------------------------------------------------------------ spec forms


def spec_forms(names: list[str] | None = None) -> list[tuple[str, bytes]]:
    """(file name, bytes) of every bundled spec and its .arch form, in a stable order."""
    from archcc.parser import load_spec
    from archcc.parser.writer import to_arch

    forms = []
    for path in sorted(SPECS.glob("*.yaml")):
        if names and path.stem not in names:
            continue
        forms.append((path.name, path.read_bytes()))
        arch = to_arch(load_spec(path).spec)
        forms.append((f"{path.stem}.arch", arch.encode("utf-8")))
    return forms


# --------------------------------------------------------------------------- hostile values

# text written into YAML (flow style, valid in any position) by type
YAML_TYPES = {"str": '"fuzz"', "int": "7", "list": "[7, 8]", "dict": "{fuzz: 7}",
              "bool": "true", "null": "null", "float": "7.5", "empty": '""'}
ARCH_TYPES = {"str": '"fuzz"', "int": "7", "list": "[7, 8]", "bool": "true", "null": "null",
              "float": "7.5", "name": "fuzz_name", "call": "fuzz(1)"}
# (text, value) of numbers: negative, zero, fractional, huge, tiny, NaN, infinite
YAML_NUMBERS = [("-1", -1), ("0", 0), ("-0.5", -0.5), ("7.5", 7.5), ("1.0e+308", 1e308),
                (".nan", math.nan), (".inf", math.inf), ("-.inf", -math.inf),
                ("2147483648", 2**31), ("1000000000000", 10**12),
                ("99999999999999999999999999999999999999", 10**38 - 1),
                ("123456789012345678901234567890123456789012345678901234567890", 1.2e59),
                ("0x7fffffffffffffff", 2**63 - 1), ("1.0e-320", 1e-320)]
ARCH_NUMBERS = [("-1", -1), ("0", 0), ("-0.5", -0.5), ("7.5", 7.5), ("1e999", math.inf),
                ("2147483648", 2**31), ("1000000000000", 10**12),
                ("99999999999999999999999999999999999999", 10**38 - 1), ("1e-320", 1e-320)]
EXPRESSIONS = ["n_embd // 0", "sqrt(-1)", "9 ** 9 ** 9", "((10 ** 64) ** 64) ** 64",
               "fuzz_unknown * 2", "4 *", "log(0)", "-(-(-(-(-(-1)))))", "1 / 3",
               "(" * 300 + "1" + ")" * 300, "- " * 400 + "1", "int(7.5) % 0"]
CHARS = ["\x00", "\r", "\x0c", "\x0b", "\x1b", "\x7f", "\u2028", "\u2029", "\x85", "\ufeff",
         "\u200f", "\u202e", "\u200b", "\U0001f600", "\u00e9"]
BAD_UTF8 = [b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xe2\x82"]
TAGS = ['!!python/object/apply:os.system ["true"]', "!!python/name:os.system",
        "!!python/object:builtins.object {}", "!!binary aGVsbG8=", "!!timestamp 2001-12-14",
        "!!set {a: null}", "!!omap [{a: 1}]", "!custom 7", "!!float 7", "!!str 7",
        "!!int 7", "!!bool yes"]
COMMENT_CHARS = ["\x0c", "\u2028", "\u2029", "\x85", "\u202e", "\u200f", "\x00", "\ufeff"]
BOM = "\ufeff"


def _line_of(text: str, index: int) -> int:
    """1-based line of a character index, counting '\\n' only (as editors and lark do)."""
    return text.count("\n", 0, index) + 1


# -------------------------------------------------------------------------- YAML structure


@dataclass
class _Entry:
    path: tuple[str, ...]
    key: yaml.Node
    value: yaml.Node
    flow: bool  # inside a flow mapping ({a: 1})


def _entries(text: str) -> list[_Entry]:
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    out: list[_Entry] = []

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                here = (*path, str(key.value))
                out.append(_Entry(here, key, value, bool(node.flow_style)))
                walk(value, here)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, str(i)))

    walk(root, ())
    return out


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path)


def _scalar_number(text: str) -> float | None:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class _Yaml:
    """Mutation operators over one YAML spec's text."""

    def __init__(self, name: str, text: str):
        self.name, self.text = name, text
        self.entries = _entries(text)
        self.lines = text.split("\n")
        self.single_input: set[str] = set()  # layer names called with one input

    def mutant(self, kind: str, where: str, change: str, text: str | bytes, **kw) -> Mutant:
        data = text if isinstance(text, bytes) else text.encode("utf-8")
        return Mutant(self.name, kind, where, change, data, **kw)

    def _replace(self, node: yaml.Node, new: str) -> str:
        return self.text[:node.start_mark.index] + new + self.text[node.end_mark.index:]

    def _value_end(self, entry: _Entry) -> int:
        """End of an entry's text: a value on the key's line runs to the line's end."""
        end = entry.value.end_mark.index
        if entry.flow or self.text[end - 1:end] == "\n" or end == len(self.text):
            return end
        newline = self.text.find("\n", end)
        return len(self.text) if newline < 0 else newline + 1

    # ---------------------------------------------------------------------- operators
    def delete_key(self, rng: random.Random) -> Mutant:
        entry = rng.choice(self.entries)
        if entry.flow:
            start, end = entry.key.start_mark.index, entry.value.end_mark.index
            rest = self.text[end:]
            skip = len(rest) - len(rest.lstrip(" ,")) if rest.lstrip(" ").startswith(",") else 0
            text = self.text[:start] + self.text[end + skip:]
        else:
            start = self.text.rfind("\n", 0, entry.key.start_mark.index) + 1
            text = self.text[:start] + self.text[self._value_end(entry):]
        return self.mutant("delete_key", _dotted(entry.path), "deleted", text)

    def swap_type(self, rng: random.Random) -> Mutant:
        entry = rng.choice(self.entries)
        kind = rng.choice(sorted(YAML_TYPES))
        new = YAML_TYPES[kind]
        scalar = isinstance(entry.value, yaml.ScalarNode)
        if not entry.flow and scalar and entry.value.style in ("|", ">"):
            new += "\n"
        numeric = scalar and kind in ("int", "float") \
            and _scalar_number(entry.value.value) is not None
        return self.mutant("swap_type", _dotted(entry.path), kind,
                           self._replace(entry.value, new),
                           value=(entry.path[-1], entry.value.value, float(new))
                           if numeric else None, param=entry.path[0] == "params")

    def number(self, rng: random.Random) -> Mutant | None:
        scalars = [e for e in self.entries if isinstance(e.value, yaml.ScalarNode)
                   and e.value.style is None and _scalar_number(e.value.value) is not None]
        if not scalars:
            return None
        entry = rng.choice(scalars)
        text, value = rng.choice(YAML_NUMBERS)
        return self.mutant("number", _dotted(entry.path), text, self._replace(entry.value, text),
                           value=(entry.path[-1], entry.value.value, float(value)),
                           param=entry.path[0] == "params")

    def expression(self, rng: random.Random) -> Mutant | None:
        exprs = [e for e in self.entries if isinstance(e.value, yaml.ScalarNode)
                 and e.value.style is None and re.search(r"[a-z_]\w*", e.value.value)
                 and re.search(r"[*/+\-]|^\w+$", e.value.value)
                 and e.path[0] in ("params", "model", "blocks", "inputs")
                 and e.path[-1] not in ("op", "repeat", "act", "dtype", "tie", "forward")]
        if not exprs:
            return None
        entry = rng.choice(exprs)
        new = rng.choice(EXPRESSIONS).replace("n_embd", entry.value.value.split()[0])
        return self.mutant("expression", _dotted(entry.path), new[:40],
                           self._replace(entry.value, f'"{new}"'))

    def char(self, rng: random.Random) -> Mutant:
        char = rng.choice(CHARS)
        entry = rng.choice(self.entries)
        node = rng.choice([entry.key, entry.value])
        start, end = node.start_mark.index, max(node.end_mark.index, node.start_mark.index + 1)
        at = rng.randint(start, end)
        text = self.text[:at] + char + self.text[at:]
        return self.mutant("char", _dotted(entry.path), repr(char), text)

    def bad_utf8(self, rng: random.Random) -> Mutant:
        raw = self.text.encode("utf-8")
        at, bad = rng.randrange(len(raw)), rng.choice(BAD_UTF8)
        line = raw.count(b"\n", 0, at) + 1
        return self.mutant("bad_utf8", f"line {line}", repr(bad), raw[:at] + bad + raw[at:],
                           line=line)

    def truncate(self, rng: random.Random) -> Mutant:
        raw = self.text.encode("utf-8")
        at = rng.randrange(len(raw))
        return self.mutant("truncate", f"byte {at}", "cut", raw[:at])

    def duplicate_key(self, rng: random.Random) -> Mutant:
        entry = rng.choice(self.entries)
        if entry.flow:
            end = entry.value.end_mark.index
            copy = self.text[entry.key.start_mark.index:end]
            text = self.text[:end] + ", " + copy + self.text[end:]
        else:
            start = self.text.rfind("\n", 0, entry.key.start_mark.index) + 1
            end = self._value_end(entry)
            copy = self.text[start:end]
            text = self.text[:end] + (copy if copy.endswith("\n") else "\n" + copy) \
                + self.text[end:]
        return self.mutant("duplicate_key", _dotted(entry.path), "twice", text)

    def tag(self, rng: random.Random) -> Mutant:
        scalars = [e for e in self.entries if isinstance(e.value, yaml.ScalarNode)
                   and e.value.style is None]
        entry, tag = rng.choice(scalars), rng.choice(TAGS)
        return self.mutant("tag", _dotted(entry.path), tag.split()[0],
                           self._replace(entry.value, tag))

    def alias(self, rng: random.Random) -> Mutant:
        scalars = [e for e in self.entries if isinstance(e.value, yaml.ScalarNode)
                   and e.value.style is None]
        first, second = sorted(rng.sample(scalars, 2), key=lambda e: e.value.start_mark.index)
        style = rng.choice(["alias", "bomb", "unknown", "anchor"])
        if style == "bomb":
            rows = ["fuzz0: &a0 [x, x, x, x, x, x, x, x, x]"]
            rows += [f"fuzz{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
            text = self.text + "\n".join(rows) + "\n"
        elif style == "unknown":
            text = self._replace(second.value, "*fuzz_nowhere")
        else:
            a, b = first.value, second.value
            tail = "" if style == "anchor" else "*fz"
            text = (self.text[:a.start_mark.index] + "&fz " + self.text[a.start_mark.index:
                                                                         b.start_mark.index]
                    + (tail or self.text[b.start_mark.index:b.end_mark.index])
                    + self.text[b.end_mark.index:])
        return self.mutant("alias", _dotted(second.path), style, text,
                           neutral=style == "anchor")

    def deep(self, rng: random.Random) -> Mutant:
        entry = rng.choice(self.entries)
        depth = rng.choice([40, 300, 3000])
        style = rng.choice(["list", "dict", "block"])
        if style == "list":
            new = "[" * depth + "1" + "]" * depth
        elif style == "dict":
            new = "{a: " * depth + "1" + "}" * depth
        else:
            indent = " " * (entry.key.start_mark.column + 2)
            new = "".join(f"\n{indent}{'  ' * i}a:" for i in range(min(depth, 200))) + " 1\n"
        if entry.flow and style == "block":
            new = "[" * depth + "]" * depth
        if not entry.flow and isinstance(entry.value, yaml.ScalarNode) \
                and entry.value.style in ("|", ">"):
            new += "\n"
        return self.mutant("deep", _dotted(entry.path), f"{style}x{depth}",
                           self._replace(entry.value, new))

    def neutral(self, rng: random.Random) -> Mutant:
        style = rng.choice(["crlf", "bom", "comment", "trailing_space"])
        if style == "crlf":
            text = self.text.replace("\n", "\r\n")
        elif style == "bom":
            text = BOM + self.text
        elif style == "trailing_space":
            text = "\n".join(line + "  " if line.strip() else line for line in self.lines)
        else:  # a comment line before a top-level key, in printable Unicode
            tops = [i for i, line in enumerate(self.lines) if line[:1].isalpha()]
            at = rng.choice(tops)
            comment = "# fuzz \u00e9\u200f\u202e\U0001f600 comment"
            text = "\n".join([*self.lines[:at], comment, *self.lines[at:]])
        return self.mutant("neutral", style, style, text, neutral=True)

    # --------------------------------------------------------------------- forward code
    def forward_lines(self) -> list[int]:
        """0-based file lines inside forward blocks that hold a statement."""
        lines = []
        for entry in self.entries:
            if entry.path[-1] == "forward" and isinstance(entry.value, yaml.ScalarNode) \
                    and entry.value.style == "|":
                first = entry.value.start_mark.line + 1
                last = _line_of(self.text, entry.value.end_mark.index) - 1
                lines += [i for i in range(first, last) if _statement(self.lines[i])]
        return lines


def _statement(line: str) -> bool:
    code = line.split("#")[0].strip()
    return bool(code) and (code.startswith("return ") or "=" in code) and code != "}"


# ----------------------------------------------------------------------------- .arch form


_ARG = re.compile(r"\b([A-Za-z_]\w*) = ")


class _Arch:
    """Mutation operators over one .arch spec's text."""

    def __init__(self, name: str, text: str):
        self.name, self.text = name, text
        self.lines = text.split("\n")
        self.single_input: set[str] = set()

    mutant = _Yaml.mutant

    def _values(self) -> list[tuple[str, int, int]]:
        """(key, start, end) of every ``key = value`` outside forward blocks."""
        out = []
        forward = set(self.forward_lines())
        for match in _ARG.finditer(self.text):
            start = match.end()
            if _line_of(self.text, start) - 1 in forward:
                continue
            depth, end, in_string = 0, start, False
            while end < len(self.text):
                char = self.text[end]
                if char == '"':
                    in_string = not in_string
                elif in_string:
                    pass
                elif char in "([":
                    depth += 1
                elif char in ")]" and depth:
                    depth -= 1
                elif char in ",)\n" and not depth:
                    break
                end += 1
            out.append((match.group(1), start, end))
        return out

    def _at(self, key: str, start: int) -> str:
        return f"{key}@{_line_of(self.text, start)}"

    def _in_params(self, index: int) -> bool:
        """Whether a character lies in the ``params { ... }`` section."""
        opened = self.text.rfind("\nparams {", 0, index)
        return opened >= 0 and self.text.find("\n}", opened, index) < 0

    def swap_type(self, rng: random.Random) -> Mutant:
        key, start, end = rng.choice(self._values())
        kind = rng.choice(sorted(ARCH_TYPES))
        text = self.text[:start] + ARCH_TYPES[kind] + self.text[end:]
        old = self.text[start:end]
        numeric = kind in ("int", "float") and re.fullmatch(r"-?[\d.eE+-]+", old) is not None
        return self.mutant("swap_type", self._at(key, start), kind, text,
                           value=(key, old, float(ARCH_TYPES[kind])) if numeric else None,
                           param=self._in_params(start))

    def number(self, rng: random.Random) -> Mutant | None:
        numeric = [(k, s, e) for k, s, e in self._values()
                   if re.fullmatch(r"-?\d+(\.\d*)?([eE][+-]?\d+)?", self.text[s:e])]
        if not numeric:
            return None
        key, start, end = rng.choice(numeric)
        new, value = rng.choice(ARCH_NUMBERS)
        return self.mutant("number", self._at(key, start), new,
                           self.text[:start] + new + self.text[end:],
                           value=(key, self.text[start:end], float(value)),
                           param=self._in_params(start))

    def expression(self, rng: random.Random) -> Mutant | None:
        exprs = [(k, s, e) for k, s, e in self._values()
                 if re.match(r"[a-z_]", self.text[s:e]) and "(" not in self.text[s:e]
                 and k not in ("tie", "act", "repeat", "fn")]
        if not exprs:
            return None
        key, start, end = rng.choice(exprs)
        new = rng.choice(EXPRESSIONS).replace("n_embd", self.text[start:end].split()[0])
        return self.mutant("expression", self._at(key, start), new[:40],
                           self.text[:start] + new + self.text[end:])

    def delete_key(self, rng: random.Random) -> Mutant:
        """Delete one ``key = value`` argument, or one whole line of a section."""
        if rng.random() < 0.5:
            key, start, end = rng.choice(self._values())
            begin = self.text.rfind(key, 0, start)
            before = self.text[:begin].rstrip(" ")
            if before.endswith(","):
                begin, stop = len(before) - 1, end
            else:
                stop = end + 2 if self.text[end:end + 2] == ", " else end
            return self.mutant("delete_key", self._at(key, start), "deleted",
                               self.text[:begin] + self.text[stop:])
        forward = set(self.forward_lines())  # forward edits know which deletions are no-ops
        at = rng.choice([i for i, line in enumerate(self.lines)
                         if line.strip() and i not in forward])
        return self.mutant("delete_line", f"line {at + 1}", "deleted",
                           "\n".join(self.lines[:at] + self.lines[at + 1:]))

    def duplicate_key(self, rng: random.Random) -> Mutant:
        if rng.random() < 0.5:
            key, start, end = rng.choice(self._values())
            begin = self.text.rfind(key, 0, start)
            copy = self.text[begin:end]
            return self.mutant("duplicate_key", self._at(key, start), "twice",
                               self.text[:end] + ", " + copy + self.text[end:])
        forward = set(self.forward_lines())
        candidates = [i for i, line in enumerate(self.lines) if i not in forward
                      and _ARG.match(line.strip()) and not line.rstrip().endswith("{")]
        at = rng.choice(candidates)
        return self.mutant("duplicate_line", f"line {at + 1}", "twice",
                           "\n".join(self.lines[:at + 1] + self.lines[at:]))

    def char(self, rng: random.Random) -> Mutant:
        char = rng.choice(CHARS)
        at = rng.randrange(len(self.text))
        return self.mutant("char", f"line {_line_of(self.text, at)}", repr(char),
                           self.text[:at] + char + self.text[at:])

    bad_utf8, truncate = _Yaml.bad_utf8, _Yaml.truncate

    def tag(self, rng: random.Random) -> Mutant:
        """YAML syntax where .arch expects its own: a tag, an anchor, a flow mapping."""
        key, start, end = rng.choice(self._values())
        new = rng.choice(["!!python/name:os.system", "&a 1", "{a: 1}", "*a", "`ls`", "$x"])
        return self.mutant("tag", self._at(key, start), new,
                           self.text[:start] + new + self.text[end:])

    alias = tag

    def deep(self, rng: random.Random) -> Mutant:
        key, start, end = rng.choice(self._values())
        depth = rng.choice([40, 300, 3000])
        new = rng.choice(["[" * depth + "1" + "]" * depth, "-" * depth + "1",
                          "f(" * depth + "1" + ")" * depth])
        return self.mutant("deep", self._at(key, start), f"{new[:2]}x{depth}",
                           self.text[:start] + new + self.text[end:])

    def neutral(self, rng: random.Random) -> Mutant:
        style = rng.choice(["crlf", "bom", "comment", "trailing_space"])
        if style == "crlf":
            text = self.text.replace("\n", "\r\n")
        elif style == "bom":
            text = BOM + self.text
        elif style == "trailing_space":
            text = "\n".join(line + "  " if line.strip() else line for line in self.lines)
        else:  # a comment holding a character editors and Python may see as a line break
            char = rng.choice(COMMENT_CHARS)
            at = rng.choice([i for i, line in enumerate(self.lines) if line.strip()][1:])
            indent = self.lines[at][:len(self.lines[at]) - len(self.lines[at].lstrip())]
            comment = f"{indent}# fuzz{char}comment {char} end"
            text = "\n".join([*self.lines[:at], comment, *self.lines[at:]])
            style = f"comment{char!r}"
        return self.mutant("neutral", style, style, text, neutral=True)

    def forward_lines(self) -> list[int]:
        lines, inside = [], False
        for i, line in enumerate(self.lines):
            if line.strip() == "forward {":
                inside = True
            elif inside and line.strip() == "}":
                inside = False
            elif inside and _statement(line):
                lines.append(i)
        return lines


# ---------------------------------------------------------------------------- forward code


_CALL = re.compile(r"\b([A-Za-z_]\w*)\(")


def _close(line: str, open_at: int) -> int:
    """Index of the ')' matching the '(' at ``open_at``."""
    depth = 0
    for i in range(open_at, len(line)):
        depth += {"(": 1, ")": -1}.get(line[i], 0)
        if depth == 0:
            return i
    return len(line)


def _forward(form, rng: random.Random) -> Mutant | None:
    """Edit forward wiring: delete, duplicate or swap lines, rename calls, break arity."""
    rows = form.forward_lines()
    if not rows:
        return None
    at = rng.choice(rows)
    line, lines = form.lines[at], form.lines
    code = line.split("#")[0]
    calls = list(_CALL.finditer(code))
    ops = ["delete", "duplicate", "swap_lines", "cr"]
    if calls:
        ops += ["swap_names", "unknown_fn", "arity", "keyword"]
    op = rng.choice(ops)
    where = f"line {at + 1}"

    def edit(new: str, **kw) -> Mutant:
        return form.mutant(f"forward_{op}", where, new.strip()[:60],
                           "\n".join([*lines[:at], new, *lines[at + 1:]]), **kw)

    target = code.split("=")[0].strip() if "=" in code and not code.strip().startswith(
        "return") else None
    if op == "delete":
        if re.fullmatch(r"\s*return \w+\s*", code):
            return None  # returning the last assigned name is the default: an equivalent edit
        return form.mutant("forward_delete", where, "deleted", "\n".join(lines[:at] +
                                                                         lines[at + 1:]))
    if op == "duplicate":
        rhs = code.split("=", 1)[1] if target else ""
        if not target or not set(re.findall(r"\w+", target)) & set(re.findall(r"\w+", rhs)):
            return None  # re-running an assignment that does not read its target changes nothing
        return form.mutant("forward_duplicate", where, "twice",
                           "\n".join(lines[:at + 1] + lines[at:]))
    if op == "swap_lines":
        nxt = at + 1
        if nxt not in rows or not target or target not in lines[nxt]:
            return None  # independent statements may be swapped without changing anything
        swapped = [*lines[:at], lines[nxt], line, *lines[nxt + 1:]]
        return form.mutant("forward_swap_lines", where, "swapped", "\n".join(swapped))
    if op == "cr":
        indent = len(line) - len(line.lstrip())
        cut = rng.randint(indent + 1, max(indent + 1, len(code.rstrip()) - 1))
        return edit(line[:cut] + "\r" + line[cut:])
    call = rng.choice(calls)
    name, open_at = call.group(1), call.end() - 1
    close = _close(line, open_at)
    if op == "swap_names":
        others = sorted({m.group(1) for r in rows for m in _CALL.finditer(lines[r])} - {name})
        if not others:
            return None
        return edit(line[:call.start()] + rng.choice(others) + line[call.end() - 1:])
    if op == "unknown_fn":
        return edit(line[:call.start()] + "frobnicate" + line[call.end() - 1:], line=at + 1)
    if op == "arity":
        inner = line[open_at + 1:close]
        first = inner.split(",")[0].strip()
        new = line[:open_at + 1] + line[close:] if rng.random() < 0.5 or not first \
            else line[:close] + f", {first}" + line[close:]
        return edit(new, must_refuse=name in form.single_input)
    return edit(line[:close] + ", bogus=1" + line[close:], must_refuse=True)  # keyword


def _odd_comment_then_typo(form, rng: random.Random) -> Mutant | None:
    """A comment holding a line-break-like character, then a typo below it: the error must
    still name the typo's own line (it was off after a form feed or U+2028)."""
    rows = form.forward_lines()
    calls = [r for r in rows if _CALL.search(form.lines[r].split("#")[0])]
    if not calls:
        return None
    at = rng.choice(calls)
    char = rng.choice(["\u200f", "\u202e"] if isinstance(form, _Yaml) else COMMENT_CHARS)
    lines = list(form.lines)
    typo = _CALL.search(lines[at])
    lines[at] = lines[at][:typo.start()] + "frobnicate" + lines[at][typo.end() - 1:]
    indent = lines[at][:len(lines[at]) - len(lines[at].lstrip())]
    lines.insert(at, f"{indent}# before{char}the typo")
    return form.mutant("comment_then_typo", f"line {at + 2}", repr(char), "\n".join(lines),
                       line=at + 2)


# ------------------------------------------------------------------------------- mutants

# operator -> weight: structure and values dominate, every hostile family appears
OPERATORS = {"delete_key": 3, "swap_type": 4, "number": 4, "expression": 2, "char": 3,
             "bad_utf8": 1, "truncate": 2, "duplicate_key": 2, "tag": 2, "alias": 1, "deep": 1,
             "neutral": 2, "forward": 5, "comment_then_typo": 1}


# ops whose layers take exactly one positional input: another argument, or none, is a
# mistake the compiler must refuse (attention, recurrent and block calls take more)
SINGLE_INPUT_OPS = {"embedding", "linear", "layernorm", "rmsnorm", "dropout", "activation",
                    "ffn", "conv1d", "conv2d", "groupnorm"}


def _single_input_layers(stem: str) -> set[str]:
    """Layer names that are single-input layers wherever the bundled spec defines them."""
    data = yaml.safe_load((SPECS / f"{stem}.yaml").read_text(encoding="utf-8"))
    owners = [*(data.get("blocks") or {}).values(), data.get("model") or {}]
    ops: dict[str, set] = {}
    for owner in owners:
        for layer, body in (owner.get("layers") or {}).items():
            ops.setdefault(layer, set()).add(body.get("op") if isinstance(body, dict) else None)
    return {layer for layer, kinds in ops.items() if kinds <= SINGLE_INPUT_OPS}


def mutants(name: str, data: bytes, n: int, seed: int) -> list[Mutant]:
    """``n`` distinct mutants of one spec form, a pure function of (name, data, n, seed)."""
    rng = random.Random(f"{seed}:{name}")
    text = data.decode("utf-8")
    form = _Arch(name, text) if name.endswith(".arch") else _Yaml(name, text)
    form.single_input = _single_input_layers(name.rsplit(".", 1)[0])
    names, weights = zip(*OPERATORS.items(), strict=True)
    out: dict[str, Mutant] = {}
    for _ in range(n * 20):
        if len(out) == n:
            break
        op = rng.choices(names, weights)[0]
        if op == "forward":
            made = _forward(form, rng)
        elif op == "comment_then_typo":
            made = _odd_comment_then_typo(form, rng)
        else:
            made = getattr(form, op)(rng)
        if made is not None and made.data != data:
            out.setdefault(made.id, made)
    return list(out.values())


# ----------------------------------------------------------------------------- running


class Hang(BaseException):
    """Raised by the alarm: a BaseException, so no ``except Exception`` in archcc eats it."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block after ``seconds`` (SIGALRM; main thread, POSIX)."""
    def ring(signum, frame):
        raise Hang()

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _where_raised(exc: BaseException) -> str:
    """``archcc/x.py:123 in f < g < h``: the innermost archcc frame (where a fix may belong)
    and the functions that called it (stabler than line numbers, for DEFERRED patterns)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/archcc/" in f.filename]
    if not frames:
        return ""
    frame = frames[-1]
    callers = " < ".join(f"{Path(f.filename).stem}.{f.name}" for f in frames[-4:-1][::-1])
    where = f"{frame.filename[frame.filename.rindex('/archcc/') + 1:]}:{frame.lineno} in " \
            f"{frame.name}"
    return f"{where} < {callers}" if callers else where


def classify_error(exc: BaseException, file: str, line: int = 0) -> tuple[str, str]:
    """(outcome, detail) of an exception raised while compiling a mutant."""
    from archcc.diagnostics import ArchccError

    if isinstance(exc, Hang):
        return "hang", f"over {HANG_SECONDS:.0f} s"
    if not isinstance(exc, ArchccError):
        return "internal", f"{type(exc).__name__}: {str(exc)[:120]} [{_where_raised(exc)}]"
    first = exc.diagnostics[0]
    summary = f"{first.loc}: {first.message[:100]}"
    for diag in exc.diagnostics:
        if diag.loc is None or not diag.loc.file or diag.loc.line <= 0:
            return "unlocated", f"{diag.loc}: {diag.message[:100]}"
    if line and not any(d.loc.line == line and d.loc.file.endswith(file)
                        for d in exc.diagnostics):
        return "misplaced", f"expected line {line}, got {summary}"
    return "located", summary


def normalized(source: str) -> str:
    """Generated code without comments and docstrings: what an edit must change to matter."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            body[0] = ast.Pass()
    return ast.dump(tree)


def meaning(path: Path) -> object:
    """What a spec says, docs and checks aside: the validated spec with forward programs
    parsed (comments and layout gone) and ``doc``, ``budget`` and ``reference`` dropped."""
    from archcc.parser import load_spec
    from archcc.parser.expr import parse_program

    def strip(value, key=""):
        if key == "dims" and isinstance(value, dict):  # the spec's dims (a layer may have a
            # `dims` setting too); a dim's default size is 8 (codegen/views.py): T: 8 is no T
            return {k: v for k, v in value.items() if v != 8}
        if isinstance(value, dict):
            return {k: strip(v, k) for k, v in value.items()
                    if k not in ("doc", "budget", "reference")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        if key == "forward" and isinstance(value, str):
            return parse_program(value)
        return value

    dump = strip(load_spec(path).spec.model_dump(by_alias=True))
    ids = [name for name, spec in dump["inputs"].items() if spec.get("dtype") == "int64"]
    if dump.get("generate") and ids and dump["generate"].get("input") in (ids[-1], None):
        dump["generate"]["input"] = None  # the default is the last int64 input
    return dump


@dataclass
class Baseline:
    code: str
    meaning: object


PROBABILITY = re.compile(r"(^p$|dropout|pdrop|_prob$)")
EPSILON = re.compile(r"(eps|epsilon)")
MAY_BE_ZERO = re.compile(r"^(padding|padding_idx|pad|start|eos|shift|freq_shift)$|token_id$")


def domain_error(key: str, old: str, new: float, sizes: bool = True) -> str | None:
    """Why ``new`` cannot be a value of ``key`` (whose old value was ``old``), or None.

    ``sizes``: an integer that was positive must stay a positive integer within 2**31 (an op
    field; a param may feed an expression such as ``max_position_embeddings + 2``)."""
    if not math.isfinite(new):
        return f"{key} = {new} is not a finite number"
    if PROBABILITY.search(key) and not 0 <= new <= 1:
        return f"{key} = {new} is not a probability"
    if EPSILON.search(key) and new < 0:
        return f"{key} = {new} is a negative epsilon"
    if not sizes or not re.fullmatch(r"\d+", old.strip()):
        return None  # only integer sizes have a domain here (a float's "2.0" is no size)
    if int(old) >= 1 and not MAY_BE_ZERO.search(key):
        if new <= 0 or not new.is_integer():
            return f"{key} = {new} where a positive integer size was"
        if new > 2**31:  # archcc's size limit (ir/params.py MAX_SIZE)
            return f"{key} = {new:.0f} is beyond any real size"
    return None


def judge(mutant: Mutant, base: Baseline, source: str, path: Path) -> tuple[str, str]:
    """(right|wrong, why) for an accepted mutant."""
    code = normalized(source)
    if mutant.neutral:
        return ("right", "") if code == base.code else ("wrong", "a neutral edit changed code")
    if mutant.line or mutant.must_refuse:
        return "wrong", f"accepted an edit that must be refused ({mutant.kind})"
    if mutant.value is not None:
        problem = domain_error(*mutant.value, sizes=not mutant.param)
        if problem:
            return "wrong", f"accepted: {problem}"
    if code == base.code and meaning(path) != base.meaning:
        return "wrong", f"silent misconfiguration: {mutant.where} changed, the code did not"
    return "right", ""


def baseline(folder: Path, name: str, data: bytes) -> Baseline:
    from archcc.api import compile_spec

    path = folder / name
    path.write_bytes(data)
    return Baseline(normalized(compile_spec(path).source), meaning(path))


def run_one(mutant: Mutant, folder: Path, base: Baseline) -> Result:
    """Compile one mutant from ``folder/<base name>`` and classify it."""
    from archcc.api import compile_spec

    path = folder / mutant.base
    path.write_bytes(mutant.data)
    start = time.perf_counter()
    try:
        with time_limit(HANG_SECONDS):
            source = compile_spec(path).source
            outcome, detail = judge(mutant, base, source, path)
    except (Exception, Hang) as exc:  # noqa: BLE001 - classifying every failure is the point
        outcome, detail = classify_error(exc, mutant.base, mutant.line)
        if mutant.neutral and outcome == "located":
            outcome, detail = "wrong", f"a neutral edit was refused: {detail}"
    seconds = time.perf_counter() - start
    if seconds > HANG_SECONDS and outcome != "hang":
        outcome, detail = "hang", f"{seconds:.1f} s"
    return Result(mutant, outcome, detail, seconds)


def fuzz_specs(folder: Path, n: int, seed: int, names: list[str] | None = None,
               progress: Callable[[Result], None] | None = None) -> list[Result]:
    """Fuzz every bundled spec form with ``n`` mutants each; returns every result."""
    results = []
    for name, data in spec_forms(names):
        base = baseline(folder, name, data)
        for mutant in mutants(name, data, n, seed):
            result = run_one(mutant, folder, base)
            results.append(result)
            if progress:
                progress(result)
    return results


# ------------------------------------------------------------------------------- report


def table(results: list[Result], group: Callable[[Mutant], str] | None = None) -> str:
    """Per spec: tried / located / misplaced / unlocated / internal / hang / accepted
    (right / wrong), with a total row."""
    group = group or (lambda m: m.base)
    rows: dict[str, dict[str, int]] = {}
    for result in results:
        row = rows.setdefault(group(result.mutant), dict.fromkeys(OUTCOMES, 0))
        row[result.outcome] += 1
    rows["total"] = {k: sum(r[k] for r in rows.values()) for k in OUTCOMES}
    head = ("spec", "tried", "located", "misplaced", "unlocated", "internal", "hang",
            "accepted (right/wrong)")
    lines = [f"{head[0]:<26}" + "".join(f"{h:>10}" for h in head[1:7]) + f"  {head[7]}"]
    for name, row in rows.items():
        accepted = row["right"] + row["wrong"]
        lines.append(f"{name:<26}{sum(row.values()):>10}" + "".join(
            f"{row[k]:>10}" for k in OUTCOMES[:5]) + f"  {accepted} ({row['right']}/"
            f"{row['wrong']})")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------- archcc import hf

# tiny configs of every family; values differ from HF's defaults, so a deleted key must
# change the spec, except those in DEFAULTED (the family spec builds only that value)
HF_CONFIGS: dict[str, dict] = {
    "gpt2": {"model_type": "gpt2", "vocab_size": 101, "n_positions": 32, "n_embd": 64,
             "n_head": 4, "n_layer": 2, "layer_norm_epsilon": 1e-6, "resid_pdrop": 0.2,
             "embd_pdrop": 0.2, "attn_pdrop": 0.2, "activation_function": "gelu_new",
             "eos_token_id": 100, "pad_token_id": 3},
    "bert": {"model_type": "bert", "vocab_size": 99, "hidden_size": 32,
             "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
             "max_position_embeddings": 40, "type_vocab_size": 3, "layer_norm_eps": 1e-6,
             "hidden_dropout_prob": 0.2, "attention_probs_dropout_prob": 0.2,
             "hidden_act": "gelu"},
    "roberta": {"model_type": "roberta", "vocab_size": 99, "hidden_size": 32,
                "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
                "max_position_embeddings": 40, "type_vocab_size": 3, "layer_norm_eps": 1e-6,
                "hidden_dropout_prob": 0.2, "attention_probs_dropout_prob": 0.2,
                "pad_token_id": 3},
    "distilbert": {"model_type": "distilbert", "vocab_size": 99, "dim": 32, "n_layers": 2,
                   "n_heads": 4, "hidden_dim": 64, "max_position_embeddings": 40,
                   "dropout": 0.2, "attention_dropout": 0.2, "pad_token_id": 3},
    "t5": {"model_type": "t5", "vocab_size": 99, "d_model": 32, "d_kv": 8, "d_ff": 64,
           "num_layers": 2, "num_decoder_layers": 3, "num_heads": 4,
           "relative_attention_num_buckets": 8, "relative_attention_max_distance": 20,
           "dropout_rate": 0.2, "layer_norm_epsilon": 1e-5, "feed_forward_proj": "relu",
           "pad_token_id": 2, "eos_token_id": 5, "decoder_start_token_id": 4},
    "bart": {"model_type": "bart", "vocab_size": 99, "max_position_embeddings": 40,
             "d_model": 32, "encoder_layers": 2, "decoder_layers": 3,
             "encoder_attention_heads": 4, "decoder_attention_heads": 2,
             "encoder_ffn_dim": 64, "decoder_ffn_dim": 48, "dropout": 0.2,
             "attention_dropout": 0.1, "activation_dropout": 0.1, "scale_embedding": True,
             "pad_token_id": 3},
    "vit": {"model_type": "vit", "image_size": 32, "patch_size": 8, "num_channels": 1,
            "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 64, "layer_norm_eps": 1e-6, "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1, "id2label": {"0": "a", "1": "b", "2": "c"}},
    "clip": {"model_type": "clip", "projection_dim": 16, "logit_scale_init_value": 2.0,
             "text_config": {"vocab_size": 99, "max_position_embeddings": 20,
                             "hidden_size": 32, "intermediate_size": 64,
                             "num_hidden_layers": 2, "num_attention_heads": 4,
                             "layer_norm_eps": 1e-6, "attention_dropout": 0.1,
                             "eos_token_id": 98},
             "vision_config": {"image_size": 32, "patch_size": 8, "num_channels": 1,
                               "hidden_size": 48, "intermediate_size": 96,
                               "num_hidden_layers": 2, "num_attention_heads": 4,
                               "layer_norm_eps": 1e-6, "attention_dropout": 0.1}},
    "llama": {"model_type": "llama", "vocab_size": 101, "hidden_size": 32,
              "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 5000.0,
              "initializer_range": 0.05, "tie_word_embeddings": True},
    "mixtral": {"model_type": "mixtral", "vocab_size": 101, "hidden_size": 32,
                "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 2, "num_local_experts": 4, "num_experts_per_tok": 1,
                "rms_norm_eps": 1e-6, "rope_theta": 5000.0, "initializer_range": 0.05,
                "router_aux_loss_coef": 0.05},
    "convnext": {"model_type": "convnext", "num_channels": 1, "patch_size": 2,
                 "num_stages": 2, "hidden_sizes": [8, 16], "depths": [1, 2],
                 "layer_norm_eps": 1e-5, "layer_scale_init_value": 0.5, "image_size": 32,
                 "drop_path_rate": 0.1, "initializer_range": 0.05,
                 "id2label": {"0": "a", "1": "b", "2": "c"}},
    "resnet": {"model_type": "resnet", "num_channels": 1, "embedding_size": 8,
               "hidden_sizes": [16, 32], "depths": [1, 2], "layer_type": "basic",
               "id2label": {"0": "a", "1": "b", "2": "c"}},
    "albert": {"model_type": "albert", "vocab_size": 99, "embedding_size": 16,
               "hidden_size": 32, "num_hidden_layers": 4, "num_hidden_groups": 2,
               "num_attention_heads": 4, "intermediate_size": 64, "inner_group_num": 2,
               "max_position_embeddings": 40, "type_vocab_size": 3, "layer_norm_eps": 1e-6,
               "initializer_range": 0.05, "pad_token_id": 3},
}
DEFAULTED = {"gpt2": {"activation_function"}, "bert": {"hidden_act"},
             "t5": {"feed_forward_proj"}}
REMOTE = [("auto_map", {"AutoModel": "modeling_fuzz.FuzzModel"}), ("trust_remote_code", True),
          ("custom_pipelines", {"fuzz": {"impl": "pipe.FuzzPipeline"}})]
HF_NUMBERS = [("-1", -1), ("0", 0), ("7.5", 7.5), ("1e400", math.inf), ("NaN", math.nan),
              ("Infinity", math.inf), ("1000000000000000000000000000000", 1e30),
              ("9223372036854775808", 2**63), ("1e-320", 1e-320), ("3" * 5000, math.inf)]
HF_TYPES = {"str": "fuzz", "int": 7, "float": 7.5, "list": [7], "dict": {"fuzz": 7},
            "bool": True, "null": None}
_NUM = "@@number@@"


def _paths(data: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for key, value in data.items():
        out.append((*prefix, key))
        if isinstance(value, dict) and key != "id2label":
            out += _paths(value, (*prefix, key))
    return out


def _with(data: dict, path: tuple[str, ...], value=_NUM, delete: bool = False) -> dict:
    data = json.loads(json.dumps(data))
    node = data
    for part in path[:-1]:
        node = node[part]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


def _dump(data: dict) -> str:
    return json.dumps(data, indent=2) + "\n"


def hf_mutants(family: str, n: int, seed: int) -> list[Mutant]:
    """``n`` distinct mutants of one family's config.json (file name ``config.json``)."""
    rng = random.Random(f"{seed}:hf:{family}")
    base = HF_CONFIGS[family]
    text = _dump(base)
    paths = _paths(base)
    name = f"{family}/config.json"

    def make(kind, where, change, body, **kw) -> Mutant:
        data = body if isinstance(body, bytes) else body.encode("utf-8")
        return Mutant(name, kind, where, change, data, **kw)

    def one() -> Mutant | None:
        op = rng.choice(["delete_key", "swap_type", "swap_type", "number", "number", "deep",
                         "remote_code", "duplicate_key", "char", "bad_utf8", "truncate",
                         "model_type", "neutral"])
        path = rng.choice(paths)
        where = ".".join(path)
        if op == "delete_key":
            return make(op, where, "deleted", _dump(_with(base, path, delete=True)))
        if op == "swap_type":
            kind = rng.choice(sorted(HF_TYPES))
            return make(op, where, kind, _dump(_with(base, path, HF_TYPES[kind])))
        if op == "number":
            literal, value = rng.choice(HF_NUMBERS)
            old = json.dumps(_get(base, path))
            body = _dump(_with(base, path)).replace(f'"{_NUM}"', literal)
            return make(op, where, literal[:24], body, value=(path[-1], old, float(value)))
        if op == "deep":
            depth = rng.choice([40, 100_000])
            body = _dump(_with(base, path)).replace(f'"{_NUM}"', "[" * depth + "]" * depth)
            return make(op, where, f"[x{depth}", body)
        if op == "remote_code":
            key, value = rng.choice(REMOTE)
            parent = rng.choice([(), *[p for p in paths if isinstance(_get(base, p), dict)
                                       and p[-1] != "id2label"]])
            return make(op, ".".join((*parent, key)), key, _dump(_with(base, (*parent, key),
                                                                       value)))
        if op == "duplicate_key":
            key = path[-1]
            line = next(i for i, x in enumerate(text.split("\n")) if f'"{key}":' in x)
            lines = text.split("\n")
            copy = re.sub(r":.*", ': 12345,', lines[line])  # before it: the same object
            return make(op, where, "twice", "\n".join([*lines[:line], copy, *lines[line:]]),
                        line=line + 2)
        if op == "char":
            char = rng.choice(CHARS)
            strings = [m.start() + 1 for m in re.finditer('"', text)]
            at = rng.choice(strings)
            return make(op, f"offset {at}", repr(char), text[:at] + char + text[at:])
        if op == "bad_utf8":
            raw, bad = text.encode(), rng.choice(BAD_UTF8)
            at = rng.randrange(len(raw))
            return make(op, f"byte {at}", repr(bad), raw[:at] + bad + raw[at:],
                        line=raw.count(b"\n", 0, at) + 1)
        if op == "truncate":
            at = rng.randrange(len(text))
            return make(op, f"byte {at}", "cut", text[:at])
        if op == "model_type":
            other = rng.choice([*sorted(set(HF_CONFIGS) - {family}), "mamba", "GPT2", "",
                                ["gpt2"], None])
            return make(op, "model_type", json.dumps(other), _dump({**base,
                                                                  "model_type": other}))
        style = rng.choice(["crlf", "compact", "reordered", "metadata"])
        if style == "crlf":
            body = text.replace("\n", "\r\n")
        elif style == "compact":
            body = json.dumps(base, separators=(",", ":"))
        elif style == "reordered":
            body = _dump(dict(reversed(list(base.items()))))
        else:
            body = _dump({**base, "architectures": ["FuzzModel"], "transformers_version": "9",
                          "_name_or_path": "fuzz/model", "torch_dtype": "float16"})
        return make("neutral", style, style, body, neutral=True)

    out: dict[str, Mutant] = {}
    for _ in range(n * 20):
        if len(out) == n:
            break
        made = one()
        if made is not None and made.data != text.encode():
            out.setdefault(made.id, made)
    return list(out.values())


def _get(data: dict, path: tuple[str, ...]):
    for part in path:
        data = data[part]
    return data


def hf_import(folder: Path, data: bytes) -> str:
    """Import ``data`` as ``folder/config.json``; the written spec's text."""
    from archcc.importers import import_hf

    (folder / "config.json").write_bytes(data)
    out = import_hf(folder / "config.json", folder / "imported.yaml")
    return out.read_text(encoding="utf-8")


def judge_hf(mutant: Mutant, family: str, base: str, spec: str) -> tuple[str, str]:
    """(right|wrong, why) for an accepted config mutant."""
    if mutant.neutral:
        return ("right", "") if spec == base else ("wrong", "a neutral edit changed the spec")
    if mutant.kind == "remote_code":
        return "wrong", f"remote code ({mutant.change}) was not refused"
    if mutant.line or mutant.must_refuse:
        return "wrong", "an edit that must be refused was accepted"
    if mutant.value is not None:
        problem = domain_error(*mutant.value)
        if problem:
            return "wrong", f"accepted: {problem}"
    defaulted = mutant.kind == "delete_key" and mutant.where in DEFAULTED.get(family, ())
    changes_value = mutant.kind in ("delete_key", "swap_type", "number", "model_type")
    if spec == base and changes_value and not defaulted:
        return "wrong", f"silent: {mutant.where} changed ({mutant.change}), the spec did not"
    return "right", ""


def run_hf(mutant: Mutant, folder: Path, family: str, base: str) -> Result:
    start = time.perf_counter()
    try:
        with time_limit(HANG_SECONDS):
            outcome, detail = judge_hf(mutant, family, base, hf_import(folder, mutant.data))
    except (Exception, Hang) as exc:  # noqa: BLE001 - classifying every failure is the point
        outcome, detail = classify_error(exc, "config.json", mutant.line)
        if mutant.neutral and outcome == "located":
            outcome, detail = "wrong", f"a neutral edit was refused: {detail}"
    seconds = time.perf_counter() - start
    if seconds > HANG_SECONDS and outcome != "hang":
        outcome, detail = "hang", f"{seconds:.1f} s"
    return Result(mutant, outcome, detail, seconds)


def fuzz_hf(folder: Path, n: int, seed: int,
            progress: Callable[[Result], None] | None = None) -> list[Result]:
    """Fuzz ``archcc import hf`` with ``n`` mutants of each family's config."""
    results = []
    for family, config in HF_CONFIGS.items():
        base = hf_import(folder, _dump(config).encode())
        for mutant in hf_mutants(family, n, seed):
            result = run_hf(mutant, folder, family, base)
            results.append(result)
            if progress:
                progress(result)
    return results
