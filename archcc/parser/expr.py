"""Our own small language: parameter expressions and forward wiring, parsed by lark.

Specs come from strangers, so expressions are never handed to ``eval``: they are parsed by
``grammar.lark`` into the tiny AST below, evaluated by :func:`evaluate`, and re-rendered as
Python source by :func:`render` with every name mapped through a resolver we control::

    >>> e = parse_expr("4 * n_embd")
    >>> evaluate(e, {"n_embd": 768})
    3072
    >>> render(e, lambda name: f"config.{name}")
    '4 * config.n_embd'
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

# ---------------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Pos:
    """1-based line/column inside the parsed text (not yet inside the spec file)."""

    line: int = 1
    col: int = 1


@dataclass(frozen=True)
class Num:
    value: int | float
    pos: Pos = field(default=Pos(), compare=False)


@dataclass(frozen=True)
class Name:
    id: str
    pos: Pos = field(default=Pos(), compare=False)


@dataclass(frozen=True)
class BinOp:
    op: str  # one of BINARY_OPS
    left: Expr
    right: Expr
    pos: Pos = field(default=Pos(), compare=False)


@dataclass(frozen=True)
class Neg:
    operand: Expr
    pos: Pos = field(default=Pos(), compare=False)


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Expr, ...]
    kwargs: tuple[tuple[str, Expr], ...]
    pos: Pos = field(default=Pos(), compare=False)


@dataclass(frozen=True)
class Slice:
    lower: Expr | None
    upper: Expr | None
    pos: Pos = field(default=Pos(), compare=False)
    step: Expr | None = None


ELLIPSIS = "..."  # x[..., 0]: a Name with this id stands for Python's Ellipsis


@dataclass(frozen=True)
class Subscript:
    value: Expr
    indices: tuple[Expr | Slice, ...]
    pos: Pos = field(default=Pos(), compare=False)


@dataclass(frozen=True)
class Str:
    """A string literal: only meaningful as a layer argument in a .arch spec."""

    value: str
    pos: Pos = field(default=Pos(), compare=False)


@dataclass(frozen=True)
class ListExpr:
    """A ``[a, b]`` list: only meaningful as a layer argument in a .arch spec."""

    items: tuple
    pos: Pos = field(default=Pos(), compare=False)


@dataclass(frozen=True)
class BoolOp:
    """``a and b``, ``a or b``."""

    op: str  # "and" | "or"
    left: Expr
    right: Expr
    pos: Pos = field(default=Pos(), compare=False)


@dataclass(frozen=True)
class Not:
    operand: Expr
    pos: Pos = field(default=Pos(), compare=False)


@dataclass(frozen=True)
class IfElse:
    """``then if cond else other``: ``window // 2 if i % 2 else 0``."""

    cond: Expr
    then: Expr
    other: Expr
    pos: Pos = field(default=Pos(), compare=False)


Expr = Num | Name | BinOp | Neg | Call | Subscript | Str | ListExpr | BoolOp | Not | IfElse


@dataclass(frozen=True)
class Assign:
    targets: tuple[str, ...]
    value: Expr
    pos: Pos = field(default=Pos(), compare=False)


@dataclass(frozen=True)
class Return:
    values: tuple[Expr, ...]
    pos: Pos = field(default=Pos(), compare=False)


@dataclass(frozen=True)
class Effect:
    """A call written for its effect alone, as a statement: ``push(skips, x)``."""

    call: Call
    pos: Pos = field(default=Pos(), compare=False)


Statement = Assign | Return | Effect

BINARY_OPS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//", "mod": "%",
              "matmul": "@", "pow": "**", "lt": "<", "le": "<=", "gt": ">", "ge": ">=",
              "eq": "==", "ne": "!="}
COMPARISONS = ("lt", "le", "gt", "ge", "eq", "ne")

# ------------------------------------------------------------------------------ parsing


class ExprSyntaxError(ValueError):
    """A parse failure with its position in the text and a hint naming the usual mistake."""

    def __init__(self, message: str, pos: Pos, hint: str | None = None):
        super().__init__(message)
        self.message, self.pos, self.hint = message, pos, hint


def _pos(meta_or_token) -> Pos:
    line = getattr(meta_or_token, "line", None) or 1
    col = getattr(meta_or_token, "column", None) or 1
    return Pos(line, col)


@v_args(meta=True)
class _ToAst(Transformer):
    """Turns lark's parse tree into the frozen AST above, keeping positions."""

    def name(self, meta, children):
        text = str(children[0])
        if text in _BOOLS:  # true/false (as YAML and .arch write them) or True/False
            return Num(_BOOLS[text], _pos(children[0]))
        return Name(text, _pos(children[0]))

    def number(self, meta, children):
        text, pos = str(children[0]), _pos(children[0])
        if len(text) > 40:  # int() of thousands of digits is slow, then refused by Python
            raise ExprSyntaxError("number is too long (40 characters at most)", pos)
        value = float(text) if any(c in text for c in ".eE") else int(text)
        if not math.isfinite(value):
            raise ExprSyntaxError(f"number {text} is too large for a float", pos)
        return Num(value, pos)

    def neg(self, meta, children):
        return Neg(children[0], _pos(meta))

    def string(self, meta, children):
        return Str(decode_string(children[0]), _pos(children[0]))

    def list(self, meta, children):
        return ListExpr(tuple(c for c in children if c is not None), _pos(meta))

    def call(self, meta, children):
        func, arguments = children[0], children[1] if len(children) > 1 else None
        args, kwargs = [], []
        for arg in arguments or []:
            (kwargs.append(arg) if isinstance(arg, tuple) else args.append(arg))
        return Call(str(func), tuple(args), tuple(kwargs), _pos(func))

    def arguments(self, meta, children):
        return children

    def keyword(self, meta, children):
        return (str(children[0]), children[1])

    def subscript(self, meta, children):
        return Subscript(children[0], tuple(children[1]), _pos(meta))

    def subscripts(self, meta, children):
        return children

    def slice(self, meta, children):
        lower, upper, *step = children
        return Slice(lower, upper, _pos(meta), step[0] if step else None)

    def ellipsis(self, meta, children):
        return Name(ELLIPSIS, _pos(meta))

    def assign(self, meta, children):
        return Assign(tuple(children[0]), children[1], _pos(meta))

    def targets(self, meta, children):
        return [str(t) for t in children]

    def return_stmt(self, meta, children):
        return Return(tuple(children), _pos(meta))

    def effect(self, meta, children):
        call = self.call(meta, children)
        return Effect(call, call.pos)

    def ifelse(self, meta, children):
        then, cond, other = children
        return IfElse(cond, then, other, _pos(meta))

    def or_(self, meta, children):
        return BoolOp("or", children[0], children[1], _pos(meta))

    def and_(self, meta, children):
        return BoolOp("and", children[0], children[1], _pos(meta))

    def not_(self, meta, children):
        return Not(children[0], _pos(meta))

    def program(self, meta, children):
        return [c for c in children if not isinstance(c, Token)]


_BOOLS = {"true": True, "false": False, "True": True, "False": False}


def _binop(op: str):
    def build(self, meta, children):
        return BinOp(op, children[0], children[1], _pos(meta))

    return build


for _op in BINARY_OPS:
    setattr(_ToAst, _op, v_args(meta=True)(_binop(_op)))


def decode_string(token: str) -> str:
    """A double-quoted STRING token's value (JSON escapes), without any eval."""
    return json.loads(token)


class _NewlinesInBrackets:
    """Post-lexer: a newline inside ( ) or [ ] continues the line, as in Python."""

    always_accept = ("_NL",)

    def process(self, stream):
        depth = 0
        for token in stream:
            if token.type in ("LPAR", "LSQB"):
                depth += 1
            elif token.type in ("RPAR", "RSQB"):
                depth = max(depth - 1, 0)
            elif token.type == "_NL" and depth:
                continue
            yield token


@lru_cache(maxsize=1)
def parser() -> Lark:
    """The one LALR parser for expressions, forward programs and .arch specs.

    lark keeps its analysed tables in archcc's cache folder (keyed by a digest of the
    grammar, options and lark version), when that folder is private to this user."""
    from archcc.cache import trusted_cache_dir

    grammar = (Path(__file__).parent / "grammar.lark").read_text(encoding="utf-8")
    folder = trusted_cache_dir()
    cache = str(folder / "grammar.lark.cache") if folder is not None else False
    return Lark(grammar, start=["program", "expr", "spec_file"], parser="lalr",
                propagate_positions=True, maybe_placeholders=True,
                postlex=_NewlinesInBrackets(), cache=cache)


# Common mistakes, named with lark's match_examples: the hint a user sees for each.
_MISTAKES: dict[str, list[str]] = {
    "unclosed parenthesis": ["f(x", "(a + b", "f(g(x)"],
    "missing operand": ["a +", "a * ", "x = "],
    "two values with no operator between them": ["a b", "2 n_embd"],
    "unclosed bracket": ["x[:, 0"],
}
_HINTS = {
    "unclosed parenthesis": "every '(' needs a matching ')'",
    "missing operand": "an operator needs a value on both sides",
    "two values with no operator between them": "write the operator, e.g. `4 * n_embd`",
    "unclosed bracket": "every '[' needs a matching ']'",
    "unclosed string": 'a string ends with " on the same line',
}


_TOKEN_NAMES = {"_NL": "end of line", "NAME": "a name", "NUMBER": "a number",
                "STRING": "a string", "$END": "end of text", "LBRACE": "'{'", "RBRACE": "'}'",
                "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "EQUAL": "'='",
                "COMMA": "','", "COLON": "':'"}


def _token_name(kind: str) -> str:
    return _TOKEN_NAMES.get(kind, f"'{kind.lower()}'" if kind.isupper() else kind)


_SECTIONS = {"PARAMS", "DIMS", "INPUT", "BLOCK", "MODEL", "CHECKPOINT"}


def _expected_hint(exc: UnexpectedInput) -> str | None:
    raw = set(getattr(exc, "expected", ()) or ())
    if _SECTIONS <= raw:  # between sections of a .arch file
        return "a section starts with params, dims, input, block, model, checkpoint or reference"
    expected = sorted({_token_name(t) for t in raw if not t.startswith("__")})
    if not expected or len(expected) > 6:
        return None
    return "expected " + (expected[0] if len(expected) == 1 else
                          ", ".join(expected[:-1]) + " or " + expected[-1])


def _syntax_error(text: str, exc: UnexpectedInput, start: str) -> ExprSyntaxError:
    label = None
    if start != "spec_file":
        try:
            label = exc.match_examples(lambda s: parser().parse(s, start=start), _MISTAKES,
                                       use_accepts=True)
        except Exception:  # noqa: BLE001 - naming the mistake is best-effort only
            label = None
    pos = Pos(getattr(exc, "line", 1) or 1, getattr(exc, "column", 1) or 1)
    lines = text.splitlines() or [""]
    if isinstance(exc, UnexpectedToken) and exc.token.type == "_NL":
        message = "unexpected end of line"
        label = label or _label_line(lines[min(pos.line, len(lines)) - 1])
    elif isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken)
                                            and exc.token.type == "$END"):
        stripped = text.rstrip().splitlines() or [""]
        pos = Pos(len(stripped), len(stripped[-1]) + 1)
        message = "unexpected end of text"
    elif isinstance(exc, UnexpectedCharacters):
        char = lines[pos.line - 1][pos.col - 1]
        message = f"unexpected character {char!r}"
        if char == '"':
            label = "unclosed string"
    else:
        message = f"unexpected {exc.token!s}" if getattr(exc, "token", None) else "syntax error"
        if getattr(exc, "token", None) is not None:
            message = f"unexpected '{exc.token!s}'"
    opened = _unclosed_before(lines, pos)
    hint = None
    if opened is not None and opened[0] < pos.line:  # a bracket left open on an earlier line
        def indent(line: str) -> int:
            return len(line) - len(line.lstrip())

        continued = indent(lines[pos.line - 1]) > indent(lines[opened[0] - 1])
        if continued and "COMMA" in (getattr(exc, "expected", None) or ()):
            hint = "a ',' is missing at the end of the line above"
        else:  # the next statement started while a bracket was still open
            label = "unclosed parenthesis" if opened[2] == "(" else "unclosed bracket"
            pos = Pos(opened[0], opened[1])
    hint = hint or _HINTS.get(label or "") or _expected_hint(exc)
    return ExprSyntaxError(label or message, pos, hint)


def _unclosed_before(lines: list[str], pos: Pos) -> tuple[int, int, str] | None:
    """(line, col, char) of the innermost bracket still open where parsing failed."""
    stack: list[tuple[int, int, str]] = []
    for number, line in enumerate(lines[:pos.line], start=1):
        end = pos.col - 1 if number == pos.line else len(line)
        in_string = False
        for col, char in enumerate(line[:end], start=1):
            if char == '"':
                in_string = not in_string
            elif in_string:
                continue
            elif char == "#":
                break
            elif char in "([":
                stack.append((number, col, char))
            elif char in ")]" and stack:
                stack.pop()
    return stack[-1] if stack else None


def _label_line(line: str) -> str | None:
    """Name the mistake on one line of a program by its bracket balance."""
    if line.count("(") > line.count(")"):
        return "unclosed parenthesis"
    if line.count("[") > line.count("]"):
        return "unclosed bracket"
    return None


MAX_TEXT = 20_000  # characters in one expression or forward program
MAX_DEPTH = 100  # AST nesting; real specs stay under 15


def _parse(text: str, start: str):
    if len(text) > MAX_TEXT:
        raise ExprSyntaxError(f"text is longer than {MAX_TEXT} characters", Pos())
    try:
        tree = _ToAst().transform(parser().parse(text, start=start))
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc, start) from None
    except (RecursionError, VisitError) as exc:
        if isinstance(exc, VisitError) and isinstance(exc.orig_exc, ExprSyntaxError):
            raise exc.orig_exc from None
        if isinstance(exc, VisitError) and not isinstance(exc.orig_exc, RecursionError):
            raise
        raise ExprSyntaxError("expression nests too deeply", Pos(),
                              "split it into named steps") from None
    if _depth(tree) > MAX_DEPTH:  # evaluation and rendering recurse: keep them far from limits
        raise ExprSyntaxError("expression nests too deeply", Pos(), "split it into named steps")
    return tree


def _children(node) -> list:
    if isinstance(node, list | tuple):
        return list(node)
    fields = [getattr(node, f, None) for f in ("left", "right", "operand", "lower", "upper",
                                                "cond", "then", "other")]
    if isinstance(node, Assign | Subscript):
        fields.append(node.value)
    if isinstance(node, Effect):
        fields.append(node.call)
    fields += [*getattr(node, "args", ()), *(v for _, v in getattr(node, "kwargs", ())),
               *getattr(node, "indices", ()), *getattr(node, "values", ())]
    return [f for f in fields if f is not None]


def _depth(tree) -> int:
    """Nesting depth of an AST (or list of statements), computed without recursion."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack += [(child, depth + 1) for child in _children(node)]
    return deepest


def parse_expr(text: str) -> Expr:
    """Parse one expression such as ``4 * n_embd`` or ``n_embd // n_head``.

    Cached by text: a stage loop evaluates its arguments once per instance, and the AST is
    immutable (frozen dataclasses), so every instance shares one parse."""
    return _parse_cached(text)


@lru_cache(maxsize=8192)
def _parse_cached(text: str) -> Expr:
    return _parse(text, "expr")


def parse_program(text: str) -> list[Statement]:
    """Parse forward wiring: assignments and a ``return``, one per line."""
    return _parse(text + "\n", "program")


# The evaluator and the renderer live in expr_eval; their names are part of this module's API.
from archcc.parser.expr_eval import (  # noqa: E402,F401 - re-exported
    FUNCTIONS,
    MAX_MAGNITUDE,
    PRECEDENCE,
    ExprError,
    arithmetic,
    did_you_mean,
    evaluate,
    names_in,
    python_type,
    render,
    render_binary,
    render_prec,
    wrap,
)
