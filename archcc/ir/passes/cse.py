"""Common-subexpression elimination: compute each distinct value once.

    before: %a = transpose(%k, -2, -1)               after: %a = transpose(%k, -2, -1)
            %b = transpose(%k, -2, -1)                      %y = matmul(%a, %a)
            %y = matmul(%a, %b)

Two nodes are the same value when they have the same op, the same inputs in the same order
and equal attributes (expressions compare by structure, not source position). Random or
stateful work is never merged: ``dropout`` (two draws differ), ``sdpa`` with dropout, and
``call`` (a submodule may be dropout, or keep state).
"""

from __future__ import annotations

from typing import Any

from archcc.ir.graph import ModuleIR, program_order, replace_all_uses
from archcc.ir.passes.base import PassContext, PassResult

NEVER_MERGED = {"input", "output", "call", "dropout", "stack_new", "stack_push", "stack_pop",
                "stack_after"}


def _frozen(value: Any) -> Any:
    """A hashable stand-in for an attribute value (expressions hash by structure)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def _key(data: dict) -> tuple | None:
    if data["op"] in NEVER_MERGED:
        return None
    if data["op"] == "sdpa" and data["attrs"].get("dropout") is not None:
        return None
    return data["op"], tuple(data["inputs"]), _frozen(data["attrs"]), data["dtype"]


def eliminate_common_subexpressions(module: ModuleIR, ctx: PassContext) -> PassResult:
    g = module.graph
    seen: dict[tuple, str] = {}
    merged = []
    for node in program_order(g):  # inputs are canonical before their readers are keyed
        key = _key(g.nodes[node])
        if key is None:
            continue
        if key in seen:
            replace_all_uses(g, node, seen[key])
            g.remove_node(node)
            merged.append(f"{node} -> {seen[key]}")
        else:
            seen[key] = node
    notes = [f"{module.name}: {len(merged)} duplicate(s): {', '.join(merged)}"] if merged else []
    return PassResult(bool(merged), notes)
