"""Dead-code elimination: drop nodes whose values nobody reads.

    before: %t = transpose(%k, -2, -1)   (no users)        after: (gone)
            %y = sdpa(%q, %k, %v)                                 %y = sdpa(%q, %k, %v)

Inputs and the output node always stay: they are the module's signature.
"""

from __future__ import annotations

from archcc.ir.graph import ModuleIR
from archcc.ir.passes.base import PassContext, PassResult

KEEP = {"input", "output", "stack_push", "stack_pop"}  # pushes and pops change a stack others read


def _effect(g, data: dict) -> bool:
    """A call given a stack may push onto it: kept even when its result is unused."""
    return data["op"] == "call" and any(g.nodes[i]["dtype"] == "stack" for i in data["inputs"])


def eliminate_dead_code(module: ModuleIR, ctx: PassContext) -> PassResult:
    g = module.graph
    removed = []
    while True:
        dead = [n for n, d in g.nodes(data=True) if d["op"] not in KEEP
                and g.out_degree(n) == 0 and not _effect(g, d)]
        if not dead:
            break
        removed += dead
        g.remove_nodes_from(dead)
    notes = [f"{module.name}: removed {len(removed)} unused node(s)"] if removed else []
    return PassResult(bool(removed), notes)
