"""Forward-language functions for writing attention by hand, with PyTorch's meanings.

They exist so a spec can spell attention the way papers and PyTorch code do, and still get
one ``F.scaled_dot_product_attention`` call from the optimizer (``fuse_attention``)::

    att = matmul(q, transpose(k, -2, -1)) / head_dim ** 0.5
    att = masked_fill(att, logical_not(causal_mask(q, k)), -inf)   # or where(causal, att, -inf)
    att = dropout(softmax(att), p)
    y = matmul(att, v)

``masked_fill(x, mask, value)`` fills where ``mask`` is True (torch's meaning);
``where(keep, x, value)`` keeps where ``keep`` is True. Both become the IR's ``masked_fill``
node (``keep`` says which of the two readings its mask has). ``value`` is ``-inf`` or a
param expression; ``dropout(x, p)`` takes a param expression, and so does ``softcap(x, cap)``
(``tanh(x / cap) * cap``: Gemma 2's soft-capped logits).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archcc.parser.expr import Call, Expr, Name, Neg, Pos

if TYPE_CHECKING:
    from archcc.ir.forward import ForwardInterpreter

# name -> (IR op, positional arity); the ones needing more than _node() are in SPECIAL
ATTENTION_BUILTINS = {"causal_mask": ("causal_mask", 2),
                      "key_padding_mask": ("key_padding_mask", 1),
                      "logical_not": ("not", 1), "masked_fill": ("masked_fill", 3),
                      "where": ("masked_fill", 3), "dropout": ("dropout", 2),
                      "softcap": ("softcap", 2)}


def _arity(fi: ForwardInterpreter, e: Call, n: int, usage: str) -> None:
    if len(e.args) != n or e.kwargs:
        fi._fail(e.pos, f"{usage} takes {n} positional argument(s), got {len(e.args)}")


def _param_value(fi: ForwardInterpreter, e: Expr, what: str) -> float:
    """A param expression's value now (the generated code re-reads it from the config)."""
    try:
        value = fi.scope.value(e)
    except Exception:  # noqa: BLE001 - any evaluation failure is the same user error
        value = None
    if isinstance(value, bool) or not isinstance(value, int | float):
        fi._fail(getattr(e, "pos", Pos()), f"{what} must be a number or a param expression",
                 "e.g. -inf, -1e4, dropout")
    return value


def _fill_value(fi: ForwardInterpreter, e: Expr) -> str | Expr:
    if isinstance(e, Neg) and isinstance(e.operand, Name) and e.operand.id == "inf":
        return "-inf"
    _param_value(fi, e, "the fill value")
    return e


def masked_fill(fi: ForwardInterpreter, e: Call) -> str:
    """``masked_fill(x, mask, value)``: fill where mask is True."""
    _arity(fi, e, 3, "masked_fill(x, mask, value)")
    x, mask = (fi._expr(a) for a in e.args[:2])
    return fi._node("masked_fill", [x, mask], e.pos, value=_fill_value(fi, e.args[2]),
                    keep=False)


def where(fi: ForwardInterpreter, e: Call) -> str:
    """``where(keep, x, value)``: keep x where keep is True, else value (the IR's form)."""
    _arity(fi, e, 3, "where(keep, x, value)")
    keep, x = (fi._expr(a) for a in e.args[:2])
    return fi._node("masked_fill", [x, keep], e.pos, value=_fill_value(fi, e.args[2]))


def dropout(fi: ForwardInterpreter, e: Call) -> str:
    """``dropout(x, p)``: F.dropout in training, the identity in eval."""
    _arity(fi, e, 2, "dropout(x, p)")
    p = _param_value(fi, e.args[1], "dropout's p")
    if not 0 <= p <= 1:
        fi._fail(e.pos, f"dropout's p must be in [0, 1], got {p}")
    return fi._node("dropout", [fi._expr(e.args[0])], e.pos, p=e.args[1])


def softcap(fi: ForwardInterpreter, e: Call) -> str:
    """``softcap(x, cap)``: ``tanh(x / cap) * cap`` (Gemma 2's final logits)."""
    _arity(fi, e, 2, "softcap(x, cap)")
    cap = _param_value(fi, e.args[1], "softcap's cap")
    if cap <= 0:
        fi._fail(e.pos, f"softcap's cap must be positive, got {cap}")
    return fi._node("softcap", [fi._expr(e.args[0])], e.pos, cap=e.args[1])


SPECIAL = {"masked_fill": masked_fill, "where": where, "dropout": dropout, "softcap": softcap}
