"""Fuse the attention pattern into one ``F.scaled_dot_product_attention`` node.

    before:  %kt  = transpose(%k, -2, -1)               after:  %y = sdpa(%q, %k, %v,
             %s   = matmul(%q, %kt)                                     is_causal=True)
             %s   = mul(%s, %scale)       # head_dim ** -0.5 (default, so dropped)
             %s   = masked_fill(%s, causal_mask(%q, %k), -inf)
             %p   = softmax(%s, dim=-1)
             %p   = dropout(%p)
             %y   = matmul(%p, %v)

Matched wherever it appears, whether lowered from ``op: attention`` or written by hand from
primitives in a spec. Every intermediate value must have exactly one reader; when a chain
almost matches, the reason is recorded as a near miss for ``archcc build --explain``.
"""

from __future__ import annotations

import sympy

from archcc.ir.graph import ModuleIR, add_node, replace_all_uses
from archcc.ir.params import to_sympy
from archcc.ir.passes.base import PassContext, PassResult
from archcc.parser.expr import BinOp, Expr, Num


class _NoMatch(Exception):
    """Not the pattern; ``reason`` is worth telling the user only if ``near`` is set."""

    def __init__(self, reason: str, near: bool = False):
        super().__init__(reason)
        self.reason, self.near = reason, near


def _single_user(g, node: str, what: str) -> None:
    if g.out_degree(node) != 1 or g.graph.get("output") == node:
        raise _NoMatch(f"{what} is used {g.out_degree(node)} times", near=True)


def _producer(g, node: str, ops: tuple[str, ...]) -> str | None:
    return node if g.nodes[node]["op"] in ops else None


def _match(g, ctx: PassContext, out: str) -> dict:
    """Walk back from ``matmul(probs, v)``; returns the pieces of the pattern."""
    node = g.nodes[out]
    probs, v = node["inputs"]
    found: dict = {"v": v, "dropout": None, "masks": [], "causal": False, "scale": None,
                   "biases": []}
    if g.nodes[probs]["op"] == "dropout":
        _single_user(g, probs, "attention dropout output")
        found["dropout"] = g.nodes[probs]["attrs"]["p"]
        probs = g.nodes[probs]["inputs"][0]
    if g.nodes[probs]["op"] != "softmax":
        raise _NoMatch("left operand is not a softmax")
    if g.nodes[probs]["attrs"]["dim"] not in (-1, len(g.nodes[probs]["shape"] or ()) - 1):
        raise _NoMatch("softmax is not over the last dim", near=True)
    _single_user(g, probs, "softmax output")
    scores = g.nodes[probs]["inputs"][0]
    scores = _additive_biases(g, scores, found)
    while g.nodes[scores]["op"] == "masked_fill":
        _single_user(g, scores, "masked scores")
        if g.nodes[scores]["attrs"].get("value") != "-inf":
            raise _NoMatch("mask fills with a value other than -inf", near=True)
        scores, mask = g.nodes[scores]["inputs"]
        found["masks"].append(mask)
    if g.nodes[scores]["op"] in ("mul", "div"):
        _single_user(g, scores, "scaled scores")
        a, b = g.nodes[scores]["inputs"]
        const = b if g.nodes[b]["op"] == "const" else a if g.nodes[a]["op"] == "const" else None
        if const is None or (g.nodes[scores]["op"] == "div" and const == a):
            raise _NoMatch("scores are scaled by a tensor, not a constant", near=True)
        value = g.nodes[const]["attrs"]["value"]
        found["scale"] = value if g.nodes[scores]["op"] == "mul" else BinOp("div", Num(1), value)
        scores = a if const == b else b
    if g.nodes[scores]["op"] != "matmul":
        raise _NoMatch("scores are not a matmul", near=True)
    _single_user(g, scores, "attention scores")
    q, kt = g.nodes[scores]["inputs"]
    k = _untransposed(g, kt)
    if k is None:
        raise _NoMatch("keys are not transposed over their last two dims", near=True)
    found.update(q=q, k=k)
    return found


def _additive_biases(g, scores: str, found: dict) -> str:
    """``scores + bias`` (Swin's relative positions and shift mask) become a float attn_mask;
    the scores side is the one that leads back to the matmul."""
    while g.nodes[scores]["op"] == "add":
        _single_user(g, scores, "biased scores")
        a, b = g.nodes[scores]["inputs"]
        if g.nodes[a]["op"] not in ("mul", "div", "matmul", "add", "masked_fill"):
            a, b = b, a
        if g.nodes[b]["dtype"] == "bool":
            raise _NoMatch("a boolean tensor is added to the scores", near=True)
        found["biases"].append(b)
        scores = a
    if found["biases"] and g.nodes[scores]["op"] == "masked_fill":
        raise _NoMatch("scores have both an additive bias and a boolean mask", near=True)
    return scores


def _untransposed(g, kt: str) -> str | None:
    data = g.nodes[kt]
    if data["op"] != "transpose" or g.out_degree(kt) != 1:
        return None
    rank = len(data["shape"] or ())
    dims = {d % rank for d in (data["attrs"]["dim0"], data["attrs"]["dim1"])} if rank else set()
    return data["inputs"][0] if dims == {rank - 2, rank - 1} else None


def _is_default_scale(g, ctx: PassContext, q: str, scale: Expr | None) -> bool:
    if scale is None:
        return False
    q_shape = g.nodes[q]["shape"]
    default = sympy.Pow(q_shape[-1], sympy.Float(-0.5))
    try:
        return ctx.dims.equal(to_sympy(scale), default)
    except (ValueError, TypeError):
        return False


def _mask_inputs(g, found: dict) -> tuple[list[str], bool]:
    """SDPA takes either ``is_causal`` or one boolean mask: split the causal part out."""
    causal = [m for m in found["masks"] if g.nodes[m]["op"] == "causal_mask"]
    others = [m for m in found["masks"] if m not in causal]
    if causal and not others:  # with a KV cache the mask ends at the last key, not the first
        from_end = any(g.nodes[m]["attrs"].get("from_end") for m in causal)
        return [], "from_end" if from_end else True
    return found["masks"], False


def _rewrite(g, ctx: PassContext, out: str, found: dict) -> str:
    masks, is_causal = _mask_inputs(g, found)
    mask = masks[0] if masks else None
    for bias in reversed(found["biases"]):  # summed in the order they were added
        if mask is None:
            mask = bias
            continue
        mask = add_node(g, "add", [mask, bias], var="bias", stmt=g.nodes[out]["stmt"],
                        loc=g.nodes[out]["loc"])
        g.nodes[mask].update(shape=None, dtype="float32")
    for extra in masks[1:]:
        mask = add_node(g, "and", [mask, extra], var="keep", stmt=g.nodes[out]["stmt"],
                        loc=g.nodes[out]["loc"])
        g.nodes[mask].update(shape=None, dtype="bool")
    scale = Num(1) if found["scale"] is None else found["scale"]  # unscaled (T5): scale=1
    scale = None if _is_default_scale(g, ctx, found["q"], scale) else scale
    inputs = [found["q"], found["k"], found["v"]] + ([mask] if mask else [])
    data = g.nodes[out]
    fused = add_node(g, "sdpa", inputs, var=data["var"], stmt=data["stmt"], loc=data["loc"],
                     is_causal=is_causal, scale=scale, dropout=found["dropout"])
    g.nodes[fused].update(shape=data["shape"], dtype=data["dtype"],
                          note="fused by fuse_attention")
    replace_all_uses(g, out, fused)
    _move_before(g, fused, out)
    return fused


def _move_before(g, new: str, old: str) -> None:
    """Keep program order readable: the fused node takes the old node's place."""
    order = list(g.nodes)
    order.remove(new)
    order.insert(order.index(old), new)
    attrs = {n: dict(g.nodes[n]) for n in order}
    edges = list(g.edges(data=True))
    g.clear_edges()
    for n in order:
        g.remove_node(n)
    for n in order:
        g.add_node(n, **attrs[n])
    g.add_edges_from(edges)


def fuse_attention(module: ModuleIR, ctx: PassContext) -> PassResult:
    g = module.graph
    result = PassResult(False)
    for node in list(g.nodes):
        if node not in g or g.nodes[node]["op"] != "matmul":
            continue
        try:
            found = _match(g, ctx, node)
        except _NoMatch as miss:
            if miss.near:
                result.near_misses.append(f"{node}: not fused: {miss.reason}")
            continue
        fused = _rewrite(g, ctx, node, found)
        result.changed = True
        result.notes.append(f"{node} -> {fused}: sdpa")
    return result
