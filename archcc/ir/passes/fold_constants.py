"""Constant folding of shape and scale arithmetic.

    before: %c1 = const(2 * 8)                       after: %c1 = const(16)
            %s  = mul(%x, %c1)                              %s = mul(%x, (16) * (head_dim ** -0.5))
            %c2 = const(head_dim ** -0.5)
            %y  = mul(%s, %c2)                       (and ``mul(%x, 1)``, ``add(%x, 0)`` vanish)

Three rewrites:
  - literal arithmetic inside expressions (``const`` values and attributes such as
    ``unflatten`` sizes or a ``split`` size) is evaluated: ``2 * 8`` -> ``16``,
    ``n * 1`` -> ``n``, ``n + 0`` -> ``n``. Param names stay symbolic on purpose: the
    generated ``Config`` may be built with other values at run time;
  - a chain of constant factors ``(x * c1) * c2`` (or ``/ c2``) becomes one ``x * (c1 * c2)``;
  - ``x * 1``, ``x / 1``, ``x + 0``, ``x - 0`` become ``x`` when that keeps shape and dtype.
"""

from __future__ import annotations

from typing import Any

from archcc.ir.graph import ModuleIR, add_node, program_order, replace_all_uses, set_inputs
from archcc.ir.passes.base import PassContext, PassResult, move_before
from archcc.parser.expr import BinOp, Expr, ExprError, Neg, Num, arithmetic

_UNITS = {"mul": 1, "div": 1, "add": 0, "sub": 0}


def fold_expr(e: Any) -> Any:
    """Evaluate literal arithmetic in an expression; anything else comes back unchanged."""
    if isinstance(e, tuple):
        return tuple(fold_expr(x) for x in e)
    if isinstance(e, Neg):  # -0.5 stays written as it was; only what is under it folds
        return Neg(fold_expr(e.operand), e.pos)
    if not isinstance(e, BinOp):
        return e
    left, right = fold_expr(e.left), fold_expr(e.right)
    a, b = _number(left), _number(right)
    if isinstance(a, Num) and isinstance(b, Num):
        value = _literal(e.op, a.value, b.value)
        if value is not None:
            return Num(value, e.pos)
    unit = _UNITS.get(e.op)
    if unit is not None and _unit(right, unit) and e.op != "div":  # k / 1 is a float
        return left
    if e.op in ("mul", "add") and _unit(left, unit):
        return right
    return BinOp(e.op, left, right, e.pos)


def _unit(e: Any, unit: int | None) -> bool:
    """An int literal that leaves the other side as it is: ``k * 1``, not ``k * 1.0``
    (which makes an int a float)."""
    return unit is not None and isinstance(e, Num) and type(e.value) is int \
        and e.value == unit


def _number(e: Any) -> Any:
    """``-(2)`` as the number -2, for arithmetic with it; other expressions unchanged."""
    return Num(-e.operand.value, e.pos) if isinstance(e, Neg) and isinstance(e.operand, Num) \
        else e


def _literal(op: str, a: int | float, b: int | float) -> int | float | None:
    """``a <op> b`` where it is exact to fold (no integer division of floats, no
    complex powers, nothing huge); None leaves the expression as written."""
    if op == "floordiv" and not (isinstance(a, int) and isinstance(b, int)):
        return None
    if op not in ("add", "sub", "mul", "div", "floordiv", "pow"):
        return None
    try:
        value = arithmetic(op, a, b)
    except ExprError:
        return None
    return float(value) if op == "div" else value  # Python's / is always a float


def _fold_attrs(module: ModuleIR) -> list[str]:
    changed = []
    for node, data in module.graph.nodes(data=True):
        for key, value in data["attrs"].items():
            folded = fold_expr(value)
            if folded != value:
                data["attrs"][key] = folded
                changed.append(f"{node}.{key}")
    return changed


def _const(g, node: str) -> Expr | None:
    data = g.nodes[node]
    return data["attrs"]["value"] if data["op"] == "const" else None


def _merge_factors(module: ModuleIR) -> list[str]:
    """(x * c1) * c2 -> x * (c1 * c2) when the inner product has no other reader."""
    g = module.graph
    merged = []
    for node in program_order(g):
        data = g.nodes[node]
        if data["op"] not in ("mul", "div") or _const(g, data["inputs"][1]) is None:
            continue
        inner = data["inputs"][0]
        idata = g.nodes[inner]
        if idata["op"] != "mul" or g.out_degree(inner) != 1 or \
                _const(g, idata["inputs"][1]) is None or _const(g, idata["inputs"][0]):
            continue
        c1, c2 = _const(g, idata["inputs"][1]), _const(g, data["inputs"][1])
        value = fold_expr(BinOp("mul", c1, c2 if data["op"] == "mul" else
                                BinOp("div", Num(1), c2)))
        const = add_node(g, "const", var="scale", stmt=data["stmt"], loc=data["loc"],
                         value=value)
        g.nodes[const].update(shape=(), dtype="float32")
        move_before(g, const, node)
        g.nodes[node]["op"] = "mul"
        set_inputs(g, node, [idata["inputs"][0], const])
        merged.append(node)
    return merged


def _drop_units(module: ModuleIR, ctx: PassContext) -> list[str]:
    """x * 1, x / 1, x + 0, x - 0 -> x (when x already has the result's shape and dtype)."""
    g = module.graph
    dropped = []
    for node in program_order(g):
        data = g.nodes[node]
        unit = _UNITS.get(data["op"])
        if unit is None:
            continue
        x, c = data["inputs"]
        value = _const(g, c)
        if not (isinstance(value, Num) and value.value == unit):
            continue
        xd = g.nodes[x]
        if xd["dtype"] == data["dtype"] and xd["shape"] is not None and \
                len(xd["shape"]) == len(data["shape"]) and \
                all(ctx.dims.equal(a, b) for a, b in zip(xd["shape"], data["shape"],
                                                         strict=True)):
            replace_all_uses(g, node, x)
            dropped.append(node)
    return dropped


def fold_constants(module: ModuleIR, ctx: PassContext) -> PassResult:
    notes = []
    for what, changed in (("folded", _fold_attrs(module)),
                          ("merged constant factors into", _merge_factors(module)),
                          ("dropped unit arithmetic", _drop_units(module, ctx))):
        if changed:
            notes.append(f"{module.name}: {what} {', '.join(changed)}")
    return PassResult(bool(notes), notes)
