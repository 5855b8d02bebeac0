"""Sequence layers: ``rnn`` / ``lstm`` / ``gru``, ``conv1d`` and ``embedding_bag``.

The same three hooks as :mod:`archcc.ir.layers` (sizes to resolve, the ``__init__`` line, the
shape rule at a call), kept apart so the recurrent family reads as one page::

    lstm: {op: lstm, in: n_embd, hidden: n_hidden, layers: 2}
        -> self.lstm = nn.LSTM(config.n_embd, config.n_hidden, num_layers=2, batch_first=True)
    out, (h, c) = lstm(x)   with x (B, T, n_embd)
        -> out (B, T, n_hidden), h and c (2, B, n_hidden)

A recurrent call is one tuple-valued ``call`` node whose ports (``out``, ``h``, ``c``) are read
by ``port`` nodes, the way torch.fx reads a tuple with ``getitem``.
"""

from __future__ import annotations

import sympy

from archcc.ir.graph import Submodule
from archcc.ir.shapes import FLOAT, INT, DimContext, Shape, ShapeError, fmt
from archcc.parser.expr import Num

RECURRENT = ("rnn", "lstm", "gru")
OPS = (*RECURRENT, "conv1d", "embedding_bag")
SIZES = {**{op: ("in_", "hidden", "layers") for op in RECURRENT},
         "conv1d": ("in_", "out", "kernel", "stride"), "embedding_bag": ("num", "dim")}
SCALARS = {op: ("dropout",) for op in RECURRENT}


def ports(op: str) -> tuple[str, ...]:
    """What a recurrent layer returns: ``out, (h, c)`` for an LSTM, ``out, h`` otherwise."""
    return ("out", "h", "c") if op == "lstm" else ("out", "h")


def declare_extra(scope, layer) -> None:
    """Sizes that may be zero (padding), and facet combinations that cannot work."""
    spec, path = layer.spec, layer.path
    if layer.op == "conv1d":
        layer.sizes["padding"] = scope.size(spec.padding, (*path, "padding"), positive=False)
    if layer.op not in RECURRENT or any(v is None for v in layer.sizes.values()):
        return
    dropout, layers = scope.value(layer.sizes["dropout"]), scope.value(layer.sizes["layers"])
    if dropout and layers == 1:
        scope.errors.append(_diag(scope, layer, "dropout",
                                  f"dropout ({dropout}) acts between stacked layers, but "
                                  "layers is 1", "set layers > 1, or use a dropout layer on "
                                  "the output"))
    if spec.lengths == "mask" and spec.bidirectional:
        scope.errors.append(_diag(scope, layer, "lengths",
                                  "lengths: mask cannot run a bidirectional layer: the "
                                  "backward direction would start inside the padding",
                                  "use lengths: packed"))


def _diag(scope, layer, key: str, message: str, hint: str):
    from archcc.diagnostics import Diagnostic

    where = (*layer.path, key)
    loc = scope.loaded.where.key(where) if key in layer.spec.model_fields_set else layer.loc
    return Diagnostic(loc, ".".join(where), message, hint)


def submodules(layer) -> list[Submodule]:
    s, spec = layer.sizes, layer.spec
    if layer.op == "conv1d":
        return [Submodule(layer.name, "conv1d", {
            "in": s["in_"], "out": s["out"], "kernel": s["kernel"], "stride": s["stride"],
            "padding": s["padding"], "bias": Num(spec.bias)}, layer.loc)]
    if layer.op == "embedding_bag":
        args = {"num": s["num"], "dim": s["dim"], "mode": spec.mode}
        if spec.padding_idx is not None:
            args["padding_idx"] = Num(spec.padding_idx)
        return [Submodule(layer.name, "embedding_bag", args, layer.loc)]
    args = {"in": s["in_"], "hidden": s["hidden"], "layers": s["layers"],
            "bias": Num(spec.bias), "batch_first": Num(spec.batch_first),
            "dropout": s["dropout"], "bidirectional": Num(spec.bidirectional)}
    if layer.op == "rnn":
        args["nonlinearity"] = spec.nonlinearity
    return [Submodule(layer.name, layer.op, args, layer.loc)]


# ----------------------------------------------------------------------------- call rules


def state_shape(layer, batch: sympy.Expr) -> Shape:
    """(layers * directions, B, hidden): the shape of h0, c0, h and c."""
    directions = 2 if layer.spec.bidirectional else 1
    return (layer.dim("layers") * directions, batch, layer.dim("hidden"))


def call_shape(ctx: DimContext, layer, shapes: list[Shape], dtypes: list[str],
               kwargs: tuple[str, ...]):
    """Shape rule of a call; a recurrent call gives a tuple of port shapes."""
    if layer.op == "conv1d":
        return _conv1d(ctx, layer, shapes[0]), FLOAT
    if layer.op == "embedding_bag":
        return _embedding_bag(layer, shapes, dtypes), FLOAT
    return _recurrent(ctx, layer, shapes), FLOAT


def _recurrent(ctx, layer, shapes):
    x, states = shapes[0], shapes[1:]
    order = "(B, T, in)" if layer.spec.batch_first else "(T, B, in)"
    if len(x) != 3:
        raise ShapeError(f"{layer.name} needs a sequence {order}, got {fmt(x)}",
                         "batch_first: false takes (T, B, in)" if layer.spec.batch_first
                         else "batch_first: true takes (B, T, in)")
    if not ctx.equal(x[-1], layer.dim("in_")):
        raise ShapeError(f"{layer.name} expects inputs with last dim {layer.dim('in_')} "
                         f"({ctx.concrete(layer.dim('in_'))}), got {fmt(x)}")
    batch, time = (x[0], x[1]) if layer.spec.batch_first else (x[1], x[0])
    n_states = len(ports(layer.op)) - 1
    if states and len(states) != n_states:
        names = "h0, c0" if layer.op == "lstm" else "h0"
        raise ShapeError(f"{layer.name} takes x or x with its initial state ({names}), got "
                         f"{len(shapes)} inputs", f"call it as {layer.name}(x, {names})")
    want = state_shape(layer, batch)
    for name, got in zip(("h0", "c0"), states, strict=False):
        if len(got) != 3 or not all(ctx.equal(a, b) for a, b in zip(got, want, strict=True)):
            raise ShapeError(f"{layer.name}: {name} must be (layers * directions, B, hidden) "
                             f"= {fmt(want)}, got {fmt(got)}")
    directions = 2 if layer.spec.bidirectional else 1
    width = directions * layer.dim("hidden")
    out = (batch, time, width) if layer.spec.batch_first else (time, batch, width)
    return (out, *([want] * n_states))


def _conv1d(ctx, layer, x):
    if len(x) != 3:
        raise ShapeError(f"{layer.name} needs channels-first (B, C, T), got {fmt(x)}",
                         "transpose(x, 1, 2) turns (B, T, C) into (B, C, T)")
    if not ctx.equal(x[1], layer.dim("in_")):
        raise ShapeError(f"{layer.name} expects {layer.dim('in_')} "
                         f"({ctx.concrete(layer.dim('in_'))}) channels in dim 1, got {fmt(x)}",
                         "conv1d reads (B, C, T); transpose(x, 1, 2) turns (B, T, C) into it")
    span = x[2] + 2 * layer.dim("padding") - layer.dim("kernel")
    stride = layer.dim("stride")
    length = span + 1 if stride == 1 else sympy.floor(span / stride) + 1
    return (x[0], layer.dim("out"), length)


def _embedding_bag(layer, shapes, dtypes):
    if dtypes[0] != INT:
        raise ShapeError(f"{layer.name} is an embedding bag and needs int64 ids, got {dtypes[0]}")
    ids = shapes[0]
    if len(shapes) == 1 and len(ids) == 2:
        return (ids[0], layer.dim("dim"))
    if len(shapes) == 2 and len(ids) == 1 and len(shapes[1]) == 1 and dtypes[1] == INT:
        return (shapes[1][0], layer.dim("dim"))
    raise ShapeError(f"{layer.name} takes ids (B, L), or flat ids (N,) and int64 offsets "
                     f"(nb,); got {', '.join(fmt(s) for s in shapes)}")
