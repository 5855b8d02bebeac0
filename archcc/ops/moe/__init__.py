"""``op: moe``: a sparse mixture of experts, the feed-forward of Mixtral and Qwen2-MoE.

A router scores every token against ``experts`` feed-forward experts; each token runs
through its ``top_k`` best only, and their outputs are summed with the routing weights. The
generated class computes k experts per token, not all of them: the (token, expert) pairs
are grouped by expert, so each expert is one matmul over its own tokens::

    moe: {op: moe, dim: hidden_size, hidden: intermediate_size, experts: num_local_experts,
          top_k: num_experts_per_tok}
    ->  self.moe = SwiGLUMoE(config.hidden_size, config.intermediate_size,
                             config.num_local_experts, config.num_experts_per_tok)
    moe(x) with x (B, T, dim)  ->  (B, T, dim)

Routing (``routing``): ``softmax_topk`` takes the softmax over all experts and keeps the k
largest, renormalised to sum to 1 when ``normalize`` (Mixtral; Qwen2-MoE's
``norm_topk_prob``); ``topk_softmax`` keeps the k largest logits and takes the softmax over
those. A shared expert (``shared_hidden``) sees every token, scaled by a learned sigmoid
gate (Qwen2-MoE). The expert weights are stacked 3-D tensors, ``gate_up`` (E, 2 * hidden,
dim) with the gate rows first and ``down`` (E, dim, hidden), as transformers 5 stores them.
The file's ``load_balancing_loss(model)`` is the Switch Transformer auxiliary loss over the
router logits of the last training forward, as transformers computes it.
"""

from __future__ import annotations

from typing import Literal

from archcc.ir.builder import E, dims
from archcc.ir.graph import ModuleIR, Submodule, add_node, new_graph
from archcc.ir.shapes import FLOAT, ShapeError, register_rule
from archcc.ops import Example, Kind, Op, ffn, kind, linear, op
from archcc.ops.base import field_diag
from archcc.ops.linear import last_dim
from archcc.parser.expr import Num
from archcc.parser.fields import Activation, Size, Strict

OP = "moe"


class MoE(Strict):
    """Sparse mixture of experts (Shazeer et al. 2017; Mixtral, Qwen2-MoE): a router sends
    each token to `top_k` of `experts` feed-forward experts and sums their outputs with the
    routing weights; only the chosen experts compute.

    `moe(x)` maps (..., dim) to (..., dim). In training the router logits of the last
    forward stay on the layer for the generated `load_balancing_loss(model, attention_mask)`."""

    op: Literal["moe"]
    dim: Size
    """Model width: input and output features."""
    hidden: Size
    """Inner width of each expert (Mixtral: intermediate_size; Qwen2-MoE:
    moe_intermediate_size)."""
    experts: Size
    """Number of routed experts (num_local_experts, num_experts)."""
    top_k: Size
    """Experts each token runs through (num_experts_per_tok); at most `experts`."""
    act: Activation = "silu"
    """Nonlinearity of each expert (on the gate when `gated`)."""
    gated: bool = True
    """Gated experts, down(act(gate(x)) * up(x)) (SwiGLU with silu), or plain
    down(act(up(x)))."""
    routing: Literal["softmax_topk", "topk_softmax"] = "softmax_topk"
    """`softmax_topk`: softmax over all experts, then the k largest (Mixtral, Qwen2-MoE);
    `topk_softmax`: the k largest logits, then a softmax over those (the Mixtral paper's
    formula; it equals softmax_topk renormalised)."""
    normalize: bool = True
    """Renormalise the k routing weights to sum to 1 (Mixtral: always; Qwen2-MoE:
    norm_topk_prob, false by default). Only for `softmax_topk`."""
    shared_hidden: Size | None = None
    """Inner width of a shared expert that sees every token (Qwen2-MoE:
    shared_expert_intermediate_size); none by default."""
    shared_gate: bool = True
    """Scale the shared expert by sigmoid(Linear(dim, 1)) per token (Qwen2-MoE's
    shared_expert_gate). Only with `shared_hidden`."""


@op
class MoEOp(Op):
    name, schema, order = OP, MoE, 85
    sizes, optional_sizes = ("dim", "hidden", "experts", "top_k"), ("shared_hidden",)
    example = Example("moe: {op: moe, dim: n_embd, hidden: 2 * n_embd, experts: 4, top_k: 2, "
                      "shared_hidden: 3 * n_embd}", {"n_embd": 16})

    def check(self, scope, layer):
        for message, hint, key in _facet_problems(scope, layer):
            scope.errors.append(field_diag(scope, layer, key, message, hint))

    def submodules(self, layer):
        s = layer.sizes
        args = {"dim": s["dim"], "hidden": s["hidden"], "n_experts": s["experts"],
                "top_k": s["top_k"]}
        if "shared_hidden" in s:
            args["shared_hidden"] = s["shared_hidden"]
        return [Submodule(layer.name, "class", args, layer.loc)]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        if len(shapes) != 1 or kwargs:
            raise ShapeError(f"{layer.name} takes one input, got {len(shapes)}",
                             f"call it as {layer.name}(x) with x (..., dim)")
        last_dim(ctx, layer, shapes[0], "dim", "input")
        return shapes[0], FLOAT

    def lower(self, layer, kwargs):
        return lower(layer.spec)

    def body(self, facets: dict):
        """The class body codegen writes from the facets (routing and dispatch)."""
        from archcc.ops.moe.body import moe_body

        return moe_body(facets)

    def functions(self, facets: dict) -> list[str]:
        """Module-level functions a file with this class gets: load_balancing_loss."""
        from archcc.ops.moe.body import LOAD_BALANCING_LOSS

        return [LOAD_BALANCING_LOSS]

    def params(self, values):
        dim, hidden, experts = values["dim"], values["hidden"], values["experts"]
        matrices = 3 if values["gated"] else 2
        count = dim * experts + experts * matrices * dim * hidden
        if values.get("shared_hidden"):
            count += matrices * dim * values["shared_hidden"]
            count += dim if values["shared_gate"] else 0
        return count

    def flops(self, values, shapes):
        """The router over all experts, then k experts per token (not all of them)."""
        tokens = 1
        for d in shapes[0][:-1]:
            tokens *= d
        dim, matrices = values["dim"], 3 if values["gated"] else 2
        per_token = dim * values["experts"] + values["top_k"] * matrices * dim * values["hidden"]
        if values.get("shared_hidden"):
            per_token += matrices * dim * values["shared_hidden"]
            per_token += dim if values["shared_gate"] else 0
        return 2 * tokens * per_token

    def facet(self, fields):
        expert = ffn.FFNOp().facet(fields).removeprefix("ffn ")
        text = f"moe top-{fields.get('top_k')} of {fields.get('experts')} {expert}"
        if fields.get("routing") == "topk_softmax":
            text += ", top-k softmax"
        elif not fields.get("normalize", True):
            text += ", unnormalised"
        if fields.get("shared_hidden"):
            text += ", gated shared expert" if fields.get("shared_gate", True) \
                else ", shared expert"
        return text


def _facet_problems(scope, layer) -> list[tuple[str, str, str]]:
    """(message, hint, field) for each combination no router can honour."""
    spec, problems = layer.spec, []
    experts, top_k = scope.value(layer.sizes["experts"]), scope.value(layer.sizes["top_k"])
    if isinstance(experts, int) and isinstance(top_k, int) and top_k > experts:
        problems.append((f"top_k ({top_k}) must be at most experts ({experts})",
                         "each token runs through top_k distinct experts", "top_k"))
    if spec.routing == "topk_softmax" and not spec.normalize:
        problems.append(("routing: topk_softmax always gives weights that sum to 1; "
                         "normalize: false needs routing: softmax_topk",
                         "Qwen2-MoE with norm_topk_prob false is routing: softmax_topk, "
                         "normalize: false", "normalize"))
    if spec.shared_hidden is None and "shared_gate" in spec.model_fields_set:
        problems.append(("shared_gate scales a shared expert, and this layer has none",
                         "set shared_hidden (the shared expert's inner width) or remove "
                         "shared_gate", "shared_gate"))
    return problems


# ---------------------------------------------------------------------------- the class


@kind
class ExpertWeightsKind(Kind):
    """``nn.Parameter(torch.empty(E, out, in))``: one stacked weight for all experts, drawn
    by the class's ``reset_parameters`` (as ``nn.Linear`` draws its own), then by
    ``init_weights()``: ``normal(0.02)`` unless a rule says otherwise, as transformers'
    Mixtral and Qwen2-MoE ``_init_weights`` draw their stacked experts (``torch_default``
    keeps the ``nn.Linear`` draw)::

        init: {expert_weights: normal(initializer_range)}
    """

    name, init_params = "expert_weights", ("",)  # the tensor is the attribute itself
    init = {"": "normal(0.02)"}

    def init_lines(self, sub, arg):
        shape = ", ".join(arg(d) for d in sub.args["shape"])
        return [f"self.{sub.name} = nn.Parameter(torch.empty({shape}))"]


def _weights(name: str, shape: str) -> Submodule:
    return Submodule(name, "expert_weights", {"shape": tuple(E(d) for d in shape.split(","))})


def class_name(act: str, gated: bool) -> str:
    """``SwiGLUMoE``, ``GEGLUMoE``, ``MLPMoE``: the experts' kind, then MoE."""
    return (ffn.GATED_NAMES.get(act, "GatedMLP") if gated else "MLP") + "MoE"


def lower(spec) -> ModuleIR:
    """The MoE class of one facet combination: one ``moe_dispatch`` node, body from
    :mod:`.body`; the shared expert is the ``op: ffn`` class of the same activation."""
    shared = spec.shared_hidden is not None
    name = class_name(spec.act, spec.gated)
    g = new_graph(name)
    x = add_node(g, "input", var="x", name="x")
    g.nodes[x].update(shape=dims("B, T, dim"), dtype=FLOAT)
    g.graph["inputs"] = [x]
    y = add_node(g, "moe_dispatch", [x], var="y", stmt=1)
    g.graph["output"] = add_node(g, "output", [y], stmt=1)
    subs = {"router": linear.submodule("router", E("dim"), E("n_experts"), False)}
    if spec.gated:
        subs["gate_up"] = _weights("gate_up", "n_experts, 2 * hidden, dim")
    else:
        subs["up"] = _weights("up", "n_experts, hidden, dim")
    subs["down"] = _weights("down", "n_experts, dim, hidden")
    nested = {}
    if shared:
        subs["shared"] = Submodule("shared", "class", {
            "dim": E("dim"), "hidden": E("shared_hidden"), "bias": Num(False),
            "dropout": Num(0.0)})
        nested["shared"] = ffn.lower(spec.act, spec.gated)
        if spec.shared_gate:
            subs["shared_gate"] = linear.submodule("shared_gate", E("dim"), Num(1), False)
    facets = {"template": OP, "act": spec.act, "gated": spec.gated, "routing": spec.routing,
              "normalize": spec.normalize, "shared": shared,
              "shared_gate": shared and spec.shared_gate}
    ctor = [("dim", None), ("hidden", None), ("n_experts", None), ("top_k", None)]
    module = ModuleIR(name, "lowered", g, subs,
                      ctor_args=ctor + ([("shared_hidden", None)] if shared else []),
                      scalars={"n_experts": E("n_experts"), "top_k": E("top_k")},
                      doc=_doc(facets), signature=(OP, *facets.values()), facets=facets,
                      nested=nested, display={"dim": "C", "n_experts": "E", "top_k": "k"})
    return module


def _doc(f: dict) -> str:
    shared = "" if not f["shared"] else \
        " and a gated shared expert" if f["shared_gate"] else " and a shared expert"
    return (f"Mixture of {class_name(f['act'], f['gated'])[:-3]} experts (top_k of n_experts "
            f"per token){shared}.")


@register_rule("moe_dispatch")
def moe_dispatch_shape(ctx, attrs, shapes, dtypes):
    """Shape rule of the class's one node: the output has the input's shape."""
    return shapes[0], FLOAT
