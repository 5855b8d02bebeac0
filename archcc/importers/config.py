"""A Hugging Face ``config.json`` with the line and column of every key, for located errors.

``json`` forgets positions; JSON is also YAML, so the key positions come from PyYAML's node
tree while the values come from ``json`` (YAML 1.1 would read ``1e-05`` as a string)::

    cfg = read_config("config.json")
    cfg.size("n_embd", 768)                  # the value, or HF's default when absent
    cfg.loc("n_embd")                       # SourceLoc('config.json', 7, 3)
    cfg.require("activation_function", "gelu_new", {"gelu_new"}, "the spec uses gelu_tanh")

Values of the wrong type and values a family spec cannot express are refused with the
file:line:col of their key, never papered over.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from archcc.diagnostics import ArchccError, Diagnostic, SourceLoc

MAX_CONFIG_BYTES = 10_000_000  # real configs are a few KB; id2label tables stay far below
_MISSING = object()


@dataclass
class ConfigFile:
    """Parsed config.json: plain data plus the position of every key (by dotted path)."""

    file: str
    data: dict
    keys: dict[str, SourceLoc] = field(default_factory=dict)

    def loc(self, key: str) -> SourceLoc:
        """Where ``key`` (dotted for nested configs: ``text_config.hidden_size``) is written;
        the whole file when it is absent (HF's default applies)."""
        while key:
            if key in self.keys:
                return self.keys[key]
            key = key.rpartition(".")[0]
        return SourceLoc(self.file)

    def error(self, key: str, message: str, hint: str | None = None) -> ArchccError:
        return ArchccError(Diagnostic(self.loc(key), key, message, hint))

    def get(self, key: str, default: object = None) -> object:
        """The raw value at a dotted ``key``, or ``default`` when any part is absent."""
        node: object = self.data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def has(self, key: str) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def size(self, key: str, default: int) -> int:
        """An integer size (a bool or a float is refused: ``n_layer: 2.0`` is a typo)."""
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {json.dumps(value)}")
        if value < 0:
            raise self.error(key, f"expected a size >= 0, got {value}")
        return value

    def number(self, key: str, default: float) -> float:
        """A number (dropout, epsilon); integers are accepted as floats."""
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number, got {json.dumps(value)}")
        return float(value)

    def require(self, key: str, default: object, allowed: Collection, hint: str) -> object:
        """Refuse a value the family spec does not build (``allowed`` lists what it does)."""
        value = self.get(key, default)
        if not any(value == v and type(value) is type(v) for v in allowed):  # 1 is not true
            shown = ", ".join(json.dumps(v) for v in allowed)
            raise self.error(key, f"{json.dumps(value)} is not supported here (supported: "
                                  f"{shown})", hint)
        return value


def _key_positions(file: str, text: str) -> dict[str, SourceLoc]:
    """Dotted key -> position, from YAML's node tree (JSON is YAML); {} if it cannot tell."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    keys: dict[str, SourceLoc] = {}

    def walk(node: yaml.Node, prefix: str, depth: int) -> None:
        if not isinstance(node, yaml.MappingNode) or depth > 4:
            return
        for key_node, value_node in node.value:
            name = f"{prefix}{key_node.value}"
            mark = key_node.start_mark
            keys.setdefault(name, SourceLoc(file, mark.line + 1, mark.column + 1))
            walk(value_node, f"{name}.", depth + 1)

    if root is not None:
        walk(root, "", 0)
    return keys


def read_config(path: str | Path) -> ConfigFile:
    """Read a config.json; unreadable, non-JSON or non-object files are located errors."""
    from archcc.parser import display_path, read_limited

    file = display_path(path)
    text = read_limited(path, "config", MAX_CONFIG_BYTES)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArchccError(Diagnostic(SourceLoc(file, exc.lineno, exc.colno), "",
                                     f"not valid JSON: {exc.msg}",
                                     "a Hugging Face config.json, as written by "
                                     "config.save_pretrained()")) from None
    if not isinstance(data, dict):
        raise ArchccError(Diagnostic(SourceLoc(file, 1, 1), "",
                                     "a config.json holds one JSON object"))
    return ConfigFile(file, data, _key_positions(file, text))
