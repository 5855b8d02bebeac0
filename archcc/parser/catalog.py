"""``archcc blocks``: every op documented from the schema itself, so the docs cannot drift.

The field table comes from the pydantic models (types, defaults, attribute docstrings); the
example is a layer entry that a test validates against the same schema::

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

# One realistic entry per op; ops without one get an example built from their required fields.
EXAMPLES = {
    "embedding": "wte: {op: embedding, num: vocab_size, dim: n_embd}",
    "linear": "lm_head: {op: linear, in: n_embd, out: vocab_size, bias: false, tie: wte}",
    "layernorm": "ln_f: {op: layernorm, dim: n_embd, eps: 1.0e-5}",
    "rmsnorm": "norm: {op: rmsnorm, dim: n_embd}",
    "dropout": "drop: {op: dropout, p: 0.1}",
    "activation": "act: {op: activation, fn: gelu_tanh}",
    "attention": "attn: {op: attention, dim: n_embd, heads: n_head, causal: true}",
    "ffn": "mlp: {op: ffn, dim: n_embd, hidden: 4 * n_embd, act: silu, gated: true}",
    "patchify": "patch_embed: {op: patchify, in_channels: 3, dim: hidden_size, patch: 16}",
    "sinusoidal": "pos: {op: sinusoidal, dim: d_model, max_len: 5000}",
    "parameter": "cls_token: {op: parameter, shape: [1, 1, hidden_size]}",
    "residual": "attention: {op: residual, placement: post, dim: hidden_size, layer: {op: "
                "attention, dim: hidden_size, heads: num_attention_heads}}",
    "relative_bias": "encoder_bias: {op: relative_bias, heads: num_heads, buckets: 32, "
                     "max_distance: 128}",
    "patch_merge": "merge_1: {op: patch_merge, dim: embed_dim, out: 2 * embed_dim}",
    "rnn_decoder": "decoder: {op: rnn_decoder, cell: gru, vocab: tgt_vocab, emb: emb, "
                   "hidden: hidden, memory: 2 * hidden, score: additive}",
}
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
    """A layer entry using ``op``: the curated one, or one from its required fields."""
    if op in EXAMPLES:
        return EXAMPLES[op]
    from archcc import plugins

    plugin = plugins.get(op)
    if plugin is not None and plugin.example:
        return plugin.example
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
