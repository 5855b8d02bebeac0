"""``archcc blocks``: every op documented from the schema itself, so the docs cannot drift.

The field table comes from the op's pydantic model (types, defaults, attribute docstrings);
the example is the op's own (:class:`archcc.ops.Example`), which tests build::

    $ archcc blocks describe ffn
    ffn: Position-wise feed-forward: down(act(up(x))), or gated: down(act(gate(x)) * up(x)).

    field    type                 default  description
    dim      size                 required
    hidden   size                 required
    act      relu | gelu | ...    gelu
    ...
    example:
      mlp: {op: ffn, dim: n_embd, hidden: 4 * n_embd, act: silu, gated: true}
"""

from __future__ import annotations

import inspect
import re
import types
import typing

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from archcc.parser import schema
from archcc.parser.expr import did_you_mean

_PLACEHOLDER = {"size": "n_embd", "number": "0.1", "bool": "false", "int": "1", "str": "x",
                "list of size": "[n_embd]"}


def op_models() -> dict[str, type[BaseModel]]:
    """Op name -> its pydantic model, in schema order, then installed plugin ops."""
    from archcc import plugins

    plugins.load_installed()
    return schema.op_models()


def _type_name(annotation: object) -> str:
    if annotation is None or annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(str(a) for a in typing.get_args(annotation))
    if origin is typing.Annotated:
        base = typing.get_args(annotation)[0]
        return "size" if base == int | str else "number" if base == float | int | str \
            else _type_name(base)
    if origin in (typing.Union, types.UnionType):
        args = set(typing.get_args(annotation))
        if args == {int, str}:
            return "size"
        if args == {float, int, str}:
            return "number"
        if len(args) > 6:
            return "a layer entry"
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is list:
        return f"list of {_type_name(typing.get_args(annotation)[0])}"
    return getattr(annotation, "__name__", str(annotation)).lower()


def fields(model: type[BaseModel]) -> list[tuple[str, str, str, str]]:
    """(name, type, default, description) for every field but ``op``."""
    rows = []
    for name, info in model.model_fields.items():
        if name == "op":
            continue
        default = "required" if info.default is PydanticUndefined else repr(info.default)
        rows.append((info.alias or name, _type_name(info.annotation),
                     default.replace("'", ""), " ".join((info.description or "").split())))
    return rows


def example(op: str) -> str:
    """A layer entry using ``op``: the op's own example, or one from its required fields."""
    from archcc import ops

    defined = ops.get(op)
    if defined is not None and defined.example is not None:
        return defined.example.layer
    model = op_models()[op]
    parts = [f"op: {op}"]
    for name, type_name, default, _ in fields(model):
        if default == "required":
            parts.append(f"{name}: {_PLACEHOLDER.get(type_name, 'n_embd')}")
    return f"{op}_1: {{{', '.join(parts)}}}"


def list_ops() -> str:
    """One line per op: name and the first sentence of its docstring."""
    models = op_models()
    width = max(map(len, models))
    lines = [f"{name:<{width}}  {_summary(model)}" for name, model in models.items()]
    lines.append(f"{'repeat':<{width}}  {_summary(schema.Repeat)}")
    return "\n".join(lines) + "\n"


def _summary(model: type[BaseModel]) -> str:
    doc = " ".join(inspect.cleandoc(model.__doc__ or "").split())
    return re.split(r"\.\s+(?=[A-Z`(])", doc)[0].rstrip(".")  # first sentence; "e.g. a" stays


def describe(op: str) -> str:
    """Docstring, field table and example of one op; unknown names get a did-you-mean."""
    models = op_models()
    if op == "repeat":
        model = schema.Repeat
    elif op in models:
        model = models[op]
    else:
        from archcc.diagnostics import ArchccError, Diagnostic

        raise ArchccError(Diagnostic(None, "", f"unknown op '{op}'",
                                     did_you_mean(op, set(models)) or "see `archcc blocks list`"))
    rows = [("field", "type", "default", "description"), *fields(model)]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    table = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}".rstrip()
             for a, b, c, d in rows]
    doc = inspect.cleandoc(model.__doc__ or "")
    sample = "h: {repeat: Block, times: n_layer}" if op == "repeat" else example(op)
    return f"{op}: {doc}\n\n" + "\n".join(table) + f"\n\nexample:\n  {sample}\n"


def _cell(text: str) -> str:
    """Table cell text: a ``|`` in a type (``gelu | silu``) would split the column."""
    return text.replace("|", "\\|")


def ops_reference() -> str:
    """``docs/ops.md``: every op of the registry with its docs, fields and example, in
    ``blocks list`` order (``make docs`` writes it; a test keeps it in sync)."""
    models = op_models()
    out = ["# Ops reference", "",
           "Generated from the op registry (`archcc/ops/`) by `make docs`; do not edit.",
           "`archcc blocks describe OP` prints the same for one op. Each example is built "
           "and measured by `tests/test_ops.py`.", "",
           "| op | what it is |", "|---|---|"]
    out += [f"| [`{name}`](#{name}) | {_summary(model)} |"
            for name, model in models.items()]
    for name, model in models.items():
        out += ["", f"## {name}", "", inspect.cleandoc(model.__doc__ or ""), "",
                "| field | type | default | description |", "|---|---|---|---|"]
        out += ["| " + " | ".join((f"`{field}`", *(_cell(c) for c in (kind, default, doc))))
                + " |" for field, kind, default, doc in fields(model)]
        out += ["", "<!-- fragment -->", "```yaml", example(name), "```"]  # tests/test_ops.py
    out += ["", "## repeat", "", inspect.cleandoc(schema.Repeat.__doc__ or ""), "",
            "<!-- fragment -->", "```yaml",
            "h: {repeat: Block, times: n_layer}", "```"]
    return "\n".join(out) + "\n"
