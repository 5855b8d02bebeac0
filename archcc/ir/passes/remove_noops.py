"""No-op removal: drop nodes that hand back their input unchanged.

    before: %t = transpose(%x, 1, 2)                 after: %y = relu(%x)
            %u = transpose(%t, 2, 1)
            %d = dropout(%u, p=0)
            %y = relu(%d)

Rules (each keeps values, shapes and dtypes exactly):
  - ``identity(x)``; ``transpose(x, d, d)``; ``dropout(x, p=0)`` with a literal 0;
  - a call of an ``nn.Dropout`` / ``nn.Identity`` submodule whose p is a literal 0;
  - ``transpose(transpose(x, a, b), a, b)`` (in either order of a, b);
  - reshape of reshape: ``flatten(unflatten(x, d, sizes), d, d + len(sizes) - 1)`` and
    ``unflatten(flatten(x, s, e), s, x.shape[s:e+1])``;
  - ``not(not(x))``.
Dropout whose p is a param is kept: ``Config(dropout=0.1)`` may change it at run time, and
in ``eval()`` ``F.dropout`` already costs nothing.
"""

from __future__ import annotations

from archcc.ir.graph import ModuleIR, program_order, replace_all_uses
from archcc.ir.passes.base import PassContext, PassResult
from archcc.ir.shapes import DimContext
from archcc.lazy import nx
from archcc.parser.expr import Num


def _zero(value) -> bool:
    return isinstance(value, Num) and value.value == 0


def _dims(data: dict) -> frozenset[int]:
    rank = len(data["shape"])
    return frozenset(d % rank for d in (data["attrs"]["dim0"], data["attrs"]["dim1"]))


def _inner(g: nx.DiGraph, data: dict, op: str) -> dict | None:
    """The producer of this node's first input, if it has op ``op`` (and a known shape)."""
    inner = g.nodes[data["inputs"][0]]
    return inner if inner["op"] == op and inner["shape"] is not None else None


def _same_shape(ctx: DimContext, a, b) -> bool:
    return len(a) == len(b) and all(ctx.equal(x, y) for x, y in zip(a, b, strict=True))


def _noop_source(module: ModuleIR, ctx: DimContext, node: str) -> str | None:
    """The node whose value ``node`` merely repeats, or None."""
    g = module.graph
    data = g.nodes[node]
    op, attrs = data["op"], data["attrs"]
    if op == "identity" or (op == "dropout" and _zero(attrs.get("p"))):
        return data["inputs"][0]
    if op == "call" and not attrs.get("repeat") and len(data["inputs"]) == 1:
        sub = module.submodules.get(attrs["target"])
        if sub is not None and (sub.kind == "dropout" and _zero(sub.args.get("p")) or
                                sub.kind == "activation" and sub.args.get("fn") == "identity"):
            return data["inputs"][0]
    if data["shape"] is None:
        return None
    if op == "transpose":
        if len(_dims(data)) == 1:
            return data["inputs"][0]
        inner = _inner(g, data, "transpose")
        if inner is not None and _dims(inner) == _dims(data):
            return inner["inputs"][0]
    source = data["inputs"][0] if data["inputs"] else None
    if op == "not" and _inner(g, data, "not") is not None:
        return g.nodes[source]["inputs"][0]
    if op in ("flatten", "unflatten") and (inner := _inner(g, data, _OTHER[op])) is not None:
        original = g.nodes[inner["inputs"][0]]["shape"]
        if original is not None and _same_shape(ctx, original, data["shape"]):
            return inner["inputs"][0]
    return None


_OTHER = {"flatten": "unflatten", "unflatten": "flatten"}


def _drop_unused_stateless(module: ModuleIR) -> None:
    """An ``nn.Dropout(0)`` nobody calls any more has no state: its ``__init__`` line goes."""
    g = module.graph
    called = {d["attrs"]["target"] for _, d in g.nodes(data=True) if d["op"] == "call"}
    for name in [n for n, s in module.submodules.items()
                 if s.kind in ("dropout", "activation") and n not in called]:
        del module.submodules[name]


def remove_noops(module: ModuleIR, ctx: PassContext) -> PassResult:
    g = module.graph
    removed = []
    for node in program_order(g):
        source = _noop_source(module, ctx.dims, node)
        if source is None:
            continue
        replace_all_uses(g, node, source)
        removed.append(f"{g.nodes[node]['op']} {node}")
        if g.nodes[node]["op"] == "call":  # so the submodule it called can go too
            g.remove_node(node)
    _drop_unused_stateless(module)
    notes = [f"{module.name}: removed {', '.join(removed)}"] if removed else []
    return PassResult(bool(removed), notes)
