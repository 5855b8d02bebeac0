"""Recognise attention written from primitives, in the forms PyTorch Inductor's
``fuse_attention`` patterns know, walking back from the last ``matmul(probs, v)``::

    scores = matmul(q', kt)            kt = transpose(k, -2, -1) | transpose(k, -1, -2) | k^T
    q'     = q | q * c | q / c         pre-scaled queries (and keys) count as scale too
    scores = scores * c | scores / c   any number of constant factors, or none (scale 1)
    scores = masked_fill(scores, fill, -inf) | where(keep, scores, -inf) | scores + bias
    probs  = softmax(scores, dim=-1)
    probs  = dropout(probs, p)          optional
    out    = matmul(probs, v)

Batched ``(B*H, T, hs)`` and per-head ``(B, H, T, hs)`` layouts are the same walk: only the
last two dims matter. Every intermediate must have exactly one reader, else fusing would
change what the other reader sees; such chains raise :class:`NoMatch` with ``near=True`` so
``--explain`` can say why ("not fused: softmax output is used 2 times").
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field

from archcc.lazy import nx
from archcc.parser.expr import BinOp, Expr, Num


class NoMatch(Exception):
    """Not the pattern; ``reason`` is worth telling the user only if ``near`` is set."""

    def __init__(self, reason: str, near: bool = False):
        super().__init__(reason)
        self.reason, self.near = reason, near


@dataclass
class Match:
    """The pieces of one attention chain. ``k`` is None when only ``kt`` (keys^T) exists."""

    q: str
    k: str | None
    kt: str
    v: str
    scale: list[Expr] = field(default_factory=list)  # constant factors, multiplied
    masks: list[tuple[str, str]] = field(default_factory=list)  # (node, "keep"|"fill"|"add")
    dropout: Expr | None = None
    gqa: bool = False  # k and v are the kv heads, each serving a group of query heads


def single_user(g: nx.DiGraph, node: str, what: str) -> None:
    if g.out_degree(node) != 1 or g.graph.get("output") == node:
        raise NoMatch(f"{what} is used {g.out_degree(node)} times", near=True)


def _const_factor(g: nx.DiGraph, node: str) -> tuple[str, Expr] | None:
    """``x * c``, ``c * x`` or ``x / c`` with ``c`` a param constant -> (x, factor)."""
    data = g.nodes[node]
    if data["op"] not in ("mul", "div"):
        return None
    a, b = data["inputs"]
    if g.nodes[b]["op"] == "const" and g.nodes[a]["op"] != "const":
        value = g.nodes[b]["attrs"]["value"]
        return a, value if data["op"] == "mul" else BinOp("div", Num(1), value)
    if data["op"] == "mul" and g.nodes[a]["op"] == "const" and g.nodes[b]["op"] != "const":
        return b, g.nodes[a]["attrs"]["value"]
    return None


def _strip_scale(g: nx.DiGraph, node: str, found: Match, strict: bool) -> str:
    """Peel constant factors off ``node`` into found.scale. A factor read elsewhere too is a
    near miss in the scores chain (``strict``); on q or k it simply stays part of q or k."""
    while (factor := _const_factor(g, node)) is not None:
        if g.out_degree(node) != 1:
            if strict:
                single_user(g, node, "scaled scores")
            return node
        node, value = factor
        found.scale.append(value)
    return node


def _fill_value_ok(g: nx.DiGraph, node: str) -> None:
    value = g.nodes[node]["attrs"].get("value", "-inf")
    if value not in ("-inf", "min"):  # "min" differs only on rows that see no key at all
        raise NoMatch("the mask fills with a finite value, not -inf (SDPA's boolean masks "
                      "mean -inf)", near=True)


def _reaches_matmul(g: nx.DiGraph, node: str, depth: int = 8) -> bool:
    """Does ``node`` lead down (through scale, masks) to a matmul? Picks the scores of an add."""
    for _ in range(depth):
        data = g.nodes[node]
        if data["op"] == "matmul":
            return True
        if data["op"] == "masked_fill":
            node = data["inputs"][0]
        elif data["op"] == "add":
            return any(_reaches_matmul(g, i, depth - 1) for i in data["inputs"])
        elif (factor := _const_factor(g, node)) is not None:
            node = factor[0]
        else:
            return False
    return False


def _peel_masks(g: nx.DiGraph, scores: str, found: Match) -> str:
    while True:
        data = g.nodes[scores]
        if data["op"] == "masked_fill":
            single_user(g, scores, "masked scores")
            _fill_value_ok(g, scores)
            kind = "keep" if data["attrs"].get("keep", True) else "fill"
            scores, mask = data["inputs"]
        elif data["op"] == "add" and any(_reaches_matmul(g, i) for i in data["inputs"]):
            single_user(g, scores, "masked scores")
            a, b = data["inputs"]
            scores, mask = (a, b) if _reaches_matmul(g, a) else (b, a)
            if g.nodes[mask]["dtype"] != "float32":
                raise NoMatch("the additive mask is not a float tensor", near=True)
            kind = "add"
        else:
            return scores
        found.masks.append((mask, kind))


def _keys(g: nx.DiGraph, kt: str, found: Match) -> tuple[str | None, str]:
    """(k, kt): k is the untransposed keys when kt is a transpose of its last two dims."""
    kt = _strip_scale(g, kt, found, strict=False)
    data = g.nodes[kt]
    rank = len(data["shape"] or ())
    if data["op"] != "transpose" or g.out_degree(kt) != 1 or rank < 2:
        return None, kt
    dims = {d % rank for d in (data["attrs"]["dim0"], data["attrs"]["dim1"])}
    if dims != {rank - 2, rank - 1}:
        return None, kt
    return _strip_scale(g, data["inputs"][0], found, strict=False), kt


def match_attention(g: nx.DiGraph, out: str, equal: Callable = operator.eq) -> Match:
    """Walk back from ``out = matmul(probs, v)``; raises NoMatch when it is not attention."""
    probs, v = g.nodes[out]["inputs"]
    dropout = None
    if g.nodes[probs]["op"] == "dropout" and \
            g.nodes[g.nodes[probs]["inputs"][0]]["op"] == "softmax":
        single_user(g, probs, "attention dropout output")
        dropout = g.nodes[probs]["attrs"]["p"]
        probs = g.nodes[probs]["inputs"][0]
    if g.nodes[probs]["op"] != "softmax":
        raise NoMatch("left operand is not a softmax")
    rank = len(g.nodes[probs]["shape"] or ())
    if g.nodes[probs]["attrs"]["dim"] not in (-1, rank - 1):
        raise NoMatch("softmax is not over the last dim", near=True)
    single_user(g, probs, "softmax output")
    found = Match(q="", k=None, kt="", v=v, dropout=dropout)
    scores = _peel_masks(g, g.nodes[probs]["inputs"][0], found)
    scores = _strip_scale(g, scores, found, strict=True)
    if g.nodes[scores]["op"] == "softcap":
        raise NoMatch("scores are soft-capped (tanh), which SDPA cannot do", near=True)
    if g.nodes[scores]["op"] in ("mul", "div"):
        raise NoMatch("scores are scaled by a tensor, not a constant", near=True)
    if g.nodes[scores]["op"] != "matmul":
        raise NoMatch(f"scores are a {g.nodes[scores]['op']}, not a matmul", near=True)
    single_user(g, scores, "attention scores")
    q, kt = g.nodes[scores]["inputs"]
    found.q = _strip_scale(g, q, found, strict=False)
    found.k, found.kt = _keys(g, kt, found)
    _check_layout(g, found, equal)
    _grouped_query(g, found)
    return found


def _grouped_query(g: nx.DiGraph, found: Match) -> None:
    """Keys and values repeated per query head (``repeat_kv``, grouped-query attention):
    SDPA reads the kv heads themselves with ``enable_gqa``, nothing is materialised."""
    k, v = found.k, found.v
    if k is None:
        return
    kd, vd = g.nodes[k], g.nodes[v]
    if kd["op"] == vd["op"] == "repeat_kv" and kd["attrs"]["times"] == vd["attrs"]["times"] \
            and g.out_degree(k) == 1 and g.out_degree(v) == 1:
        found.k, found.v, found.gqa = kd["inputs"][0], vd["inputs"][0], True


def _check_layout(g: nx.DiGraph, found: Match, equal: Callable) -> None:
    """SDPA wants q, k, v of one rank (>= 3) with equal batch dims: no broadcasting."""
    shapes = [g.nodes[n]["shape"] for n in (found.q, found.kt, found.v)]
    if any(s is None or len(s) < 3 for s in shapes) or len({len(s) for s in shapes}) != 1:
        raise NoMatch("q, k, v are not all of one rank >= 3", near=True)
    if not all(equal(a, b) for s in shapes[1:] for a, b in zip(shapes[0][:-2], s[:-2],
                                                                strict=True)):
        raise NoMatch("q, k, v batch dims differ (SDPA does not broadcast them)", near=True)
    kinds = {kind for _, kind in found.masks}
    if "add" in kinds and len(kinds) > 1:
        raise NoMatch("an additive and a boolean mask together (SDPA takes one kind)",
                      near=True)
