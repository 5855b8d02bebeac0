"""``op: rnn_decoder``: an attentive recurrent decoder, stepped one target token at a time.

A recurrent decoder that attends is a loop with state, which a forward DAG cannot spell, so
the class is one ``rnn_decode`` node here and its body is written by
:mod:`.body` from the facets::

    decoder: {op: rnn_decoder, cell: gru, vocab: tgt_vocab, emb: emb, hidden: hidden,
              memory: 2 * hidden, score: additive, attend: previous}
        -> self.decoder = AdditiveGRUDecoder(config.tgt_vocab, config.emb, ...)
    logits = decoder(tgt, memory, h0)    with tgt (B, T), memory (B, S, 2 * hidden)
        -> logits (B, T, tgt_vocab), by teacher forcing

The facets are the ones the literature varies (Bahdanau et al. 2015, Luong et al. 2015):
the cell (GRU, LSTM), the score (additive, general, dot), whether the previous or the new
state queries the memory, and Luong's input feeding.
"""

from __future__ import annotations

from typing import Literal

from archcc.ir.builder import E, dims
from archcc.ir.graph import ModuleIR, Submodule, add_node, new_graph
from archcc.ir.params import symbol
from archcc.ir.shapes import BOOL, FLOAT, INT, DimContext, Shape, ShapeError, fmt, register_rule
from archcc.ops import Example, Kind, Op, dropout, embedding, kind, linear, op
from archcc.ops.base import field_diag
from archcc.parser.fields import Scalar, Size, Strict

OP = "rnn_decoder"


class RNNDecoder(Strict):
    """A recurrent decoder that attends over an encoder memory at every step (seq2seq).

    Called as `decoder(tgt, memory, h0)` (`h0, c0` for an LSTM cell), optionally with
    `mask=keep` (bool (B, S), True = attend); returns logits (B, T, vocab) by teacher
    forcing. The generated class also has `step()` and `greedy()` for decoding.
    Bahdanau et al. 2015: `score: additive, attend: previous`; Luong et al. 2015:
    `score: general` or `dot`, `attend: current`, `input_feed: true`."""

    op: Literal["rnn_decoder"]
    cell: Literal["gru", "lstm"] = "gru"
    """`nn.GRUCell` or `nn.LSTMCell`, stepped explicitly (the loop needs per-step access)."""
    vocab: Size
    """Target vocabulary: rows of the target embedding and width of the logits."""
    emb: Size
    """Width of the target embedding."""
    hidden: Size
    """Decoder state width."""
    memory: Size
    """Width of each encoder output (2 * hidden for a bidirectional encoder)."""
    score: Literal["additive", "general", "dot"] = "additive"
    """Attention scores: additive v^T tanh(W_q s + W_k h) (Bahdanau), general s^T W h or
    dot s^T h (Luong; dot needs memory == hidden)."""
    attn_dim: Size | None = None
    """Width of the additive score's hidden layer (default: hidden)."""
    attend: Literal["previous", "current"] = "previous"
    """`previous`: the previous state queries the memory and the context is fed into the
    cell (Bahdanau); `current`: the new state queries it and tanh(W_c [context; state])
    makes the output (Luong)."""
    input_feed: bool = False
    """Luong's input feeding: the previous attentional output joins the next cell input
    (needs `attend: current`)."""
    dropout: Scalar = 0.0
    """Dropout on the target embedding and before the output projection."""
    start_token: int = 1
    """Default first token of `greedy()` (BOS)."""
    eos_token: int = 2
    """Default end token of `greedy()`: a finished sequence is padded with it."""


@op
class RNNDecoderOp(Op):
    name, schema, order, wrappable = OP, RNNDecoder, 180, False
    sizes, optional_sizes = ("vocab", "emb", "hidden", "memory"), ("attn_dim",)
    scalars, arity, keywords = ("dropout",), (3, 4), ("mask",)
    example = Example("decoder: {op: rnn_decoder, cell: gru, vocab: 20, emb: 8, hidden: 16, "
                      "memory: 16, score: additive}", {},
                      {"tgt": "[B, T] int64", "memory": "[B, S, 16]", "h0": "[B, 16]"},
                      "decoder(tgt, memory, h0)", {"T": 5, "S": 7})

    def check(self, scope, layer):
        check_facets(scope, layer)

    def submodules(self, layer):
        s = layer.sizes
        args = {key: s[key] for key in self.sizes}
        if layer.spec.score == "additive":
            args["attn_dim"] = s.get("attn_dim", s["hidden"])
        args["dropout"] = s["dropout"]
        return [Submodule(layer.name, "class", args, layer.loc)]

    def usage(self, layer):
        states = "h0, c0" if layer.spec.cell == "lstm" else "h0"
        return f"call it as {layer.name}(tgt, memory, {states}) or with mask=keep"

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        return call_shape(ctx, layer, shapes, dtypes, kwargs)

    def lower(self, layer, kwargs):
        return lower(layer.spec, kwargs)

    def body(self, facets: dict):
        """The class body codegen writes from the facets (a stepped loop, not a graph)."""
        from archcc.ops.rnn_decoder.body import decoder_body

        return decoder_body(facets)

    def params(self, values):
        vocab, emb, hidden, memory = (values[k] for k in ("vocab", "emb", "hidden", "memory"))
        gates = 4 if values["cell"] == "lstm" else 3
        attend, score = values["attend"], values["score"]
        cell_in = emb + memory if attend == "previous" else \
            emb + hidden if values["input_feed"] else emb
        count = vocab * emb + gates * hidden * (cell_in + hidden) + 2 * gates * hidden
        if score == "additive":
            attn = values.get("attn_dim") or hidden
            count += hidden * attn + memory * attn + attn + attn
        elif score == "general":
            count += memory * hidden
        if attend == "current":
            count += (memory + hidden) * hidden + hidden * vocab + vocab
        else:
            count += (hidden + memory + emb) * vocab + vocab
        return count

    def flops(self, values, shapes):
        batch, steps = shapes[0]
        source = shapes[1][1]
        vocab, emb, hidden, memory = (values[k] for k in ("vocab", "emb", "hidden", "memory"))
        gates = 4 if values["cell"] == "lstm" else 3
        attend, score = values["attend"], values["score"]
        cell_in = emb + memory if attend == "previous" else \
            emb + hidden if values["input_feed"] else emb
        per_step = gates * hidden * (cell_in + hidden) + source * memory  # cell, context
        if score == "additive":  # keys projected once; per step the query and v
            attn = values.get("attn_dim") or hidden
            per_step += hidden * attn + source * attn
            keys = source * memory * attn
        else:  # scores against keys of width hidden (projected once for general)
            per_step += source * hidden
            keys = source * memory * hidden if score == "general" else 0
        per_step += (memory + hidden) * hidden + hidden * vocab if attend == "current" else \
            (hidden + memory + emb) * vocab
        return 2 * batch * (steps * per_step + keys)


class _CellKind(Kind):
    torch_class = ""
    init_params = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    init = torch_init = {p: "uniform(1 / sqrt(hidden))" for p in init_params}  # PyTorch's

    def state(self, sub, value):
        return ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]

    def init_lines(self, sub, arg):
        return [f"self.{sub.name} = {self.torch_class}({arg(sub.args['in'])}, "
                f"{arg(sub.args['hidden'])})"]


@kind
class GRUCellKind(_CellKind):
    name, torch_class = "gru_cell", "nn.GRUCell"


@kind
class LSTMCellKind(_CellKind):
    name, torch_class = "lstm_cell", "nn.LSTMCell"


def check_facets(scope, layer) -> None:
    """Facet combinations that cannot work, reported at the field that chose them."""
    spec = layer.spec
    hidden, memory = scope.value(layer.sizes["hidden"]), scope.value(layer.sizes["memory"])
    if spec.score == "dot" and hidden != memory:
        scope.errors.append(field_diag(scope, layer, "score", f"score: dot needs memory ({memory}) "
                                  f"== hidden ({hidden})", "use score: general, which learns "
                                  "a (hidden, memory) map"))
    if spec.input_feed and spec.attend != "current":
        scope.errors.append(field_diag(scope, layer, "input_feed", "input_feed feeds the "
                                  "attentional output of the previous step, which only "
                                  "attend: current makes",
                                  "set attend: current (Luong), or drop input_feed"))
    if spec.attn_dim is not None and spec.score != "additive":
        scope.errors.append(field_diag(scope, layer, "attn_dim", f"attn_dim sizes the additive "
                                  f"score; score: {spec.score} has none", "remove attn_dim"))


def call_shape(ctx: DimContext, layer, shapes: list[Shape], dtypes: list[str],
               kwargs: tuple[str, ...]) -> tuple[Shape, str]:
    """``decoder(tgt, memory, h0[, c0], mask=keep)`` -> logits (B, T, vocab)."""
    states = ("h0", "c0") if layer.spec.cell == "lstm" else ("h0",)
    usage = f"call it as {layer.name}(tgt, memory, {', '.join(states)}) or with mask=keep"
    if set(kwargs) - {"mask"}:
        raise ShapeError(f"{layer.name}: unknown keyword(s) {sorted(set(kwargs) - {'mask'})}",
                         usage)
    positional = len(shapes) - len(kwargs)
    if positional != 2 + len(states):
        raise ShapeError(f"{layer.name} takes {2 + len(states)} positional inputs (tgt, "
                         f"memory, {', '.join(states)}), got {positional}", usage)
    tgt, memory = shapes[0], shapes[1]
    if dtypes[0] != INT or len(tgt) != 2:
        raise ShapeError(f"{layer.name} needs int64 target ids (B, T), got {dtypes[0]} "
                         f"{fmt(tgt)}", usage)
    batch = tgt[0]
    _expect(ctx, layer, "memory", memory, (batch, memory[1] if len(memory) == 3 else None,
                                           layer.dim("memory")))
    for name, state in zip(states, shapes[2:positional], strict=True):
        _expect(ctx, layer, name, state, (batch, layer.dim("hidden")),
                "an encoder's final state is (layers * directions, B, hidden): take one "
                "direction, e.g. h[1], and map it with a linear bridge if widths differ")
    if kwargs:
        _expect(ctx, layer, "mask", shapes[-1], (batch, memory[1]))
    return (batch, tgt[1], layer.dim("vocab")), FLOAT


def _expect(ctx: DimContext, layer, name: str, got: Shape, want: tuple,
            hint: str | None = None) -> None:
    if len(got) != len(want) or not all(w is None or ctx.equal(g, w)
                                        for g, w in zip(got, want, strict=True)):
        shown = fmt(tuple("S" if w is None else w for w in want))
        raise ShapeError(f"{layer.name}: {name} must be {shown}, got {fmt(got)}", hint)


# ------------------------------------------------------------------------------ the class


def _linear(name: str, fan_in: str, fan_out: str, bias: bool = True) -> Submodule:
    return linear.submodule(name, E(fan_in), E(fan_out), bias)


def _submodules(cell: str, score: str, attend: str, input_feed: bool) -> dict[str, Submodule]:
    subs = {"embed": embedding.submodule("embed", E("vocab"), E("emb"))}
    if score == "additive":
        subs["attn_query"] = _linear("attn_query", "hidden", "attn_dim", bias=False)
        subs["attn_keys"] = _linear("attn_keys", "memory", "attn_dim")
        subs["attn_v"] = _linear("attn_v", "attn_dim", "1", bias=False)
    elif score == "general":
        subs["attn_keys"] = _linear("attn_keys", "memory", "hidden", bias=False)
    cell_in = {"previous": "emb + memory", "current": "emb + hidden" if input_feed else "emb"}
    subs["cell"] = Submodule("cell", f"{cell}_cell", {"in": E(cell_in[attend]),
                                                       "hidden": E("hidden")})
    if attend == "current":
        subs["combine"] = _linear("combine", "memory + hidden", "hidden", bias=False)
        subs["out"] = _linear("out", "hidden", "vocab")
    else:
        subs["out"] = _linear("out", "hidden + memory + emb", "vocab")
    subs["drop"] = dropout.submodule("drop", E("dropout"))
    return subs


def lower(spec, kwargs: tuple[str, ...]) -> ModuleIR:
    """The lowered class of one facet combination; its body comes from views_decoder."""
    cell, score, attend, feed = spec.cell, spec.score, spec.attend, spec.input_feed
    name = f"{score.capitalize()}{cell.upper()}Decoder"
    g = new_graph(name)
    shapes = {"tgt": (dims("B, T"), INT), "memory": (dims("B, S, memory"), FLOAT),
              "h0": (dims("B, hidden"), FLOAT)}
    if cell == "lstm":
        shapes["c0"] = shapes["h0"]
    if "mask" in kwargs:
        shapes["mask"] = (dims("B, S"), BOOL)
    inputs = []
    for arg, (shape, dtype) in shapes.items():
        node = add_node(g, "input", var=arg, name=arg)
        g.nodes[node].update(shape=shape, dtype=dtype)
        inputs.append(node)
    g.graph["inputs"] = inputs
    logits = add_node(g, "rnn_decode", inputs, var="logits", stmt=1)
    g.graph["output"] = add_node(g, "output", [logits], stmt=1)
    ctor = [("vocab", None), ("emb", None), ("hidden", None), ("memory", None)]
    ctor += [("attn_dim", None)] if score == "additive" else []
    facets = {"template": OP, "greedy": True, "cell": cell, "score": score, "attend": attend,
              "input_feed": feed, "start_token": spec.start_token,
              "eos_token": spec.eos_token}
    return ModuleIR(name, "lowered", g, _submodules(cell, score, attend, feed),
                    ctor_args=[*ctor, ("dropout", 0.0)], doc=_doc(facets),
                    signature=(OP, cell, score, attend, feed, spec.start_token,
                               spec.eos_token, "mask" in kwargs),
                    facets=facets)


def _doc(f: dict) -> str:
    scores = {"additive": "additive (Bahdanau) attention", "general": "general (Luong) "
              "attention", "dot": "dot-product (Luong) attention"}
    when = "the previous state" if f["attend"] == "previous" else "the new state"
    feed = ", input feeding" if f["input_feed"] else ""
    return f"{f['cell'].upper()} decoder with {scores[f['score']]} from {when}{feed}."


@register_rule("rnn_decode")
def rnn_decode_shape(ctx: DimContext, attrs: dict, shapes, dtypes) -> tuple[Shape, str]:
    """Shape rule of the class's one node: (B, T) target ids -> (B, T, vocab) logits."""
    return (*shapes[0], symbol("vocab")), FLOAT
