"""Evaluating and rendering expressions: our interpreter for the AST of :mod:`.expr`.

Values are numbers, bools, strings and tuples (a list param such as ``depths: [2, 2, 6, 2]``
is a tuple). Every step is bounded: arithmetic refuses huge results, lists are indexed in
range, and only the functions below exist::

    >>> env = {"embed_dim": 96, "depths": (2, 2, 6, 2)}
    >>> evaluate(parse_expr("embed_dim * 2 ** (len(depths) - 1)"), env)
    768
    >>> evaluate(parse_expr("depths[i] if i > 0 else 1"), {**env, "i": 2})
    6
    >>> render(parse_expr("depths[-1] + len(depths)"), lambda n: f"config.{n}")
    'config.depths[-1] + len(config.depths)'
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable

from archcc.parser.expr import (
    BINARY_OPS,
    COMPARISONS,
    BinOp,
    BoolOp,
    Call,
    Expr,
    IfElse,
    ListExpr,
    Name,
    Neg,
    Not,
    Num,
    Pos,
    Slice,
    Str,
    Subscript,
)


class ExprError(ValueError):
    """An evaluation failure (unknown name, division by zero) at a position in the text."""

    def __init__(self, message: str, pos: Pos, hint: str | None = None):
        super().__init__(message)
        self.message, self.pos, self.hint = message, pos, hint


def did_you_mean(word: str, choices: list[str] | set[str]) -> str | None:
    """``"did you mean 'n_embd'?"`` for a near miss, else None."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


_ARITH = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "floordiv": lambda a, b: a // b, "mod": lambda a, b: a % b,
    "pow": lambda a, b: a**b,
}
_COMPARE = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
            "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b}
MAX_MAGNITUDE = 10**30  # far past any size (sizes stop at 2**31); keeps every step cheap


def _too_large(pos: Pos) -> ExprError:
    return ExprError(f"value is too large (limit {MAX_MAGNITUDE:.0e})", pos,
                     "sizes and settings are bounded so that checking a spec stays instant")


def _kind(value) -> str:
    """How a message names a value's type."""
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, tuple):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return "a block"


def _number(value, pos: Pos, what: str):
    if isinstance(value, bool | int | float):
        return value
    raise ExprError(f"{what} needs numbers, got {_kind(value)} ({_show(value)})", pos)


def _show(value) -> str:
    text = repr(value) if not isinstance(value, tuple) else \
        "[" + ", ".join(map(_show, value)) + "]"
    return text if len(text) <= 40 else text[:37] + "..."


_NOWHERE = Pos()


def arithmetic(op: str, left, right, pos: Pos = _NOWHERE) -> int | float:
    """``left <op> right`` for spec numbers, refusing what would be huge or undefined.

    A stranger's ``((10 ** 64) ** 64) ** 64`` or ``9 ** 9 ** 9`` is refused before Python
    spends minutes on it: every result stays within :data:`MAX_MAGNITUDE`, and a power is
    sized by its logarithm before it is computed."""
    left = _number(left, pos, f"'{BINARY_OPS.get(op, op)}'")
    right = _number(right, pos, f"'{BINARY_OPS.get(op, op)}'")
    if op in ("div", "floordiv", "mod") and right == 0:
        raise ExprError("division by zero", pos)
    if op == "pow" and abs(left) > 1 and abs(right) * math.log10(abs(left)) > 30:
        raise _too_large(pos)
    if op == "pow" and left == 0 and right < 0:
        raise ExprError("0 to a negative power is undefined", pos)
    try:
        value = _ARITH[op](left, right)
    except (OverflowError, ZeroDivisionError):
        raise _too_large(pos) from None
    if isinstance(value, complex):
        raise ExprError("a negative number to a fractional power is not a real number", pos)
    if isinstance(value, float) and not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
        raise _too_large(pos)
    if op == "div" and isinstance(value, float) and value.is_integer() \
            and isinstance(left, int) and isinstance(right, int):
        return int(value)  # 3072 / 4 is a size, not 768.0
    return value


# ------------------------------------------------------------------------------ functions


def _on_list(func: Callable) -> Callable:
    """min/max of numbers, or of one list: ``max(a, b)``, ``max(depths)``."""
    def call(*args):
        if len(args) == 1 and isinstance(args[0], tuple):
            args = args[0]
        if not args:
            raise ValueError("an empty list has no minimum or maximum")
        return func(_number(a, Pos(), "min/max") for a in args)

    return call


def _length(value) -> int:
    if not isinstance(value, tuple | str):
        raise TypeError(f"len() takes a list, got {_kind(value)}")
    return len(value)


def _sum(value) -> int | float:
    if not isinstance(value, tuple):
        raise TypeError(f"sum() takes a list, got {_kind(value)}")
    return sum(_number(v, Pos(), "sum()") for v in value)


def _reversed(value) -> tuple:
    if not isinstance(value, tuple):
        raise TypeError(f"reversed() takes a list, got {_kind(value)}")
    return tuple(reversed(value))


_FUNCS = {"min": _on_list(min), "max": _on_list(max), "sqrt": math.sqrt, "log": math.log,
          "int": int, "len": _length, "sum": _sum, "reversed": _reversed}
FUNCTIONS = tuple(_FUNCS)


def _call_function(expr: Call, args: list) -> int | float | tuple:
    """The functions of the language; a domain error (``sqrt(-1)``) is an error at the call."""
    try:
        value = _FUNCS[expr.func](*args)
    except (ValueError, OverflowError, TypeError) as exc:
        shown = ", ".join(map(_show, args))
        raise ExprError(f"{expr.func}() cannot take {shown}", expr.pos, str(exc)) from None
    if isinstance(value, int | float) and not isinstance(value, bool) \
            and abs(value) > MAX_MAGNITUDE:
        raise _too_large(expr.pos)
    return value


# ----------------------------------------------------------------------------- evaluation


def evaluate(expr: Expr, env: dict[str, object]) -> object:
    """Evaluate an expression with the given names; ints stay ints where exact.

    Conditions short-circuit as in Python (``depths[i - 1] if i > 0 else 0`` never reads
    ``depths[-1]`` for ``i = 0``); ``and``/``or`` give the deciding operand, as Python
    does in the generated code (``head_dim or dim``); ``not`` and comparisons give bools."""
    if isinstance(expr, Num | Str):
        return expr.value
    if isinstance(expr, Name):
        if expr.id not in env:
            raise ExprError(f"unknown param '{expr.id}'", expr.pos,
                            did_you_mean(expr.id, set(env)) or f"known params: {', '.join(env)}")
        return env[expr.id]
    if isinstance(expr, Neg):
        return -_number(evaluate(expr.operand, env), expr.pos, "'-'")
    if isinstance(expr, BinOp) and expr.op in COMPARISONS:
        return _compare(expr, evaluate(expr.left, env), evaluate(expr.right, env))
    if isinstance(expr, BinOp) and expr.op in _ARITH:
        left, right = evaluate(expr.left, env), evaluate(expr.right, env)
        return arithmetic(expr.op, left, right, expr.pos)
    if isinstance(expr, Call) and expr.func in _FUNCS and not expr.kwargs:
        return _call_function(expr, [evaluate(a, env) for a in expr.args])
    if isinstance(expr, Subscript):
        return _subscript(expr, evaluate(expr.value, env), env)
    if isinstance(expr, IfElse):
        branch = expr.then if _truth(evaluate(expr.cond, env)) else expr.other
        return evaluate(branch, env)
    if isinstance(expr, BoolOp):  # as Python: the deciding operand, short-circuited
        left = evaluate(expr.left, env)
        if _truth(left) == (expr.op == "or"):
            return left
        return evaluate(expr.right, env)
    if isinstance(expr, Not):
        return not _truth(evaluate(expr.operand, env))
    if isinstance(expr, ListExpr):
        return tuple(evaluate(item, env) for item in expr.items)
    raise ExprError("only arithmetic (+ - * / // % **), comparisons, and/or/not, "
                    "a if c else b, indexing and min, max, sqrt, log, int, len, sum, reversed "
                    "are allowed in parameter expressions", expr.pos)


def _truth(value) -> bool:
    return bool(value)


def _compare(expr: BinOp, left, right) -> bool:
    """``a < b`` of numbers; ``==``/``!=`` of anything (``kinds[i] == "AttnDownBlock2D"``)."""
    if expr.op not in ("eq", "ne"):
        _number(left, expr.pos, f"'{BINARY_OPS[expr.op]}'")
        _number(right, expr.pos, f"'{BINARY_OPS[expr.op]}'")
    return bool(_COMPARE[expr.op](left, right))


def _subscript(expr: Subscript, value, env) -> object:
    """``depths[i]``, ``depths[-1]``, ``depths[:i]``: one index or slice into a list."""
    if not isinstance(value, tuple):
        raise ExprError(f"only a list can be indexed, got {_kind(value)} ({_show(value)})",
                        expr.pos)
    if len(expr.indices) != 1:
        raise ExprError("a list takes one index", expr.pos)
    index = expr.indices[0]
    if isinstance(index, Slice):
        bounds = [None if b is None else _index(evaluate(b, env), expr.pos)
                  for b in (index.lower, index.upper, index.step)]
        if bounds[2] == 0:
            raise ExprError("a slice step cannot be zero", expr.pos)
        return value[bounds[0]:bounds[1]:bounds[2]]
    position = _index(evaluate(index, env), expr.pos)
    if not -len(value) <= position < len(value):
        raise ExprError(f"index {position} is out of range for a list of {len(value)}",
                        expr.pos, f"indices run from 0 to {len(value) - 1} (or -1 for the "
                        "last)" if value else "the list is empty")
    return value[position]


def _index(value, pos: Pos) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ExprError(f"a list index must be an integer, got {_kind(value)} "
                        f"({_show(value)})", pos)
    return value


def python_type(expr: Expr, env: dict[str, object]) -> type:
    """The type Python gives ``expr`` in generated code (``int``, ``float`` or ``bool``).

    Unlike :func:`evaluate`, which keeps ``3072 / 4`` a size, this follows Python: ``/``
    and ``sqrt`` are floats, ``2 ** -1`` is a float, ``n // 2`` of ints an int. IR dtypes of
    constants come from it, so ``ids * 1.0`` is float and ``ids * 2`` stays int64."""
    if isinstance(expr, Num):
        return type(expr.value)
    if isinstance(expr, Name):
        return type(env.get(expr.id, 0.0))
    if isinstance(expr, Neg):
        kind = python_type(expr.operand, env)
        return int if kind is bool else kind
    if isinstance(expr, BinOp):
        left, right = python_type(expr.left, env), python_type(expr.right, env)
        if expr.op in COMPARISONS:
            return bool
        if expr.op == "div" or float in (left, right):
            return float
        if expr.op == "pow":
            try:
                return int if evaluate(expr.right, env) >= 0 else float
            except (ExprError, TypeError):
                return float
        return int
    if isinstance(expr, Call):
        if expr.func in ("sqrt", "log"):
            return float
        if expr.func in ("int", "len"):
            return int
        kinds = {python_type(a, env) for a in expr.args}
        return float if float in kinds else int
    if isinstance(expr, Not):
        return bool
    try:  # indexing, conditions: the type of the value they give here
        return type(evaluate(expr, env))
    except (ExprError, TypeError):
        return float


def names_in(expr: Expr) -> list[str]:
    """Every name an expression refers to, in order of appearance."""
    if isinstance(expr, Name):
        return [expr.id]
    if isinstance(expr, BinOp | BoolOp):
        return names_in(expr.left) + names_in(expr.right)
    if isinstance(expr, Neg | Not):
        return names_in(expr.operand)
    if isinstance(expr, Call):
        return [n for a in (*expr.args, *(v for _, v in expr.kwargs)) for n in names_in(a)]
    if isinstance(expr, Subscript):
        parts = [p for i in expr.indices for p in ((i.lower, i.upper, i.step)
                                                   if isinstance(i, Slice) else (i,))
                 if p is not None]
        return names_in(expr.value) + [n for p in parts for n in names_in(p)]
    if isinstance(expr, IfElse):
        return names_in(expr.then) + names_in(expr.cond) + names_in(expr.other)
    if isinstance(expr, ListExpr):
        return [n for item in expr.items for n in names_in(item)]
    return []


# ----------------------------------------------------------------------------- rendering

# Python precedence, higher binds tighter; used to parenthesise only where needed.
PRECEDENCE = {"ifelse": 1, "or": 2, "and": 3, "not": 4,
              "lt": 6, "le": 6, "gt": 6, "ge": 6, "eq": 6, "ne": 6,
              "add": 10, "sub": 10, "mul": 11, "div": 11, "floordiv": 11, "mod": 11,
              "matmul": 11, "neg": 12, "pow": 13, "atom": 20}


def render(expr: Expr, resolve: Callable[[str], str]) -> str:
    """Render an expression as Python source, mapping every name through ``resolve``.

    Only numbers, operators, string literals (escaped) and resolver output reach the result,
    so the text is safe to write into generated code.
    """
    return _render(expr, resolve)[0]


def render_prec(expr: Expr, resolve: Callable[[str], str]) -> tuple[str, int]:
    """Like :func:`render`, also returning the precedence of the outermost operator."""
    return _render(expr, resolve)


_CALLS = {"sqrt": "math.sqrt", "log": "math.log", "reversed": "tuple(reversed"}


def _render(expr: Expr, resolve: Callable[[str], str]) -> tuple[str, int]:
    atom = PRECEDENCE["atom"]
    if isinstance(expr, Num):
        return repr(expr.value), atom
    if isinstance(expr, Str):  # quoted and escaped (ASCII): never spec text as code
        return json.dumps(expr.value), atom
    if isinstance(expr, Name):
        return resolve(expr.id), atom
    if isinstance(expr, Neg):
        text, prec = _render(expr.operand, resolve)
        return "-" + wrap(text, prec, PRECEDENCE["neg"]), PRECEDENCE["neg"]
    if isinstance(expr, BinOp):
        return render_binary(expr.op, _render(expr.left, resolve), _render(expr.right, resolve))
    if isinstance(expr, Call) and expr.func in _FUNCS:
        args = ", ".join(render(a, resolve) for a in expr.args)
        func = _CALLS.get(expr.func, expr.func)
        return f"{func}({args}){')' if expr.func == 'reversed' else ''}", atom
    if isinstance(expr, Subscript):
        return _render_subscript(expr, resolve), atom
    if isinstance(expr, ListExpr):
        items = [render(item, resolve) for item in expr.items]
        return f"({', '.join(items)}{',' if len(items) == 1 else ''})", atom
    return _render_logic(expr, resolve)


def _render_subscript(expr: Subscript, resolve) -> str:
    text, prec = _render(expr.value, resolve)
    parts = []
    for index in expr.indices:
        if isinstance(index, Slice):
            lower, upper, step = ("" if b is None else render(b, resolve)
                                  for b in (index.lower, index.upper, index.step))
            parts.append(f"{lower}:{upper}" + (f":{step}" if step else ""))
        else:
            parts.append(render(index, resolve))
    return f"{wrap(text, prec, PRECEDENCE['atom'])}[{', '.join(parts)}]"


def _render_logic(expr: Expr, resolve) -> tuple[str, int]:
    """Comparisons, and/or/not and conditional expressions, parenthesised as Python needs."""
    def part(e, needed):
        text, prec = _render(e, resolve)
        return wrap(text, prec, needed)

    if isinstance(expr, BoolOp):
        prec = PRECEDENCE[expr.op]
        return f"{part(expr.left, prec)} {expr.op} {part(expr.right, prec + 1)}", prec
    if isinstance(expr, Not):
        return f"not {part(expr.operand, PRECEDENCE['not'])}", PRECEDENCE["not"]
    if isinstance(expr, IfElse):
        prec = PRECEDENCE["ifelse"]
        return (f"{part(expr.then, prec + 1)} if {part(expr.cond, prec + 1)} else "
                f"{part(expr.other, prec)}", prec)
    raise ValueError(f"cannot render {expr!r} as a parameter expression")


def wrap(text: str, prec: int, needed: int) -> str:
    """Parenthesise ``text`` if it binds looser than ``needed``."""
    return f"({text})" if prec < needed else text


def render_binary(op: str, left: tuple[str, int], right: tuple[str, int]) -> tuple[str, int]:
    """Render ``left <op> right`` with minimal parentheses (left-assoc; ``**`` right-assoc)."""
    prec = PRECEDENCE[op]
    left_needed, right_needed = (prec + 1, prec) if op == "pow" else (prec, prec + 1)
    if op in COMPARISONS:  # never a chain: (a < b) < c keeps its parentheses
        left_needed = prec + 1
    text = f"{wrap(left[0], left[1], left_needed)} {BINARY_OPS[op]} " \
           f"{wrap(right[0], right[1], right_needed)}"
    return text, prec
