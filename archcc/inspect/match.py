"""Pair up the layers of two architectures: by name first, then by structure.

Within one scope (the model, or the block under a matched repeat) a layer of A pairs with
the layer of B of the same name; what is left pairs greedily by similarity (same op type
required; equal settings, position and name likeness raise the score), which finds
renames such as ``h -> encoder`` or ``attn -> attention``::

    >>> pairs = match_layers(layers(gpt2), layers(bert))
    >>> ("h", "encoder") in pairs and ("h.*.attn", "encoder.*.attention") in pairs
    True
"""

from __future__ import annotations

from collections import Counter
from difflib import SequenceMatcher

from archcc import ops
from archcc.inspect.structure import LayerInfo, norm_ops

THRESHOLD = 0.45


def core(layer: LayerInfo) -> tuple[str, dict]:
    """What a layer computes, unwrapped: a residual around attention compares as attention."""
    op = ops.get(layer.kind)
    if op is not None:
        return op.core(layer.fields)
    return layer.kind.split(" ")[0], dict(layer.fields)


def _children(layers: list[LayerInfo], parent: str) -> list[LayerInfo]:
    return [x for x in layers if x.parent == parent]


def _score(a: LayerInfo, b: LayerInfo, ia: float, ib: float, la: list[LayerInfo],
           lb: list[LayerInfo]) -> float:
    op_a, fa = core(a)
    op_b, fb = core(b)
    if op_a != op_b:
        return 0.0
    if op_a in ("repeat", "block"):  # compare what the blocks contain
        ca = _contents(la, a.inner or a.path)
        cb = _contents(lb, b.inner or b.path)
        union = sum((ca | cb).values()) or 1
        same = sum((ca & cb).values()) / union
    else:
        both = {k for k in set(fa) & set(fb) if fa[k] is not None and fb[k] is not None}
        keys = both or (set(fa) | set(fb))  # settings both sides have (None: not set)
        same = sum(fa.get(k) == fb.get(k) for k in keys) / (len(keys) or 1)
    name = SequenceMatcher(None, a.name, b.name).ratio()
    reads = float(a.reads == b.reads)
    return 0.5 * same + 0.2 * (1 - abs(ia - ib)) + 0.15 * name + 0.15 * reads


def _contents(layers: list[LayerInfo], path: str) -> Counter:
    """Op types inside a repeated block (or its instances); norms left out, as a residual
    op hides its own."""
    inside = [x for x in layers if x.parent == path or x.parent.startswith(path + ".")]
    return Counter(op for op in (core(x)[0] for x in inside) if op not in norm_ops())


def _scope(la: list[LayerInfo], lb: list[LayerInfo], pa: str, pb: str,
           pairs: dict[str, str]) -> None:
    a_side, b_side = _children(la, pa), _children(lb, pb)
    by_name = {x.name: x for x in b_side}
    taken: set[str] = set()
    for a in a_side:
        b = by_name.get(a.name)
        if b is not None and (core(a)[0] == core(b)[0] or a.kind == b.kind
                              or not _has_better(a, b_side)):
            pairs[a.path] = b.path
            taken.add(b.path)
    rest_a = [a for a in a_side if a.path not in pairs]
    rest_b = [b for b in b_side if b.path not in taken]
    pos_a = {a.path: i / max(len(a_side) - 1, 1) for i, a in enumerate(a_side)}
    pos_b = {b.path: i / max(len(b_side) - 1, 1) for i, b in enumerate(b_side)}
    scored = sorted(((_score(a, b, pos_a[a.path], pos_b[b.path], la, lb), i, j)
                     for i, a in enumerate(rest_a) for j, b in enumerate(rest_b)),
                    key=lambda t: (-t[0], t[1], t[2]))
    used_a, used_b = set(), set()
    for score, i, j in scored:
        if score >= THRESHOLD and i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            pairs[rest_a[i].path] = rest_b[j].path
    by_b = {b.path: b for b in b_side}
    for a in a_side:
        b = by_b.get(pairs.get(a.path, ""))
        if b is None:
            continue
        if a.inner and b.inner:  # a block's layers (h.*, layers.2)
            _scope(la, lb, a.inner, b.inner, pairs)
        if _children(la, a.path) and a.inner != a.path:  # a stage loop's instances
            _scope(la, lb, a.path, b.path, pairs)


def _has_better(a: LayerInfo, b_side: list[LayerInfo]) -> bool:
    """Same name, other op: keep the pair unless B has a same-op layer it could be."""
    return any(core(x)[0] == core(a)[0] for x in b_side)


def match_layers(la: list[LayerInfo], lb: list[LayerInfo]) -> dict[str, str]:
    """A path -> B path for every layer of A that has a counterpart in B."""
    pairs: dict[str, str] = {}
    _scope(la, lb, "", "", pairs)
    return pairs
