"""The body of an ``rnn_decoder`` class: teacher forcing, ``step``, ``attend``, ``greedy``.

Every line is chosen here from the class's facets (see archcc/ops/rnn_decoder), so the
template stays a plain class layout. For ``score: additive, attend: previous`` (Bahdanau)::

    def step(self, token, state, memory, keys, mask=None):
        (h,) = state
        y = self.drop(self.embed(token))  # (B, emb)
        context, weights = self.attend(h, keys, memory, mask)  # (B, memory), (B, S)
        h = self.cell(torch.cat([y, context], dim=-1), h)  # (B, hidden)
        logits = self.out(self.drop(torch.cat([h, context, y], dim=-1)))  # (B, vocab)
        return logits, (h,), weights
"""

from __future__ import annotations

from dataclasses import dataclass

from archcc.codegen.forward import Line


@dataclass
class DecoderBody:
    """What class_view needs besides ``__init__``: forward's parameters and lines, methods."""

    forward_params: str
    forward_lines: list[Line]
    methods: list[tuple[str, str, str, list[Line], str]]  # name, doc, params, lines, decorator


def _states(f: dict) -> list[str]:
    """Names of the decoder state tuple: the cell's state, then Luong's fed output."""
    return (["h", "c"] if f["cell"] == "lstm" else ["h"]) + (["feed"] if f["input_feed"]
                                                            else [])


def _initial(f: dict) -> list[str]:
    return ["h0", "c0"] if f["cell"] == "lstm" else ["h0"]


def _tuple(names: list[str]) -> str:
    return f"({names[0]},)" if len(names) == 1 else f"({', '.join(names)})"


def decoder_body(f: dict) -> DecoderBody:
    """Forward and methods for one facet combination (``module.facets``)."""
    initial = ", ".join(_initial(f))
    forward = [
        Line(f"state, keys = self.start(memory, {initial})"),
        Line("logits = []"),
        Line("for t in range(tgt.shape[1]):", "teacher forcing: step t reads target token t"),
        Line("step_logits, state, _ = self.step(tgt[:, t], state, memory, keys, mask)",
             indent=1),
        Line("logits.append(step_logits)", indent=1),
        Line("return torch.stack(logits, dim=1)", "(B, T, vocab)"),
    ]
    methods = [
        ("start", "The state before the first token; the memory's keys, projected once.",
         f"memory, {initial}", _start(f), ""),
        ("attend", _attend_doc(f), "query, keys, memory, mask=None", _attend(f), ""),
        ("step", "Token ids (B,) and the state -> logits (B, vocab), state, weights (B, S).",
         "token, state, memory, keys, mask=None", _step(f), ""),
        ("greedy", "Greedy ids (B, 1 + steps) from start_token; rows after EOS stay EOS.",
         f"memory, {initial}, mask=None, max_len=50, start_token={f['start_token']}, "
         f"eos_token={f['eos_token']}", _greedy(f), "torch.no_grad()"),
    ]
    return DecoderBody(f"tgt, memory, {initial}, mask=None", forward, methods)


def _start(f: dict) -> list[Line]:
    keys = "memory" if f["score"] == "dot" else "self.attn_keys(memory)"
    state = _initial(f) + (["h0.new_zeros(h0.shape)"] if f["input_feed"] else [])
    return [Line(f"return {_tuple(state)}, {keys}")]


def _attend_doc(f: dict) -> str:
    formula = {"additive": "v^T tanh(W_q q + W_k h_j)", "general": "q^T W h_j",
               "dot": "q^T h_j"}[f["score"]]
    return f"{formula}: context (B, memory), weights (B, S), mask True = keep."


def _attend(f: dict) -> list[Line]:
    if f["score"] == "additive":
        score = Line("scores = self.attn_v(torch.tanh(self.attn_query(query)[:, None] + keys))"
                     ".squeeze(-1)", "(B, S)")
    else:
        score = Line("scores = torch.bmm(keys, query[:, :, None]).squeeze(-1)", "(B, S)")
    return [
        score,
        Line("if mask is not None:"),
        Line('scores = scores.masked_fill(~mask, float("-inf"))', indent=1),
        Line("weights = scores.softmax(dim=-1)", "(B, S)"),
        Line("context = torch.bmm(weights[:, None], memory).squeeze(1)", "(B, memory)"),
        Line("return context, weights"),
    ]


def _cell(f: dict, x: str) -> Line:
    if f["cell"] == "lstm":
        return Line(f"h, c = self.cell({x}, (h, c))", "(B, hidden)")
    return Line(f"h = self.cell({x}, h)", "(B, hidden)")


def _step(f: dict) -> list[Line]:
    states = _states(f)
    lines = [Line(f"{', '.join(states)} = state" if len(states) > 1 else "(h,) = state"),
             Line("y = self.drop(self.embed(token))", "(B, emb)")]
    attend = Line("context, weights = self.attend(h, keys, memory, mask)",
                  "(B, memory), (B, S)")
    if f["attend"] == "previous":
        lines += [attend, _cell(f, "torch.cat([y, context], dim=-1)"),
                  Line("logits = self.out(self.drop(torch.cat([h, context, y], dim=-1)))",
                       "(B, vocab)")]
        return [*lines, Line(f"return logits, {_tuple(states)}, weights")]
    lines += [_cell(f, "torch.cat([y, feed], dim=-1)" if f["input_feed"] else "y"), attend,
              Line("attended = torch.tanh(self.combine(torch.cat([context, h], dim=-1)))",
                   "(B, hidden)"),
              Line("logits = self.out(self.drop(attended))", "(B, vocab)")]
    next_state = [s if s != "feed" else "attended" for s in states]
    return [*lines, Line(f"return logits, {_tuple(next_state)}, weights")]


def _greedy(f: dict) -> list[Line]:
    initial = ", ".join(_initial(f))
    return [
        Line(f"state, keys = self.start(memory, {initial})"),
        Line("token = torch.full((memory.shape[0],), start_token, dtype=torch.long, "
             "device=memory.device)"),
        Line("tokens, done = [token], torch.zeros_like(token, dtype=torch.bool)"),
        Line("for _ in range(max_len):"),
        Line("logits, state, _ = self.step(token, state, memory, keys, mask)", indent=1),
        Line("token = logits.argmax(dim=-1).masked_fill(done, eos_token)", indent=1),
        Line("tokens.append(token)", indent=1),
        Line("done = done | (token == eos_token)", indent=1),
        Line("if done.all():", indent=1),
        Line("break", indent=2),
        Line("return torch.stack(tokens, dim=1)", "(B, 1 + steps)"),
    ]


# ------------------------------------------------------------- the model: greedy_decode()
