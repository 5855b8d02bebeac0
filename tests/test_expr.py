"""The expression language: parsed by our grammar, evaluated by us, never by eval."""

import re

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


# ------------------------------------------------------------ lists, conditions, logic

LISTS = {"depths": (2, 2, 6, 2), "kinds": ("DownBlock2D", "AttnDownBlock2D"), "i": 1,
         "embed_dim": 96, "head": 0}


@pytest.mark.parametrize("text, value", [
    ("embed_dim * 2 ** (len(depths) - 1)", 768),
    ("depths[i] + depths[-1]", 4),
    ("sum(depths[:2]) + max(depths)", 10),
    ("depths[::2]", (2, 6)),
    ("reversed(depths)", (2, 6, 2, 2)),
    ('kinds[i] == "AttnDownBlock2D"', True),
    ("depths[i - 1] if i > 0 else 0", 2),
    ("embed_dim // head if head else 1", 1),
    ("head or embed_dim", 96),            # as Python: the deciding operand
    ("i > 0 and depths[i]", 2),
    ("not i > 3 and i != 0", True),
    ("(1 if i else 2) * 3", 3),
])
def test_lists_conditions_and_logic(text, value):
    assert evaluate(parse_expr(text), LISTS) == value


@pytest.mark.parametrize("text", [
    "embed_dim * 2 ** (len(depths) - 1)", "depths[i] if i > 0 else depths[0]",
    "head or embed_dim", "(i > 0) == (i != 0)", 'kinds[-1] == "AttnDownBlock2D"',
    "sum(depths[1:3]) // 2", "depths[::-1][0]", "a if b else c if d else e",
])
def test_rendered_lists_and_conditions_mean_the_same(text):
    env = {**LISTS, "a": 1, "b": 0, "c": 2, "d": 0, "e": 3}
    expr = parse_expr(text)
    rendered = render(expr, lambda n: n)
    assert evaluate(parse_expr(rendered), env) == evaluate(expr, env)
    assert eval(rendered, {"len": len, "sum": sum, "max": max}, dict(env)) == \
        evaluate(expr, env)  # the generated Python computes what archcc checked


@pytest.mark.parametrize("text, message", [
    ("depths[4]", "index 4 is out of range for a list of 4"),
    ("depths + 1", "'+' needs numbers, got a list"),
    ("depths[1.5]", "a list index must be an integer"),
    ("embed_dim[0]", "only a list can be indexed, got a number"),
    ("depths[::0]", "a slice step cannot be zero"),
    ('kinds[0] < 3', "'<' needs numbers, got a string"),
    ("len(embed_dim)", "len() cannot take 96"),
])
def test_list_mistakes_are_located_errors(text, message):
    with pytest.raises(ExprError, match=re.escape(message)):
        evaluate(parse_expr(text), LISTS)
