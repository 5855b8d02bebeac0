"""The body of a ``moe`` class: routing, the grouped dispatch, one expert, and the loss.

Every line is chosen here from the class's facets (see archcc/ops/moe), so the template
stays a plain class layout. For Mixtral's facets (SwiGLU experts, softmax then top-k,
renormalised)::

    def forward(self, x):
        tokens = x.reshape(-1, x.shape[-1])  # (N, C)
        logits = self.router(tokens)  # (N, E)
        self.router_logits = logits if self.training else None  # for load_balancing_loss
        weights, chosen = self.route(logits)  # (N, k)
        y = (self.experts(tokens, chosen) * weights[..., None]).sum(dim=1)  # (N, C)
        return y.to(x.dtype).view(x.shape)
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

from archcc.codegen.forward import Line
from archcc.codegen.render import ATOM, render_op


@dataclass
class MoEBody:
    """What class_view needs besides the submodules: forward, methods, extra init lines."""

    forward_params: str
    forward_lines: list[Line]
    methods: list[tuple[str, str, str, list[Line], str]]  # name, doc, params, lines, decorator
    init_lines: list[str] = field(default_factory=list)


def _doc(summary: str, detail: str = "") -> str:
    """A method docstring: the summary line, then the detail wrapped to the file's width."""
    return "\n".join([summary, *textwrap.wrap(detail, 88)]) if detail else summary


def _act(f: dict, text: str) -> str:
    """``F.silu(gate)``: the experts' activation, as the ffn op writes it."""
    return render_op(f["act"], {}, [(text, ATOM)], str, [])[0]


def moe_body(f: dict) -> MoEBody:
    """Forward and methods for one facet combination (``module.facets``)."""
    forward = [
        Line("tokens = x.reshape(-1, x.shape[-1])", "(N, C)"),
        Line("logits = self.router(tokens)", "(N, E)"),
        Line("self.router_logits = logits if self.training else None",
             "for load_balancing_loss"),
        Line("weights, chosen = self.route(logits)", "(N, k)"),
        Line("y = (self.experts(tokens, chosen) * weights[..., None]).sum(dim=1)", "(N, C)"),
    ]
    if f["shared"]:
        shared = "self.shared(tokens)"
        if f["shared_gate"]:
            shared = f"torch.sigmoid(self.shared_gate(tokens)) * {shared}"
        forward.append(Line(f"y = y + {shared}", "(N, C)"))
    forward.append(Line("return y.to(x.dtype).view(x.shape)"))
    weights = "gate_up" if f["gated"] else "up"
    methods = [
        ("route", *_route_doc(f), "logits", _route(f), ""),
        ("experts", _doc("Each token (N, C) through its k chosen experts: (N, k, C).",
                         "The N*k (token, expert) pairs are grouped by expert, so each "
                         "expert runs once, on its own tokens only."), "x, chosen",
         _experts(), ""),
        ("counts", _doc("Pairs per expert: the sizes of the groups.",
                        "Counted into a fixed (E,) tensor, not by bincount, whose length "
                        "depends on the values: torch.export traces this. A meta tensor "
                        "(archcc summary, budget) has no values; there the pairs are split "
                        "evenly, which keeps the FLOPs of k experts per token."), "chosen",
         _counts(), ""),
        ("expert", _expert_doc(f), "e, x", _expert(f), ""),
        ("reset_parameters", _doc("Draws each expert's weights as nn.Linear draws its own.",
                                  "U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in being the "
                                  "last dim."), "", [
             Line(f"for weight in (self.{weights}, self.down):"),
             Line("bound = weight.shape[-1] ** -0.5", indent=1),
             Line("nn.init.uniform_(weight, -bound, bound)", indent=1)], ""),
    ]
    methods.append(("stack_experts", _doc(
        "A load_state_dict pre-hook: one tensor per expert loads into the stacked weights.",
        "Keys experts.{e}.gate/up/down.weight (hub safetensors files keep each expert's "
        "projections apart; the spec's renames bring them here) become gate_up and down."),
        "module, state_dict, prefix, *args", _stack(f), ""))
    init = ["self.router_logits = None  # (N, E) of the last training forward",
            "self.reset_parameters()",
            "self.register_load_state_dict_pre_hook(self.stack_experts)"]
    return MoEBody("x", forward, methods, init)


def _route_doc(f: dict) -> tuple[str]:
    if f["routing"] == "topk_softmax":
        how = "The k largest logits, then a softmax over them (in float32)."
    else:
        how = "A softmax over all experts (in float32), then the k largest"
        how += ", renormalised to sum to 1." if f["normalize"] else ", as they are."
    return (_doc("Each token's top_k experts (N, k) and their weights, from logits (N, E).",
                 how),)


def _route(f: dict) -> list[Line]:
    if f["routing"] == "topk_softmax":
        return [Line("top, chosen = logits.topk(self.top_k, dim=-1)", "(N, k)"),
                Line("return top.float().softmax(dim=-1), chosen")]
    lines = [Line("probs = logits.float().softmax(dim=-1)", "(N, E)")]
    if not f["normalize"]:
        return [*lines, Line("return probs.topk(self.top_k, dim=-1)", "(N, k) each")]
    return [*lines, Line("weights, chosen = probs.topk(self.top_k, dim=-1)", "(N, k)"),
            Line("return weights / weights.sum(dim=-1, keepdim=True), chosen")]


def _experts() -> list[Line]:
    return [
        Line("order = chosen.flatten().argsort(stable=True)", "(N*k,): pairs grouped by expert"),
        Line("grouped = x[order // self.top_k]", "(N*k, C): the token of each pair"),
        Line("parts = grouped.split(self.counts(chosen))", "one group per expert, maybe empty"),
        Line("outs = [self.expert(e, part) for e, part in enumerate(parts)]", "(n_e, C) each"),
        Line("y = torch.empty_like(grouped)"),
        Line("y[order] = torch.cat(outs)", "back to (token, slot) order"),
        Line("return y.unflatten(0, chosen.shape)", "(N, k, C)"),
    ]


def _counts() -> list[Line]:
    return [
        Line("if chosen.is_meta:"),
        Line("pairs, n = chosen.numel(), self.n_experts", indent=1),
        Line("return [pairs // n + int(e < pairs % n) for e in range(n)]", indent=1),
        Line("flat = chosen.flatten()"),
        Line("counts = flat.new_zeros(self.n_experts).index_add_(0, flat, torch.ones_like(flat))",
             "(E,)"),
        Line("return counts.tolist()"),
    ]


def _expert_doc(f: dict) -> str:
    formula = f"down({f['act']}(gate(x)) * up(x))" if f["gated"] else \
        f"down({f['act']}(up(x)))"
    return f"Expert e on its n tokens x (n, C): {formula}."


def _expert(f: dict) -> list[Line]:
    if f["gated"]:
        return [Line("gate, up = F.linear(x, self.gate_up[e]).chunk(2, dim=-1)", "(n, hidden)"),
                Line(f"return F.linear({_act(f, 'gate')} * up, self.down[e])", "(n, C)")]
    return [Line(f"h = {_act(f, 'F.linear(x, self.up[e])')}", "(n, hidden)"),
            Line("return F.linear(h, self.down[e])", "(n, C)")]


def _stack(f: dict) -> list[Line]:
    first = "gate_up" if f["gated"] else "up"
    lines = [
        Line('key = prefix + "experts.{}.{}.weight"'),
        Line('if key.format(0, "down") not in state_dict:'),
        Line("return", indent=1),
        Line("def take(name):", "(E, out, in): expert e's tensor at row e"),
        Line("return torch.stack([state_dict.pop(key.format(e, name)) "
             "for e in range(self.n_experts)])", indent=1),
    ]
    up = 'torch.cat([take("gate"), take("up")], dim=1)' if f["gated"] else 'take("up")'
    return [*lines, Line(f"state_dict[prefix + {first!r}] = {up}", "(E, 2*hidden, C)"
                         if f["gated"] else "(E, hidden, C)"),
            Line('state_dict[prefix + "down"] = take("down")', "(E, C, hidden)")]


LOAD_BALANCING_LOSS = '''\
def load_balancing_loss(
    model: nn.Module, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """The Switch Transformer auxiliary loss over every MoE layer of the last training forward.

    E * sum_e f_e * P_e, where f_e is the share of (token, slot) picks that went to expert e
    and P_e the mean router probability of e, over all MoE layers and tokens together;
    positions where ``attention_mask`` (B, T) is 0 are left out. This is transformers'
    ``load_balancing_loss_func``; add it times ``router_aux_loss_coef`` to the loss::

        logits = model(input_ids)
        loss = F.cross_entropy(...) + 0.001 * load_balancing_loss(model, attention_mask)
    """
    layers = [m for m in model.modules() if getattr(m, "router_logits", None) is not None]
    if not layers:
        raise ValueError("no router logits: run a forward in training mode (model.train()) first")
    probs = torch.cat([m.router_logits for m in layers]).float().softmax(dim=-1)  # (L*N, E)
    chosen = probs.topk(layers[0].top_k, dim=-1).indices  # (L*N, k)
    picks = F.one_hot(chosen, probs.shape[-1]).sum(dim=1)  # (L*N, E): 1 where picked
    if attention_mask is None:
        keep = probs.new_ones(len(probs))  # (L*N,)
    else:
        keep = attention_mask.flatten().to(probs).repeat(len(layers))  # (L*N,)
    share = (picks * keep[:, None]).sum(dim=0) / keep.sum()  # (E,) picks per token
    prob = (probs * keep[:, None]).sum(dim=0) / keep.sum()  # (E,) mean probability
    return probs.shape[-1] * (share * prob).sum()
'''
