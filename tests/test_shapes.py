"""Symbolic shape rules: dims compare by param values, input symbols stay symbolic."""

import pytest
import sympy

from archcc.ir.params import symbol
from archcc.ir.shapes import DimContext, ShapeError, broadcast, fmt, matmul, unflatten
from archcc.parser.expr import parse_expr

B, T, S, n_embd, n_head = (symbol(n) for n in ("B", "T", "S", "n_embd", "n_head"))
CTX = DimContext({n_embd: sympy.Integer(768), n_head: sympy.Integer(12)})


def test_params_compare_by_value_inputs_by_symbol():
    assert CTX.equal(4 * n_embd, sympy.Integer(3072))
    assert CTX.equal(n_embd / n_head, sympy.Integer(64))
    assert not CTX.equal(T, T + 1)
    assert not CTX.equal(T, S)


def test_broadcast():
    assert broadcast(CTX, (B, T, n_embd), (T, n_embd)) == (B, T, n_embd)
    assert broadcast(CTX, (B, 1, 1, S), (T, S)) == (B, 1, T, S)
    with pytest.raises(ShapeError, match=r"shapes \(B, T, n_embd\) and \(B, S, n_embd\)"):
        broadcast(CTX, (B, T, n_embd), (B, S, n_embd))


def test_matmul_inner_dims():
    shape, _ = matmul(CTX, {}, [(B, T, n_embd), (n_embd, 4 * n_embd)], ["float32"] * 2)
    assert shape == (B, T, 4 * n_embd)
    with pytest.raises(ShapeError, match="inner dims differ"):
        matmul(CTX, {}, [(B, T, n_embd), (T, n_embd)], ["float32"] * 2)


def test_unflatten_checks_the_product():
    attrs = {"dim": -1, "sizes": (parse_expr("n_head"), parse_expr("n_embd // n_head"))}
    shape, _ = unflatten(CTX, attrs, [(B, T, n_embd)], ["float32"])
    assert fmt(shape) == "(B, T, n_head, n_embd/n_head)"
    with pytest.raises(ShapeError, match="cannot unflatten"):
        unflatten(CTX, attrs, [(B, T, 2 * n_embd)], ["float32"])
