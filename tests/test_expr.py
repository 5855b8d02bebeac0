"""The expression language: parsed by our grammar, evaluated by us, never by eval."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archcc.parser.expr import (
    ExprError,
    ExprSyntaxError,
    evaluate,
    parse_expr,
    parse_program,
    render,
)


@pytest.mark.parametrize("text, value", [
    ("4 * n_embd", 3072),
    ("n_embd // n_head", 64),
    ("(image // patch) ** 2", 196),
    ("n_embd / n_head", 64),          # exact division stays an integer size
    ("-n_head + 20", 8),
    ("max(n_head, 16) % 5", 1),
    ("1e-5", 1e-5),
])
def test_evaluate(text, value):
    env = {"n_embd": 768, "n_head": 12, "image": 224, "patch": 16}
    assert evaluate(parse_expr(text), env) == value


def test_render_maps_every_name_and_keeps_precedence():
    expr = parse_expr("(a + b) * c - -d ** 2")
    assert render(expr, lambda n: f"config.{n}") == \
        "(config.a + config.b) * config.c - -config.d ** 2"


@given(st.integers(1, 10**6), st.integers(1, 10**6), st.integers(1, 50))
def test_render_round_trips_through_evaluate(a, b, c):
    expr = parse_expr("(a - b) * c + a // c - b % c")
    rendered = render(expr, lambda n: n)
    assert evaluate(parse_expr(rendered), {"a": a, "b": b, "c": c}) == \
        evaluate(expr, {"a": a, "b": b, "c": c})


@pytest.mark.parametrize("text", [
    "__import__('os').system('echo pwned')",
    "open('x')",
    "a.b",
    "lambda: 1",
    "[x for x in y]",
])
def test_code_is_never_executed(text):
    with pytest.raises((ExprSyntaxError, ExprError)):
        evaluate(parse_expr(text), {"a": 1, "y": 2})


@pytest.mark.parametrize("text, message, hint", [
    ("f(x", "unclosed parenthesis", "every '(' needs a matching ')'"),
    ("a +", "missing operand", "an operator needs a value on both sides"),
    ("2 n_embd", "two values with no operator between them",
     "write the operator, e.g. `4 * n_embd`"),
])
def test_syntax_errors_are_named(text, message, hint):
    with pytest.raises(ExprSyntaxError) as info:
        parse_expr(text)
    assert (info.value.message, info.value.hint) == (message, hint)


def test_unknown_name_suggests_the_closest_param():
    with pytest.raises(ExprError) as info:
        evaluate(parse_expr("4 * n_emb"), {"n_embd": 768, "n_head": 12})
    assert info.value.message == "unknown param 'n_emb'"
    assert info.value.hint == "did you mean 'n_embd'?"


def test_division_by_zero():
    with pytest.raises(ExprError, match="division by zero"):
        evaluate(parse_expr("n // (n - n)"), {"n": 3})


def test_program_positions_and_comments():
    program = parse_program("# wiring\nx = x + attn(ln_1(x))  # residual\n\nreturn x\n")
    assert [type(s).__name__ for s in program] == ["Assign", "Return"]
    assert (program[0].pos.line, program[0].value.right.pos.col) == (2, 9)
