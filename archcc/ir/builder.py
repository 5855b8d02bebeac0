"""Building a lowered class's forward graph by hand, one source line at a time.

Op modules lower their layers to small generated classes of primitive IR; this is the pen
they write with::

    b = Builder("MLP")
    x = b.input("x", "B, T, dim")
    h = b.line().op("gelu", b.call("up", x, var="h"), var="h")    # h = F.gelu(self.up(x))
    b.ret(b.line().call("down", h, var="y"))                       # return self.down(h)

Expressions over the class's own constructor names are written ``E("dim // n_head")``.
"""

from __future__ import annotations

from archcc.ir.graph import add_node, new_graph
from archcc.ir.params import to_sympy
from archcc.ir.shapes import FLOAT
from archcc.parser.expr import Expr, parse_expr


def E(text: str) -> Expr:  # noqa: N802 - reads like a literal: E("dim // n_head")
    """An expression over a lowered class's own names."""
    return parse_expr(text)


def dims(shape: str | tuple) -> tuple:
    """``"B, n_head, (grid / window) ** 2"`` -> a tuple of sympy dims; a tuple passes."""
    if not isinstance(shape, str):
        return tuple(shape)
    return tuple(to_sympy(parse_expr(part)) for part in shape.split(",") if part.strip())


class Builder:
    """Appends nodes to one lowered class graph, one logical source line per ``line()``."""

    def __init__(self, name: str):
        self.g = new_graph(name)
        self.stmt = 0

    def input(self, name: str, shape: str | tuple, dtype: str = FLOAT) -> str:
        """A forward argument of this shape: ``"B, T, dim"`` (the class's names) or dims."""
        node = add_node(self.g, "input", var=name, name=name)
        self.g.nodes[node].update(shape=dims(shape), dtype=dtype)
        self.g.graph["inputs"].append(node)
        return node

    def line(self) -> Builder:
        self.stmt += 1
        return self

    def op(self, op: str, *inputs: str, var: str | None = None, **attrs) -> str:
        return add_node(self.g, op, inputs, var=var, stmt=self.stmt, **attrs)

    def call(self, target: str, *inputs: str, var: str | None = None) -> str:
        return self.op("call", *inputs, var=var, target=target, kwargs=())

    def attr(self, name: str, shape: str | tuple, dtype: str = FLOAT) -> str:
        """``self.<name>``: a parameter or buffer of the class, of known shape."""
        node = self.op("get_attr", var=name, target=name)
        self.g.nodes[node].update(shape=dims(shape), dtype=dtype)
        return node

    def ret(self, node: str) -> None:
        self.g.graph["output"] = add_node(self.g, "output", [node], stmt=self.stmt)
