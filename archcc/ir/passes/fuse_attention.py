"""Fuse the attention pattern into one ``F.scaled_dot_product_attention`` node.

    before:  %kt  = transpose(%k, -2, -1)               after:  %y = sdpa(%q, %k, %v,
             %s   = matmul(%q, %kt)                                     is_causal=True)
             %s   = mul(%s, %scale)       # head_dim ** -0.5 (default, so dropped)
             %s   = masked_fill(%s, causal_mask(%q, %k), -inf)
             %p   = softmax(%s, dim=-1)
             %p   = dropout(%p)
             %y   = matmul(%p, %v)

Matched wherever it appears, whether lowered from ``op: attention`` or written by hand from
primitives in a spec, in every form ``attention_match`` lists (multiply / divide / pre-scaled
q / no scale; no mask, additive float, boolean keep or fill, causal tril; dropout or not;
batched or per-head). The rewrite combines masks into SDPA's single ``attn_mask`` (or
``is_causal``), and passes ``scale=`` only when it is not SDPA's default 1/sqrt(head_dim).
When a chain almost matches, the reason is recorded as a near miss for ``--explain``.
"""

from __future__ import annotations

from archcc.ir.graph import ModuleIR, add_node, replace_all_uses
from archcc.ir.params import to_sympy
from archcc.ir.passes.attention_match import Match, NoMatch, match_attention
from archcc.ir.passes.base import PassContext, PassResult, move_before
from archcc.lazy import sympy
from archcc.parser.expr import BinOp, Expr, Num


def _is_default_scale(g, ctx: PassContext, q: str, scale: Expr | None) -> bool:
    if scale is None:
        return False
    q_shape = g.nodes[q]["shape"]
    default = sympy.Pow(q_shape[-1], sympy.Float(-0.5))
    try:
        return ctx.dims.equal(to_sympy(scale), default)
    except (ValueError, TypeError):
        return False


def _node(g, op: str, inputs: list[str], like: str, shape, dtype: str, **attrs) -> str:
    """A helper node in the fused node's statement (so codegen may inline it there)."""
    data = g.nodes[like]
    node = add_node(g, op, inputs, var=attrs.pop("var", op), stmt=data["stmt"],
                    loc=data["loc"], **attrs)
    g.nodes[node].update(shape=shape, dtype=dtype)
    return node


def _keep_mask(g, mask: str, kind: str, out: str) -> str:
    """SDPA's boolean mask means "attend": a torch-style fill mask is negated (or un-negated)."""
    if kind != "fill":
        return mask
    if g.nodes[mask]["op"] == "not":
        return g.nodes[mask]["inputs"][0]
    return _node(g, "not", [mask], out, g.nodes[mask]["shape"], "bool", var="keep")


def _is_causal(g, ctx: PassContext, mask: str, found: Match) -> bool:
    """A tril mask as tall as the queries and as wide as the keys is SDPA's ``is_causal``."""
    if g.nodes[mask]["op"] != "causal_mask":
        return False
    rows, cols = (g.nodes[i]["shape"][-2] for i in g.nodes[mask]["inputs"])
    length, source = g.nodes[found.q]["shape"][-2], g.nodes[found.kt]["shape"][-1]
    return ctx.dims.equal(rows, length) and ctx.dims.equal(cols, source)


def _mask_input(g, ctx: PassContext, found: Match,
                out: str) -> tuple[str | None, bool | str]:
    """(attn_mask, is_causal): SDPA takes ``is_causal`` or one mask, so masks are combined."""
    if any(kind == "add" for _, kind in found.masks):
        masks = [m for m, _ in found.masks]
        combine, dtype = "add", "float32"
    else:
        masks = [_keep_mask(g, m, kind, out) for m, kind in found.masks]
        combine, dtype = "and", "bool"
    if masks and all(_is_causal(g, ctx, m, found) for m in masks):
        # with a KV cache the mask ends at the last key, not the first (see codegen's sdpa)
        from_end = any(g.nodes[m]["attrs"].get("from_end") for m in masks)
        return None, "from_end" if from_end else True
    mask = masks[0] if masks else None
    for extra in masks[1:]:
        mask = _node(g, combine, [mask, extra], out, None, dtype,
                     var="keep" if dtype == "bool" else "bias")
    return mask, False


def _scale(g, ctx: PassContext, found: Match) -> Expr | None:
    """The scale argument: None when it is SDPA's default 1/sqrt(head_dim)."""
    if not found.scale:
        return Num(1)  # no scaling written (T5): SDPA must be told, its default is not 1
    scale = found.scale[0]
    for factor in found.scale[1:]:
        scale = BinOp("mul", scale, factor)
    return None if _is_default_scale(g, ctx, found.q, scale) else scale


def _rewrite(g, ctx: PassContext, out: str, found: Match) -> str:
    before = set(g.nodes)
    k = found.k
    if k is None:  # only keys^T exist: SDPA wants the keys
        shape = g.nodes[found.kt]["shape"]
        k = _node(g, "transpose", [found.kt], out, (*shape[:-2], shape[-1], shape[-2]),
                  "float32", var="k", dim0=-2, dim1=-1)
        found.k = k
    mask, is_causal = _mask_input(g, ctx, found, out)
    data = g.nodes[out]
    inputs = [found.q, k, found.v] + ([mask] if mask else [])
    fused = add_node(g, "sdpa", inputs, var=data["var"] or "y", stmt=data["stmt"],
                     loc=data["loc"], is_causal=is_causal, scale=_scale(g, ctx, found),
                     dropout=found.dropout, **_fold(g, found.q, mask),
                     **({"gqa": True} if found.gqa else {}))
    g.nodes[fused].update(shape=data["shape"], dtype=data["dtype"],
                          note="fused by fuse_attention")
    replace_all_uses(g, out, fused)
    for node in [n for n in g.nodes if n not in before]:  # helpers first, then the call
        move_before(g, node, out)
    return fused


def _fold(g, q: str, mask: str | None) -> dict:
    """Windows in their own dim (Swin's (B, nW, nh, N, hs)) are folded into the batch:
    SDPA's fused kernels take 4-D inputs, anything else falls back to its math kernel.
    ``fold`` is "mask" when the mask has the window dim too (it is expanded to the batch)."""
    if _rank(g, q) != 5:
        return {}
    tiled = mask is not None and _rank(g, mask) >= 4
    return {"fold": "mask" if tiled else "inputs"}


def _rank(g, node: str) -> int:
    """Dims of a value; a mask combined here has no shape yet: the broadcast of its parts."""
    shape = g.nodes[node]["shape"]
    if shape is not None:
        return len(shape)
    return max((_rank(g, i) for i in g.nodes[node]["inputs"]), default=0)


def fuse_attention(module: ModuleIR, ctx: PassContext) -> PassResult:
    g = module.graph
    result = PassResult(False)
    for node in list(g.nodes):
        if node not in g or g.nodes[node]["op"] != "matmul":
            continue
        try:
            found = match_attention(g, node, ctx.dims.equal)
        except NoMatch as miss:
            if miss.near:
                result.near_misses.append(f"{node}: not fused: {miss.reason}")
            continue
        fused = _rewrite(g, ctx, node, found)
        result.changed = True
        result.notes.append(f"{node} -> {fused}: sdpa")
    return result
