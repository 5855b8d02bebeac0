"""The spec's ``init:`` section: how each parameter of a fresh model is drawn.

Keys are layer kinds (``linear``, ``embedding``, ``layernorm``, ...) or dotted path
patterns (``*`` matches one segment, or part of one), tried in order; the first that
matches a parameter decides it. Values are one scheme, written in archcc's expression
language (parsed, never eval'd), with arguments over the spec's params::

    init:
      h.*.attn.proj.weight: normal(0.02 / sqrt(2 * n_layer))   # GPT-2's residual scaling
      linear: normal(0.02)                                     # weights; biases zeros
      embedding: normal(0.02)

A rule on a layer (a kind or a layer path) draws its weights with the scheme and its biases
with ``bias =`` (default ``zeros``; ``torch_default`` keeps PyTorch's). The schemes and their
arguments (positional in the order listed)::

    >>> parse_scheme("normal(0.02, bias = ones)").args
    (('std', Num(value=0.02)),)
    >>> sorted(SCHEMES)[:3]
    ['constant', 'kaiming_normal', 'kaiming_uniform']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archcc.parser.expr import (
    Call,
    Expr,
    ExprSyntaxError,
    Name,
    Pos,
    Str,
    did_you_mean,
    parse_expr,
)

# scheme -> its arguments, in positional order, with defaults (None: required)
SCHEMES: dict[str, dict[str, Any]] = {
    "normal": {"std": 0.02, "mean": 0.0},
    "truncated_normal": {"std": 0.02, "a": -2.0, "b": 2.0, "mean": 0.0},  # bounds absolute
    "uniform": {"bound": None},          # U(-bound, bound), or uniform(a = lo, b = hi)
    "xavier_uniform": {"gain": 1.0},
    "xavier_normal": {"gain": 1.0},
    "kaiming_uniform": {"a": 0.0, "mode": "fan_in", "nonlinearity": "leaky_relu"},
    "kaiming_normal": {"a": 0.0, "mode": "fan_in", "nonlinearity": "leaky_relu"},
    "lecun_normal": {},                  # timm / JAX: truncated normal, variance 1 / fan_in
    "orthogonal": {"gain": 1.0},
    "zeros": {},
    "ones": {},
    "constant": {"value": None},
    "torch_default": {},                 # what PyTorch's constructor draws for this layer
}
ENUMS = {"mode": ("fan_in", "fan_out"),
         "nonlinearity": ("relu", "leaky_relu", "tanh", "sigmoid", "selu")}  # sigmoid: gain 1
# schemes that draw a block of rows as they draw the whole (they ignore fan_out), so a fused
# q|k|v weight may take them in one call
ROW_INVARIANT = {"normal", "truncated_normal", "uniform", "zeros", "ones", "constant",
                 "lecun_normal", "torch_default"}


@dataclass(frozen=True)
class Scheme:
    """One parsed scheme: its name, the arguments given (numbers as expressions, ``mode``
    and ``nonlinearity`` as text) and the scheme of a layer's biases (``bias =``)."""

    name: str
    args: tuple[tuple[str, Any], ...] = ()
    bias: Scheme | None = None
    pos: Pos = field(default=Pos(), compare=False)

    def arg(self, key: str) -> Any:
        """The argument given, else the scheme's default (a float, or None)."""
        given = dict(self.args)
        return given[key] if key in given else SCHEMES[self.name].get(key)

    def row_invariant(self) -> bool:
        """Drawing rows one block at a time is the same as drawing them at once."""
        if self.name.startswith("kaiming"):
            return self.arg("mode") == "fan_in"
        return self.name in ROW_INVARIANT


class InitSyntaxError(ExprSyntaxError):
    """A scheme that is not one: an unknown name, a missing or unknown argument."""


def parse_scheme(text: str) -> Scheme:
    """``"normal(0.02 / sqrt(2 * n_layer))"`` -> Scheme("normal", (("std", <expr>),)).

    Raises :class:`ExprSyntaxError` (a subclass for mistakes past the grammar) at a position
    inside ``text``."""
    return _scheme(parse_expr(text), nested=False)


def _scheme(expr: Expr, nested: bool) -> Scheme:
    if isinstance(expr, Name):
        expr = Call(expr.id, (), (), expr.pos)
    if not isinstance(expr, Call):
        raise InitSyntaxError("expected a scheme such as normal(0.02), zeros or "
                              "xavier_uniform", getattr(expr, "pos", Pos()), _known())
    if expr.func not in SCHEMES:
        raise InitSyntaxError(f"unknown scheme '{expr.func}'", expr.pos,
                              did_you_mean(expr.func, set(SCHEMES)) or _known())
    params = list(SCHEMES[expr.func])
    if len(expr.args) > len(params):
        raise InitSyntaxError(f"{expr.func}() takes at most {len(params)} positional "
                              f"argument(s) ({', '.join(params) or 'none'})", expr.pos)
    given = dict(zip(params, expr.args, strict=False))
    bias = None
    for key, value in expr.kwargs:
        if key == "bias" and not nested:
            bias = _scheme(value, nested=True)
            continue
        allowed = params + (["a", "b"] if expr.func == "uniform" else [])
        if key not in allowed or key in given:
            what = "given twice" if key in given else "is not an argument of"
            raise InitSyntaxError(f"'{key}' {what} {expr.func}()", expr.pos,
                                  f"{expr.func} takes {', '.join(allowed) or 'no arguments'}"
                                  + ("" if nested else "; a layer rule also takes bias ="))
        given[key] = value
    for key in [k for k in given if k in ENUMS]:
        given[key] = _enum(key, given[key])
    _check_required(expr, given)
    return Scheme(expr.func, tuple(given.items()), bias, expr.pos)


def _enum(key: str, value: Expr) -> str:
    text = value.id if isinstance(value, Name) else value.value if isinstance(value, Str) \
        else None
    if text not in ENUMS[key]:
        raise InitSyntaxError(f"{key} must be one of {', '.join(ENUMS[key])}",
                              getattr(value, "pos", Pos()))
    return text


def _check_required(expr: Call, given: dict) -> None:
    if expr.func == "uniform":
        if ("bound" in given) == ("a" in given or "b" in given) or \
                ("bound" not in given and not ("a" in given and "b" in given)):
            raise InitSyntaxError("uniform takes a bound, uniform(0.1), or both ends, "
                                  "uniform(a = -0.1, b = 0.1)", expr.pos)
        return
    missing = [k for k, d in SCHEMES[expr.func].items() if d is None and k not in given]
    if missing:
        raise InitSyntaxError(f"{expr.func}() needs {', '.join(missing)}", expr.pos,
                              f"e.g. {expr.func}(1.0)")


def _known() -> str:
    return "schemes: " + ", ".join(SCHEMES)


def numbers(scheme: Scheme) -> list[tuple[str, Expr]]:
    """The numeric arguments (expressions over params) of a scheme and of its ``bias``."""
    out = [(k, v) for k, v in scheme.args if not isinstance(v, str)]
    return out + (numbers(scheme.bias) if scheme.bias is not None else [])


def default_bias(scheme: Scheme) -> Scheme:
    """What a layer rule's biases get when it says no ``bias =``: zeros (Hugging Face,
    timm, nanoGPT), or PyTorch's own draw under ``torch_default``."""
    if scheme.bias is not None:
        return scheme.bias
    return Scheme("torch_default") if scheme.name == "torch_default" else Scheme("zeros")
