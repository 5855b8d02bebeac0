"""The sequence functions of the forward language: ``cat``, global pooling, ``sum``, ``flip``.

    pooled = cat(global_max_pool(c3), global_max_pool(c4), dim=-1)

(Recurrent calls and their ports are :mod:`archcc.ops.recurrent`'s.)
"""

from __future__ import annotations

from archcc.parser.expr import Call

# forward-language functions with a `dim=` keyword: name -> (IR op, arity (None: 2 or more),
# default dim)
SEQUENCE_BUILTINS = {"cat": ("cat", None, -1), "global_max_pool": ("global_max_pool", 1, -1),
                     "global_avg_pool": ("global_avg_pool", 1, -1), "sum": ("sum", 1, -1),
                     "unsqueeze": ("unsqueeze", 1, -1), "flip": ("flip", 1, 1),
                     "logsigmoid": ("logsigmoid", 1, None),
                     "unflatten_as": ("unflatten_as", 2, None)}


def call_builtin(fwd, e: Call) -> str:
    """``cat(a, b, c, dim=-1)``, ``global_max_pool(x)``, ``sum(x, dim=1)``, ``flip(x)``..."""
    op, arity, dim = SEQUENCE_BUILTINS[e.func]
    attrs = {} if dim is None else {"dim": dim}
    for key, value in e.kwargs:
        if key not in attrs:
            fwd._fail(e.pos, f"{e.func}() has no keyword '{key}'",
                      "the only keyword is dim=" if attrs else f"call it as {e.func}(x)")
        attrs["dim"] = fwd._static_int(value)
    if arity is None and len(e.args) < 2:
        fwd._fail(e.pos, f"{e.func}() joins two or more tensors, got {len(e.args)}")
    if arity is not None and len(e.args) != arity:
        fwd._fail(e.pos, f"{e.func}() takes {arity} argument(s), got {len(e.args)}",
                  "choose the axis with dim=" if attrs else None)
    return fwd._node(op, [fwd._expr(a) for a in e.args], e.pos, **attrs)
