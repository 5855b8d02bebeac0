"""What every pass takes and returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from archcc.ir.shapes import DimContext
from archcc.lazy import nx


@dataclass
class PassContext:
    """Per-module facts a pass may need (how to compare dims)."""

    dims: DimContext


@dataclass
class PassResult:
    """``changed`` drives re-verification; notes and near misses feed ``--explain``."""

    changed: bool
    notes: list[str] = field(default_factory=list)
    near_misses: list[str] = field(default_factory=list)


def move_before(g: nx.DiGraph, new: str, old: str) -> None:
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
