"""``verify(program)``: the IR contract, checked at pipeline entry and exit.

A failure here is a bug in archcc (a pass or the builder), not in the user's spec, so the
message names the module, node and broken rule rather than a spec line.
"""

from __future__ import annotations

from archcc.ir.graph import Program
from archcc.ir.shapes import RULES
from archcc.lazy import nx

STRUCTURAL_OPS = {"input", "output", "call", "const", "get_attr",  # and skip stacks:
                  "stack_new", "stack_push", "stack_pop", "stack_after"}
REQUIRED = ("op", "inputs", "attrs", "shape", "dtype", "loc", "var", "stmt")


class IRError(AssertionError):
    """The IR broke its own contract (see archcc/ir/README.md)."""


def verify(program: Program, *, shapes: bool = True, where: str = "") -> Program:
    """Check every module; raise IRError naming the first broken rule."""
    for module in program.modules.values():
        g, name = module.graph, module.name
        prefix = f"{where}: {name}" if where else name
        if not nx.is_directed_acyclic_graph(g):
            raise IRError(f"{prefix}: graph has a cycle")
        out = g.graph.get("output")
        if out not in g or g.nodes[out]["op"] != "output":
            raise IRError(f"{prefix}: no output node")
        for node, data in g.nodes(data=True):
            missing = [k for k in REQUIRED if k not in data]
            if missing:
                raise IRError(f"{prefix}: node {node} lacks {missing}")
            if data["op"] not in STRUCTURAL_OPS and data["op"] not in RULES:
                raise IRError(f"{prefix}: node {node} has unknown op {data['op']!r}")
            for src in data["inputs"]:
                if src not in g or not g.has_edge(src, node):
                    raise IRError(f"{prefix}: node {node} reads {src}, which is not wired in")
            if set(g.predecessors(node)) != set(data["inputs"]):
                raise IRError(f"{prefix}: edges into {node} differ from its inputs list")
            if data["op"] == "call" and data["attrs"]["target"] not in module.submodules:
                raise IRError(f"{prefix}: node {node} calls unknown submodule "
                              f"{data['attrs']['target']!r}")
            if shapes and data["op"] not in ("output", "split") and data["dtype"] is None:
                raise IRError(f"{prefix}: node {node} has no inferred dtype")
    return program
