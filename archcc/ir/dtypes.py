"""Element types of IR values and how they combine: PyTorch's rules, written down once.

Every node has a dtype: ``bool``, ``int64`` or a float (``float32``, ``float16``,
``bfloat16``). The rules are torch's type promotion:

- a binary op takes the highest *category* of its operands (bool < int < float);
- within the winning category, tensors decide the precision (``float16 + float32`` is
  ``float32``); a scalar (a param or literal, shape ``()``) only lifts the category, never
  the precision: ``x_f16 * 0.5`` stays ``float16``, ``ids * 2`` stays ``int64``, and
  ``ids * 1.0`` becomes the default float, ``float32``;
- ``/`` of integers is a float; comparisons, ``&`` and ``~`` give ``bool``;
- a float-only function (gelu, softmax, ...) on integers is an error, not a silent cast:
  write ``to(x, float32)``.

No pass may change a value's dtype; ``verify`` checks every node has one.

    >>> result([("int64", False), ("float32", True)])
    'float32'
    >>> result([("float16", False), ("float32", True)])
    'float16'
"""

from __future__ import annotations

FLOATS = ("float32", "float16", "bfloat16")
INT, BOOL, DEFAULT_FLOAT = "int64", "bool", "float32"
DTYPES = (*FLOATS, INT, BOOL)


def category(dtype: str) -> int:
    """0 bool, 1 integer, 2 floating point."""
    return 2 if dtype in FLOATS else 1 if dtype == INT else 0


def is_float(dtype: str | None) -> bool:
    return dtype in FLOATS


def result(operands: list[tuple[str, bool]]) -> str:
    """The dtype of an elementwise op on ``(dtype, is_scalar)`` operands."""
    top = max(category(d) for d, _ in operands)
    tensors = [d for d, scalar in operands if not scalar and category(d) == top]
    if not tensors:  # a scalar lifted the category: torch's default dtype for it
        return (BOOL, INT, DEFAULT_FLOAT)[top]
    if top < 2:
        return tensors[0]
    return tensors[0] if len(set(tensors)) == 1 else DEFAULT_FLOAT


def division(operands: list[tuple[str, bool]]) -> str:
    """``/`` is true division: integers divide into the default float."""
    kind = result(operands)
    return kind if is_float(kind) else DEFAULT_FLOAT
