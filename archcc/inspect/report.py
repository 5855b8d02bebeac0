"""The ``archcc diff`` report for people: sections, aligned columns, colour on a TTY.

    >>> print(diff_text(diff_specs("specs/gpt2.yaml", "specs/bert.yaml"), color=False))
    archcc diff  A = specs/gpt2.yaml (gpt2)  B = specs/bert.yaml (bert)
    ...
"""

from __future__ import annotations

from typing import Any

from archcc.inspect.diff import Diff, LayerChange
from archcc.inspect.text import human, human_bytes, signed, table

MARK = {"same": "=", "changed": "~", "renamed": "~", "added": "+", "removed": "-"}
COLOR = {"+": "32", "-": "31", "~": "33", "=": "2"}  # green, red, yellow, dim


def _paint(text: str, mark: str, color: bool) -> str:
    return f"\033[{COLOR[mark]}m{text}\033[0m" if color and mark in COLOR else text


def _v(value: Any) -> str:
    return "true" if value is True else "false" if value is False else str(value)


def _name(c: LayerChange) -> str:
    if c.a and c.b:
        return c.a if c.a == c.b else f"{c.a} -> {c.b}"
    return c.a or c.b or ""


def _what(c: LayerChange) -> str:
    parts = []
    for key, old, new in c.changes:
        if key == "op":
            parts.insert(0, f"{old} -> {new}")
        elif old is None:
            parts.append(f"+{key} {_v(new)}")
        elif new is None:
            parts.append(f"-{key} {_v(old)}")
        else:
            parts.append(f"{key} {_v(old)} -> {_v(new)}")
    return ", ".join(parts) or ("renamed" if c.status == "renamed" else "")


def _params_section(d: Diff, color: bool) -> list[str]:
    lines = []
    for name, old, new in d.params:
        mark = "+" if old is None else "-" if new is None else "~"
        text = _v(new) if old is None else _v(old) if new is None else f"{_v(old)} -> {_v(new)}"
        lines.append(_paint(f"  {mark} {name:<28} {text}", mark, color))
    return lines or ["  (none changed)"]


def _layers_section(d: Diff, color: bool) -> list[str]:
    rows = [[MARK[c.status], _name(c), c.kind_a or c.kind_b or "", _what(c)]
            for c in d.layers if c.status != "same"]
    if not rows:
        return ["  (all layers the same)"]
    lines = table(["", "layer", "op", "change"], rows, right=set())[2:]
    return ["  " + _paint(line, row[0], color) for line, row in zip(lines, rows, strict=True)]


def _delta(pair: tuple[int, int], fmt=human) -> list[str]:
    a, b = pair
    return [fmt(a), fmt(b), signed(fmt(b - a), b - a)]


def _figures_section(d: Diff) -> list[str]:
    rows = []
    for c in d.layers:
        if c.status == "same" and c.params[0] == c.params[1] and c.flops[0] == c.flops[1]:
            continue
        if c.params == (0, 0) and c.flops == (0, 0):
            continue
        rows.append([_name(c), *_delta(c.params), *_delta(c.flops),
                     *_delta(c.act_bytes, human_bytes)])
    t = d.totals
    rows.append(["total", *_delta(t["params"]), *_delta(t["flops"]),
                 *_delta(t["act_bytes"], human_bytes)])
    header = ["layer", "params A", "B", "delta", "FLOPs A", "B", "delta", "act. A", "B", "delta"]
    lines = table(header, rows, right=set(range(1, 10)))
    lines.insert(len(lines) - 1, lines[1])
    return ["  " + line for line in lines]


def _checkpoint_section(d: Diff) -> list[str]:
    ck = d.checkpoint
    def examples(items: list, limit: int = 4) -> str:
        shown = [_example(x) for x in items[:limit]]
        more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
        return ", ".join(shown) + more
    labels = [("unchanged", "load unchanged"), ("renamed", "load under a new name"),
              ("reshaped", "change shape"), ("dropped", "have no place in B"),
              ("new", "are new in B (initialised fresh)")]
    lines = []
    for key, label in labels:
        n = ck.counts[key]
        line = f"  {n:>5} tensors ({human(ck.params[key]):>7} values) {label}"
        items = getattr(ck, key)
        lines.append(line + (f": {examples(items)}" if items and key != "unchanged" else ""))
    return lines


def _example(item: Any) -> str:
    if isinstance(item, str):
        return item
    if len(item) == 2:
        return f"{item[0]} -> {item[1]}"
    a, b, sa, sb = item
    return f"{a} {tuple(sa)} -> {b if b != a else ''}{' ' if b != a else ''}{tuple(sb)}"


def diff_text(d: Diff, color: bool = False) -> str:
    """The whole report; ``color`` adds ANSI colours (the CLI passes ``isatty()``)."""
    dims = " ".join(f"{k}={v}" for k, v in d.dims.items())
    def side(s: dict) -> str:
        sets = " ".join(s["set"])
        return f"{s['spec']} ({s['name']}{', ' + sets if sets else ''})"
    out = [f"archcc diff  A = {side(d.a)}  B = {side(d.b)}" + (f"  dims {dims}" if dims else "")]
    if d.identical:
        out.append("no architectural differences")
    out += ["", "hyperparameters", *_params_section(d, color)]
    out += ["", "layers", *_layers_section(d, color)]
    out += ["", "wiring", *(f"  ~ {w}" for w in d.wiring)] if d.wiring else ["", "wiring",
                                                                             "  (unchanged)"]
    out += ["", "figures (same input dims)", *_figures_section(d)]
    out += ["", "checkpoint A -> B", *_checkpoint_section(d)]
    return "\n".join(out) + "\n"
