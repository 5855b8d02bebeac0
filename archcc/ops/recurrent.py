"""Recurrent layers ``rnn``, ``lstm`` and ``gru``: torch's own ``nn.RNN`` / ``nn.LSTM`` /
``nn.GRU``, stacked and bidirectional, with padded batches.

    lstm: {op: lstm, in: n_embd, hidden: n_hidden, layers: 2}
    ->  self.lstm = nn.LSTM(config.n_embd, config.n_hidden, num_layers=2, batch_first=True)
    out, (h, c) = lstm(x)   with x (B, T, n_embd)
        -> out (B, T, n_hidden), h and c (2, B, n_hidden)

A recurrent call is one tuple-valued ``call`` node whose ports (``out``, ``h``, ``c``) are
read by ``port`` nodes, the way torch.fx reads a tuple with ``getitem``; ``lengths=n`` packs
the padded batch around it (or masks the output, ``lengths: mask``). Used inside an
expression (``head(lstm(x))``) a call gives its output sequence.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from archcc.ir.graph import Submodule
from archcc.ir.shapes import FLOAT, Shape, ShapeError, fmt
from archcc.lazy import sympy
from archcc.ops import Example, Kind, Op, kind, op
from archcc.ops.base import field_diag, keywords
from archcc.parser.expr import Call, Num
from archcc.parser.fields import Scalar, Size, Strict

_CLASSES = {"rnn": "nn.RNN", "lstm": "nn.LSTM", "gru": "nn.GRU"}


class _Recurrent(Strict):
    """Shared fields of `rnn`, `lstm` and `gru` (generated as `nn.RNN` / `nn.LSTM` / `nn.GRU`).

    Call it as `out = lstm(x)`, `out, (h, c) = lstm(x)`, `out, (h, c) = lstm(x, h0, c0)`,
    `out, h = gru(x, h0)`, or with `lengths=n` (int64 (B,)) for padded batches."""

    in_: Size = Field(alias="in")
    """Input features (last dim of x)."""
    hidden: Size
    """Hidden size per direction; outputs are hidden * (2 if bidirectional else 1) wide."""
    layers: Size = 1
    """Stacked layers."""
    bidirectional: bool = False
    """A second layer reads the sequence backwards; outputs concatenate both."""
    dropout: Scalar = 0.0
    """Dropout between stacked layers (not after the last), in training only."""
    batch_first: bool = True
    """x is (B, T, in); false: (T, B, in). States are always (layers * directions, B, hidden)."""
    bias: bool = True
    """Input and hidden biases (torch's `bias`)."""
    lengths: Literal["packed", "mask"] = "packed"
    """How a `lengths=` argument is honoured: `packed` packs the padded batch (exact final
    states, every direction); `mask` runs over the padding and zeroes outputs past each length
    (unidirectional only, no final states; exports everywhere)."""


class RNN(_Recurrent):
    """Elman RNN: h_t = act(W_ih x_t + W_hh h_{t-1} + b)."""

    op: Literal["rnn"]
    nonlinearity: Literal["tanh", "relu"] = "tanh"
    """The activation of the recurrence."""


class LSTM(_Recurrent):
    """Long short-term memory; returns `out, (h, c)`."""

    op: Literal["lstm"]


class GRU(_Recurrent):
    """Gated recurrent unit; returns `out, h`."""

    op: Literal["gru"]


def ports(op_name: str) -> tuple[str, ...]:
    """What a recurrent layer returns: ``out, (h, c)`` for an LSTM, ``out, h`` otherwise."""
    return ("out", "h", "c") if op_name == "lstm" else ("out", "h")


class _RecurrentOp(Op):
    sizes, scalars, wrappable = ("in_", "hidden", "layers"), ("dropout",), False

    def check(self, scope, layer):
        spec = layer.spec
        dropout, layers = scope.value(layer.sizes["dropout"]), scope.value(layer.sizes["layers"])
        if dropout and layers == 1:
            scope.errors.append(field_diag(scope, layer, "dropout",
                                      f"dropout ({dropout}) acts between stacked layers, but "
                                      "layers is 1", "set layers > 1, or use a dropout layer on "
                                      "the output"))
        if spec.lengths == "mask" and spec.bidirectional:
            scope.errors.append(field_diag(scope, layer, "lengths",
                                      "lengths: mask cannot run a bidirectional layer: the "
                                      "backward direction would start inside the padding",
                                      "use lengths: packed"))

    def submodules(self, layer):
        s, spec = layer.sizes, layer.spec
        args = {"in": s["in_"], "hidden": s["hidden"], "layers": s["layers"],
                "bias": Num(spec.bias), "batch_first": Num(spec.batch_first),
                "dropout": s["dropout"], "bidirectional": Num(spec.bidirectional)}
        if self.name == "rnn":
            args["nonlinearity"] = spec.nonlinearity
        return [Submodule(layer.name, self.name, args, layer.loc)]

    def call(self, fwd, layer, e):
        return recurrent_call(fwd, layer, e)[0]

    def assign(self, fwd, layer, statement):
        """``out, (h, c) = lstm(x)``: bind each target to one port of the call."""
        names = ports(self.name)
        if len(statement.targets) != len(names):
            shown = "out, (h, c)" if self.name == "lstm" else "out, h"
            fwd.fail(statement.pos, f"{layer.name} returns {shown}: {len(names)} values, not "
                     f"{len(statement.targets)}", f"write `{shown} = {layer.name}(...)`, or "
                     "one name for the output sequence")
        nodes = recurrent_call(fwd, layer, statement.value, states=True)
        for target, node in zip(statement.targets, nodes, strict=True):
            fwd.bind_name(statement, target, node)

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        return _recurrent(ctx, layer, shapes), FLOAT

    def params(self, values):
        gates = {"rnn": 1, "lstm": 4, "gru": 3}[self.name]
        directions = 2 if values["bidirectional"] else 1
        hidden, count = values["hidden"], 0
        for i in range(values["layers"]):
            fan_in = values["in_"] if i == 0 else hidden * directions
            per_direction = gates * hidden * (fan_in + hidden)
            per_direction += 2 * gates * hidden if values["bias"] else 0
            count += directions * per_direction
        return count

    def flops(self, values, shapes):
        x = shapes[0]
        steps, batch = (x[1], x[0]) if values["batch_first"] else (x[0], x[1])
        gates = {"rnn": 1, "lstm": 4, "gru": 3}[self.name]
        directions = 2 if values["bidirectional"] else 1
        hidden, count = values["hidden"], 0
        for i in range(values["layers"]):
            fan_in = values["in_"] if i == 0 else hidden * directions
            count += directions * 2 * steps * batch * gates * hidden * (fan_in + hidden)
        return count


@op
class RNNOp(_RecurrentOp):
    name, schema, order = "rnn", RNN, 130
    example = Example("rnn: {op: rnn, in: n_embd, hidden: 8}", {"n_embd": 16})


@op
class LSTMOp(_RecurrentOp):
    name, schema, order = "lstm", LSTM, 140
    example = Example("lstm: {op: lstm, in: n_embd, hidden: 8, layers: 2}", {"n_embd": 16})


@op
class GRUOp(_RecurrentOp):
    name, schema, order = "gru", GRU, 150
    example = Example("gru: {op: gru, in: n_embd, hidden: 8, bidirectional: true}",
                      {"n_embd": 16})


class _RecurrentKind(Kind):
    init_params = ("weight_ih_l*", "weight_hh_l*", "bias_ih_l*", "bias_hh_l*")
    init = torch_init = {p: "uniform(1 / sqrt(hidden))" for p in init_params}  # PyTorch's

    def init_lines(self, sub, arg):
        a = sub.args
        extra = keywords(a, {"layers": ("num_layers", 1), "bias": ("bias", True),
                             "batch_first": ("batch_first", False), "dropout": ("dropout", 0),
                             "bidirectional": ("bidirectional", False)}, arg)
        if a.get("nonlinearity", "tanh") != "tanh":
            from archcc.codegen import safe_text

            extra += f", nonlinearity={safe_text.literal(a['nonlinearity'])}"
        return [f"self.{sub.name} = {_CLASSES[self.name]}({arg(a['in'])}, "
                f"{arg(a['hidden'])}{extra})"]

    def state(self, sub, value):
        """torch's names: weight_ih_l0, weight_hh_l0, bias_*, ``_reverse`` per direction."""
        a, out = sub.args, []
        kinds = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if value(a["bias"]) else ())
        for layer in range(value(a["layers"])):
            for suffix in ("", "_reverse") if value(a["bidirectional"]) else ("",):
                out += [f"{k}_l{layer}{suffix}" for k in kinds]
        return out


@kind
class RNNKind(_RecurrentKind):
    name = "rnn"


@kind
class LSTMKind(_RecurrentKind):
    name = "lstm"


@kind
class GRUKind(_RecurrentKind):
    name = "gru"


# ----------------------------------------------------------------------------- call rules


def state_shape(layer, batch: sympy.Expr) -> Shape:
    """(layers * directions, B, hidden): the shape of h0, c0, h and c."""
    directions = 2 if layer.spec.bidirectional else 1
    return (layer.dim("layers") * directions, batch, layer.dim("hidden"))


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


def recurrent_call(fwd, layer, e: Call, states: bool = False) -> list[str]:
    """Nodes holding out, h (and c); with ``states=False`` only the output is meant."""
    spec = layer.spec
    unknown = sorted({k for k, _ in e.kwargs} - {"lengths"})
    if unknown:
        fwd.fail(e.pos, f"{layer.name}: unknown keyword(s) {unknown}",
                  "the only keyword is lengths= (int64 lengths of a padded batch)")
    if not e.args:
        fwd.fail(e.pos, f"{layer.name}() needs at least one input")
    args = [fwd.expr(a) for a in e.args]
    lengths = next((fwd.expr(v) for k, v in e.kwargs if k == "lengths"), None)
    packed = lengths is not None and spec.lengths == "packed"
    if lengths is not None and not packed and states:
        fwd.fail(e.pos, f"{layer.name} has lengths: mask, which gives no final states",
                  "use lengths: packed for exact h (and c), or take only the output")
    x = args[0]
    seq = fwd.node("pack_padded", [x, lengths], e.pos, var="packed",
                    batch_first=spec.batch_first) if packed else x
    call = fwd.node("call", [seq, *args[1:]], e.pos, var=layer.name, target=layer.name,
                     kwargs=(), repeat=False, ports=ports(layer.op),
                     state_pair=layer.op == "lstm" and len(args) > 1)
    outs = [fwd.node("port", [call], e.pos, var=name, index=i)
            for i, name in enumerate(ports(layer.op))]
    if packed:
        outs[0] = fwd.node("pad_packed", [outs[0], x], e.pos, var="out",
                            batch_first=spec.batch_first)
    elif lengths is not None:
        mask = fwd.node("length_mask", [lengths, x], e.pos, var="mask",
                         batch_first=spec.batch_first)
        outs[0] = fwd.node("mul", [outs[0], mask], e.pos)
    return outs
