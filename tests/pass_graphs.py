"""Small hand-built IR graphs for pass unit tests, and their before/after golden text.

    b = GraphBuilder()
    x = b.input("x", (B, T, D))
    y = b.op("transpose", b.op("transpose", x, dim0=1, dim1=2), dim0=1, dim1=2)
    module = b.done(y)
    check_pass("remove_noops/transpose_twice", module, remove_noops)   # golden under
                                                                      # tests/golden/passes/
"""

from __future__ import annotations

from collections.abc import Callable

from archcc.ir.graph import ModuleIR, Submodule, add_node, module_text, new_graph
from archcc.ir.params import symbol, to_sympy
from archcc.ir.passes.base import PassContext, PassResult
from archcc.ir.passes.dead_code import eliminate_dead_code
from archcc.ir.shapes import RULES, DimContext
from archcc.parser.expr import parse_expr
from tests.golden_util import check_golden

B, T, S, D, H, DIM = (symbol(n) for n in ("B", "T", "S", "D", "H", "dim"))


class GraphBuilder:
    """Appends nodes to one module's graph; shapes come from the real shape rules."""

    def __init__(self, name: str = "M", kind: str = "lowered"):
        self.g = new_graph(name)
        self.module = ModuleIR(name, kind, self.g)
        self.ctx = DimContext()

    def input(self, name: str, shape: tuple, dtype: str = "float32") -> str:
        node = add_node(self.g, "input", var=name, name=name)
        self.g.nodes[node].update(shape=shape, dtype=dtype)
        self.g.graph["inputs"].append(node)
        return node

    def const(self, text: str) -> str:
        node = add_node(self.g, "const", value=parse_expr(text))
        self.g.nodes[node].update(shape=(), dtype="float32")
        return node

    def op(self, op: str, *inputs: str, var: str | None = None, **attrs) -> str:
        node = add_node(self.g, op, inputs, var=var, stmt=1, **attrs)
        shapes = [self.g.nodes[i]["shape"] for i in inputs]
        dtypes = [self.g.nodes[i]["dtype"] for i in inputs]
        shape, dtype = RULES[op](self.ctx, attrs, shapes, dtypes)
        self.g.nodes[node].update(shape=shape, dtype=dtype)
        return node

    def linear(self, name: str, x: str, fan_in: str, fan_out: str, bias: str = "True") -> str:
        self.module.submodules[name] = Submodule(name, "linear", {
            "in": parse_expr(fan_in), "out": parse_expr(fan_out), "bias": parse_expr(bias)})
        node = add_node(self.g, "call", [x], var=name, stmt=1, target=name, kwargs=())
        shape = self.g.nodes[x]["shape"]
        self.g.nodes[node].update(shape=(*shape[:-1], to_sympy(parse_expr(fan_out))),
                                  dtype="float32")
        return node

    def done(self, *outputs: str) -> ModuleIR:
        self.g.graph["output"] = add_node(self.g, "output", list(outputs))
        return self.module


def run_pass(module: ModuleIR, run: Callable[[ModuleIR, PassContext], PassResult],
             dce: bool = True) -> PassResult:
    ctx = PassContext(DimContext())
    result = run(module, ctx)
    if dce:
        eliminate_dead_code(module, ctx)
    return result


def check_pass(name: str, module: ModuleIR, run: Callable, dce: bool = True) -> PassResult:
    """Golden ``passes/<name>.txt``: the graph before, the pass's notes, the graph after."""
    before = module_text(module)
    result = run_pass(module, run, dce)
    log = [f"  {line}" for line in result.notes + result.near_misses] or ["  (no change)"]
    text = "\n".join(["before:", before, "", "notes:", *log, "", "after:",
                      module_text(module), ""])
    check_golden(f"passes/{name}.txt", text)
    return result
