"""Block arguments as sympy dims, and shapes moved between a block's names and the model's.

Inside ``SwinStage(dim, grid, ...)`` shapes are written in the block's own argument names
(``(B, grid, grid, dim)``); the stage loop gives each instance values over params
(``dim = 2*embed_dim``). Shapes cross a block boundary in the model's terms, so two blocks
that both call an argument ``dim`` never mix them up::

    sym = arg_dims(element, caller_sym, params)     # {"dim": 2*embed_dim, ...}
    to_model(shape, sym)                            # (B, grid, grid, dim) -> over params
    solve(sym)                                      # {embed_dim: dim/2, ...}: the way back
"""

from __future__ import annotations

from archcc.ir.params import symbol, to_sympy
from archcc.lazy import sympy
from archcc.parser.expr import (
    Call,
    Expr,
    ExprError,
    IfElse,
    Name,
    Num,
    Subscript,
    evaluate,
)


def value_dim(expr: Expr, env: dict, sym: dict, params: dict):
    """An argument expression as a sympy dim over the model's names (None: not a number).

    Conditions and indices are decided by ``env`` (``depths[i]`` at ``i = 2`` is the symbol
    ``depths[2]``); names of the enclosing block map through ``sym``."""
    try:
        if isinstance(expr, Num):
            return None if isinstance(expr.value, bool) else sympy.sympify(expr.value)
        if isinstance(expr, Name):
            if expr.id in sym:
                return sym[expr.id]
            value = env.get(expr.id)
            if expr.id in params and _number(value):
                return symbol(expr.id)
            return sympy.sympify(value) if _number(value) else None
        if isinstance(expr, IfElse):
            branch = expr.then if evaluate(expr.cond, env) else expr.other
            return value_dim(branch, env, sym, params)
        if isinstance(expr, Subscript) and isinstance(expr.value, Name) \
                and expr.value.id in params and isinstance(params[expr.value.id], tuple):
            items = params[expr.value.id]
            index = evaluate(expr.indices[0], env)
            if isinstance(index, int) and _number(items[index]):
                return symbol(f"{expr.value.id}[{index % len(items)}]")
        if isinstance(expr, Call) and expr.func == "len" and isinstance(expr.args[0], Name) \
                and expr.args[0].id in params:
            return symbol(f"len({expr.args[0].id})")
        parts = getattr(expr, "left", None), getattr(expr, "right", None)
        if all(p is not None for p in parts) and expr.op in _OPS:
            left, right = (value_dim(p, env, sym, params) for p in parts)
            if left is not None and right is not None:
                return _OPS[expr.op](left, right)
        value = evaluate(expr, env)
        return sympy.sympify(value) if _number(value) else None
    except (ExprError, TypeError, ValueError, IndexError, ZeroDivisionError):
        return None


_OPS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
        "div": lambda a, b: a / b, "floordiv": lambda a, b: a / b, "pow": lambda a, b: a**b}


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def arg_dims(element, block_args: dict, caller_sym: dict, params: dict) -> dict:
    """Each argument of one instance as a dim over the model's names: given ones from their
    expressions, defaults as numbers."""
    out = {}
    for name, value in element.args.items():
        if name in element.exprs:
            out[name] = value_dim(element.exprs[name], element.env, caller_sym, params)
        else:
            out[name] = sympy.sympify(value) if _number(value) else None
    return out


def arg_values(args: dict) -> dict:
    """``{Symbol(dim): 384}``: the numbers a DimContext needs to compare the block's dims."""
    return {symbol(k): sympy.sympify(v) for k, v in args.items() if _number(v)}


def to_model(shape, sym: dict):
    """A shape (or a stack's contents) in a block's names -> the same over the model's."""
    subs = {symbol(k): v for k, v in sym.items() if v is not None}
    if not subs or shape is None:
        return shape
    if _is_stack(shape):
        return tuple((to_model(s, sym), d) for s, d in shape)
    return tuple(d.subs(subs) if getattr(d, "free_symbols", None) and
                 d.free_symbols & subs.keys() else d for d in shape)


def _is_stack(shape) -> bool:
    return bool(shape) and isinstance(shape[0], tuple)


def solve(sym: dict, keep: set | None = None) -> dict:
    """The way back: params expressed by the block's arguments, where an argument's value
    is linear in a param not yet used (``dim = 2*embed_dim`` gives ``embed_dim = dim/2``).
    Symbols in ``keep`` (the arguments themselves) are never solved for."""
    solution: dict = {}
    keep = {symbol(n) for n in sym} | (keep or set())
    for name, value in sym.items():
        if value is not None:
            solution = extend(solution, symbol(name), value, keep)
    return solution


def extend(solution: dict, target, value, keep: set) -> dict:
    """``solution`` plus the param that makes ``value`` equal ``target``, if one is linear."""
    value = sympy.sympify(value).subs(solution)
    if value.is_number:
        return solution
    for s in sorted(value.free_symbols - keep, key=str):
        slope = sympy.diff(value, s)
        rest = sympy.expand(value - slope * s)
        if slope != 0 and s not in slope.free_symbols and s not in rest.free_symbols:
            found = (target - rest) / slope
            out = {k: v.subs(s, found) for k, v in solution.items()}
            out[s] = found
            return out
    return solution


def in_args(shape, solution: dict):
    """A shape over the model's names re-expressed by the block's arguments."""
    if shape is None or not solution:
        return shape
    out = []
    for d in shape:
        d = sympy.sympify(d)
        used = {s: solution[s] for s in d.free_symbols if s in solution}
        out.append(d.subs(used) if used else d)
    return tuple(out)


__all__ = ["arg_dims", "arg_values", "in_args", "solve", "to_model", "to_sympy", "value_dim"]
