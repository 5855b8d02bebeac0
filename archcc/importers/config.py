"""A Hugging Face ``config.json`` with the line and column of every key, for located errors.

``json`` forgets positions; JSON is also YAML, so the key positions come from PyYAML's node
tree while the values come from ``json`` (YAML 1.1 would read ``1e-05`` as a string)::

    cfg = read_config("config.json")
    cfg.size("n_embd", 768)                  # the value, or HF's default when absent
    cfg.loc("n_embd")                       # SourceLoc('config.json', 7, 3)
    cfg.require("activation_function", "gelu_new", {"gelu_new"}, "the spec uses gelu_tanh")

Values of the wrong type and values a family spec cannot express are refused with the
file:line:col of their key, never papered over. So are configs that name remote code
(``auto_map``, ``trust_remote_code``): the model they describe is whatever that code builds,
not the family archcc knows. Duplicate keys (``json`` keeps the last one silently), NaN and
infinite numbers and nesting deeper than any config needs are refused where they are written.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from archcc.diagnostics import ArchccError, Diagnostic, SourceLoc
from archcc.parser.yaml_loader import Lines, flow_too_deep

MAX_CONFIG_BYTES = 10_000_000  # real configs are a few KB; id2label tables stay far below
MAX_CONFIG_DEPTH = 32  # real configs nest 3 deep (text_config.rope_scaling.type)
REMOTE_CODE = {
    "auto_map": "names classes in the model repository's own Python files",
    "trust_remote_code": "asks to run the model repository's own Python files",
    "custom_pipelines": "names pipelines in the model repository's own Python files",
}
PROBABILITY = re.compile(r"dropout|pdrop|_prob$")  # HF names of dropout probabilities
EPSILON = re.compile(r"eps")  # layer_norm_eps, layer_norm_epsilon
_MISSING = object()


@dataclass
class ConfigFile:
    """Parsed config.json: plain data plus the position of every key (by dotted path)."""

    file: str
    data: dict
    keys: dict[str, SourceLoc] = field(default_factory=dict)
    start: SourceLoc | None = None
    """Where the top-level object opens: the place of a key that is absent."""

    def loc(self, key: str) -> SourceLoc:
        """Where ``key`` (dotted for nested configs: ``text_config.hidden_size``) is written;
        for an absent key, its enclosing object (HF's default applies)."""
        while key:
            if key in self.keys:
                return self.keys[key]
            key = key.rpartition(".")[0]
        return self.start or SourceLoc(self.file, 1, 1)

    def error(self, key: str, message: str, hint: str | None = None) -> ArchccError:
        return ArchccError(Diagnostic(self.loc(key), key, message, hint))

    def get(self, key: str, default: object = None) -> object:
        """The raw value at a dotted ``key``, or ``default`` when any part is absent.

        A part that is present but no object (``"text_config": 5``) is an error at it: its
        sizes would otherwise silently be HF's defaults."""
        node: object = self.data
        parts = key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, dict):
                above = ".".join(parts[:i])
                raise self.error(above, f"expected an object, got {_shown(node)}",
                                 f"{above} holds the nested config's keys")
            if part not in node:
                return default
            node = node[part]
        return node

    def has(self, key: str) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def size(self, key: str, default: int) -> int:
        """An integer size (a bool or a float is refused: ``n_layer: 2.0`` is a typo)."""
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {_shown(value)}")
        if value < 0:
            raise self.error(key, f"expected a size >= 0, got {value}")
        return value

    def number(self, key: str, default: float) -> float:
        """A number (dropout, epsilon); integers are accepted as floats. A dropout
        probability outside [0, 1] or a negative epsilon is refused: torch would fail on the
        first, and the second is no normalisation at all."""
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number, got {_shown(value)}")
        try:
            number = float(value)
        except OverflowError:  # an integer past 1e308
            number = math.inf
        if not math.isfinite(number):
            raise self.error(key, f"expected a finite number, got {_shown(value)}")
        name = key.rpartition(".")[2]
        if PROBABILITY.search(name) and not 0 <= number <= 1:
            raise self.error(key, f"expected a probability in [0, 1], got {_shown(value)}")
        if EPSILON.search(name) and number < 0:
            raise self.error(key, f"expected an epsilon >= 0, got {_shown(value)}")
        return number

    def require(self, key: str, default: object, allowed: Collection, hint: str) -> object:
        """Refuse a value the family spec does not build (``allowed`` lists what it does)."""
        value = self.get(key, default)
        if not any(value == v and type(value) is type(v) for v in allowed):  # 1 is not true
            shown = ", ".join(json.dumps(v) for v in allowed)
            raise self.error(key, f"{_shown(value)} is not supported here (supported: "
                                  f"{shown})", hint)
        return value

    def refuse_remote_code(self) -> None:
        """A config that names remote code is refused by that key, wherever it nests."""
        stack: list[tuple[str, object]] = [("", self.data)]
        while stack:
            prefix, node = stack.pop()
            if not isinstance(node, dict):
                continue
            for key, value in node.items():
                if key in REMOTE_CODE and value not in (None, False, {}, []):
                    raise self.error(f"{prefix}{key}", f"{key} {REMOTE_CODE[key]}: archcc "
                                     "does not import remote code",
                                     "the family spec would describe another model than that "
                                     "code builds; remove the key if the model is the plain "
                                     "family, or write a spec for it by hand")
                stack.append((f"{prefix}{key}.", value))


def _shown(value: object) -> str:
    """A config value in a message, cut short (an id2label table can be thousands of keys)."""
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 60 else text[:57] + "..."


def _key_positions(lines: Lines) -> tuple[dict[str, SourceLoc], list[tuple[str, SourceLoc]]]:
    """Dotted key -> position, from YAML's node tree (JSON is YAML), and every repeated key
    with the position of its repeat; nothing if YAML cannot read the text."""
    try:
        root = yaml.compose(lines.text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        return {}, []
    keys: dict[str, SourceLoc] = {}
    repeats: list[tuple[str, SourceLoc]] = []
    stack = [(root, "")] if root is not None else []
    while stack:
        node, prefix = stack.pop()
        if not isinstance(node, yaml.MappingNode):
            continue
        for key_node, value_node in node.value:
            name = f"{prefix}{key_node.value}"
            if name in keys:
                repeats.append((name, lines.mark(key_node.start_mark)))
            keys.setdefault(name, lines.mark(key_node.start_mark))
            stack.append((value_node, f"{name}."))
    return keys, repeats


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    """json's object hook: a repeated key is an error (json keeps the last one silently)."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _Repeated(key)
        out[key] = value
    return out


class _Repeated(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


class _Constant(ValueError):
    """NaN, Infinity or -Infinity: Python's json reads them, JSON has no such numbers."""


def _refuse_constant(name: str) -> float:
    raise _Constant(name)


def _json(file: str, text: str, lines: Lines) -> object:
    """json.loads, with every failure located: syntax, duplicates, NaN, deep nesting."""
    deep = flow_too_deep(lines, MAX_CONFIG_DEPTH)
    if deep is not None:
        raise ArchccError(Diagnostic(deep, "", f"config nests deeper than {MAX_CONFIG_DEPTH} "
                                     "levels", "a Hugging Face config nests a few levels"))
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates,
                          parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ArchccError(Diagnostic(SourceLoc(file, exc.lineno, exc.colno), "",
                                     f"not valid JSON: {exc.msg}",
                                     "a Hugging Face config.json, as written by "
                                     "config.save_pretrained()")) from None
    except _Repeated as exc:
        _, repeats = _key_positions(lines)
        loc = next((at for name, at in repeats if name.rpartition(".")[2] == exc.key),
                   lines.loc(0))
        raise ArchccError(Diagnostic(loc, exc.key, f"duplicate key '{exc.key}'",
                                     "JSON readers keep only the last of duplicate keys; "
                                     "remove one")) from None
    except _Constant as exc:
        word = str(exc)
        raise ArchccError(Diagnostic(lines.loc(text.find(word)), "", f"{word} is not a JSON "
                                     "number", "write a finite number")) from None
    except ValueError:  # an integer of thousands of digits (Python refuses to convert it)
        long = re.search(r"\d{1000,}", text)
        raise ArchccError(Diagnostic(lines.loc(long.start() if long else 0), "",
                                     "number is too long", "a size has a few digits")) from None


def read_config(path: str | Path) -> ConfigFile:
    """Read a config.json; unreadable, non-JSON or non-object files are located errors."""
    from archcc.parser import display_path, read_limited

    file = display_path(path)
    text = read_limited(path, "config", MAX_CONFIG_BYTES)
    lines = Lines(file, text)
    data = _json(file, text, lines)
    start = lines.loc(len(text) - len(text.lstrip()))
    if not isinstance(data, dict):
        raise ArchccError(Diagnostic(start, "", "a config.json holds one JSON object"))
    keys, _ = _key_positions(lines)
    cfg = ConfigFile(file, data, keys, start)
    cfg.refuse_remote_code()
    return cfg
