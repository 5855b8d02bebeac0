"""``archcc resolve``: the fully composed spec, each line saying which file set it.

After ``extends`` chains, ``imports`` and ``--set`` nobody should have to guess where a value
came from (the configs-inheriting-configs problem). Every key line carries its origin::

    params:                                        # specs/gpt2.yaml:5
      vocab_size: 50257                            # specs/gpt2.yaml:6
      n_embd: 1024                                 # specs/gpt2_medium.yaml:5
      n_layer: 48                                  # --set n_layer=48
    blocks:                                        # specs/gpt2.yaml:16
      Block:                                       # specs/gpt2.yaml:17
        layers:                                    # specs/gpt2.yaml:19
          ln_1: {op: layernorm, dim: n_embd}       # specs/gpt2.yaml:20

A mapping of plain values from one file prints in flow style on one line; one whose values
come from several files is spelled out key by key, so each value keeps its own origin.
"""

from __future__ import annotations

import yaml

from archcc.diagnostics import SourceLoc
from archcc.parser.yaml_loader import SourceMap, SpecPath

COMMENT_COLUMN = 48


def _origin(loc: SourceLoc | None) -> str:
    if loc is None:
        return "?"
    return loc.file if loc.line <= 0 else f"{loc.file}:{loc.line}"


def _scalar(value: object) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True,
                          sort_keys=False)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _line(text: str, loc: SourceLoc | None) -> str:
    pad = max(COMMENT_COLUMN - len(text), 2)
    return f"{text}{' ' * pad}# {_origin(loc)}"


class _Printer:
    def __init__(self, where: SourceMap):
        self.where = where
        self.lines: list[str] = []

    def _files_under(self, path: SpecPath) -> set[str]:
        return {loc.file for p, loc in self.where.keys.items()
                if p[:len(path)] == path and len(p) > len(path)}

    def _one_line(self, value: dict, path: SpecPath) -> bool:
        plain = all(not isinstance(v, dict) and not (isinstance(v, str) and "\n" in v)
                    for v in value.values())
        return plain and len(self._files_under(path)) <= 1 and len(value) <= 8 and \
            path != ("init",)  # one rule per line: they are read in order

    def mapping(self, value: dict, path: SpecPath, indent: str) -> None:
        for key, item in value.items():
            here = (*path, str(key))
            loc = self.where.keys.get(here)
            head = f"{indent}{_scalar(key)}:"
            if isinstance(item, dict) and item and not self._one_line(item, here):
                self.lines.append(_line(head, loc))
                self.mapping(item, here, indent + "  ")
            elif isinstance(item, str) and "\n" in item:
                self.lines.append(_line(f"{head} |", loc))
                self.lines.extend(f"{indent}  {row}" if row else "" for row in
                                  item.rstrip("\n").split("\n"))
            else:
                self.lines.append(_line(f"{head} {_scalar(item)}", loc))


def render_resolved(data: dict, where: SourceMap) -> str:
    """The composed spec as YAML with an origin comment on every key line."""
    printer = _Printer(where)
    printer.mapping(data, (), "")
    return "\n".join(printer.lines) + "\n"
