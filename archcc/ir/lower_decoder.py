"""``op: rnn_decoder``: an attentive recurrent decoder, stepped one target token at a time.

A recurrent decoder that attends is a loop with state, which a forward DAG cannot spell, so
the class is one ``rnn_decode`` node here and its body is written by
:mod:`archcc.codegen.views_decoder` from the facets::

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

from archcc.diagnostics import Diagnostic
from archcc.ir.graph import ModuleIR, Submodule, add_node, new_graph
from archcc.ir.params import symbol
from archcc.ir.shapes import BOOL, FLOAT, INT, DimContext, Shape, ShapeError, fmt
from archcc.parser.expr import Expr, Num, parse_expr

OP = "rnn_decoder"
SIZES = ("vocab", "emb", "hidden", "memory")
OPTIONAL_SIZES = ("attn_dim",)
SCALARS = ("dropout",)
_B, _T, _S = symbol("B"), symbol("T"), symbol("S")


def check_facets(scope, layer) -> None:
    """Facet combinations that cannot work, reported at the field that chose them."""
    spec = layer.spec
    hidden, memory = scope.value(layer.sizes["hidden"]), scope.value(layer.sizes["memory"])
    if spec.score == "dot" and hidden != memory:
        scope.errors.append(_diag(scope, layer, "score", f"score: dot needs memory ({memory}) "
                                  f"== hidden ({hidden})", "use score: general, which learns "
                                  "a (hidden, memory) map"))
    if spec.input_feed and spec.attend != "current":
        scope.errors.append(_diag(scope, layer, "input_feed", "input_feed feeds the "
                                  "attentional output of the previous step, which only "
                                  "attend: current makes",
                                  "set attend: current (Luong), or drop input_feed"))
    if spec.attn_dim is not None and spec.score != "additive":
        scope.errors.append(_diag(scope, layer, "attn_dim", f"attn_dim sizes the additive "
                                  f"score; score: {spec.score} has none", "remove attn_dim"))


def _diag(scope, layer, key: str, message: str, hint: str) -> Diagnostic:
    where = (*layer.path, key)
    loc = scope.loaded.where.key(where) if key in layer.spec.model_fields_set else layer.loc
    return Diagnostic(loc, ".".join(where), message, hint)


def submodule_args(layer) -> dict[str, Expr]:
    """The generated class's constructor arguments, in ``ctor_args`` order."""
    s = layer.sizes
    args = {key: s[key] for key in SIZES}
    if layer.spec.score == "additive":
        args["attn_dim"] = s.get("attn_dim", s["hidden"])
    args["dropout"] = s["dropout"]
    return args


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


def _E(text: str) -> Expr:  # noqa: N802 - reads like a literal
    return parse_expr(text)


def _linear(name: str, fan_in: str, fan_out: str, bias: bool = True) -> Submodule:
    return Submodule(name, "linear", {"in": _E(fan_in), "out": _E(fan_out), "bias": Num(bias)})


def _submodules(cell: str, score: str, attend: str, input_feed: bool) -> dict[str, Submodule]:
    subs = {"embed": Submodule("embed", "embedding", {"num": _E("vocab"), "dim": _E("emb")})}
    if score == "additive":
        subs["attn_query"] = _linear("attn_query", "hidden", "attn_dim", bias=False)
        subs["attn_keys"] = _linear("attn_keys", "memory", "attn_dim")
        subs["attn_v"] = _linear("attn_v", "attn_dim", "1", bias=False)
    elif score == "general":
        subs["attn_keys"] = _linear("attn_keys", "memory", "hidden", bias=False)
    cell_in = {"previous": "emb + memory", "current": "emb + hidden" if input_feed else "emb"}
    subs["cell"] = Submodule("cell", f"{cell}_cell", {"in": _E(cell_in[attend]),
                                                       "hidden": _E("hidden")})
    if attend == "current":
        subs["combine"] = _linear("combine", "memory + hidden", "hidden", bias=False)
        subs["out"] = _linear("out", "hidden", "vocab")
    else:
        subs["out"] = _linear("out", "hidden + memory + emb", "vocab")
    subs["drop"] = Submodule("drop", "dropout", {"p": _E("dropout")})
    return subs


def decoder(spec, kwargs: tuple[str, ...]) -> ModuleIR:
    """The lowered class of one facet combination; its body comes from views_decoder."""
    cell, score, attend, feed = spec.cell, spec.score, spec.attend, spec.input_feed
    name = f"{score.capitalize()}{cell.upper()}Decoder"
    g = new_graph(name)
    shapes = {"tgt": ((_B, _T), INT), "memory": ((_B, _S, symbol("memory")), FLOAT),
              "h0": ((_B, symbol("hidden")), FLOAT)}
    if cell == "lstm":
        shapes["c0"] = shapes["h0"]
    if "mask" in kwargs:
        shapes["mask"] = ((_B, _S), BOOL)
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
    facets = {"template": OP, "cell": cell, "score": score, "attend": attend,
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


def rnn_decode_shape(ctx: DimContext, attrs: dict, shapes, dtypes) -> tuple[Shape, str]:
    """Shape rule of the class's one node: (B, T) target ids -> (B, T, vocab) logits."""
    return (*shapes[0], symbol("vocab")), FLOAT
