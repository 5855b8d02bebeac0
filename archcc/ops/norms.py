"""Normalisation layers over the last axis: ``layernorm`` and ``rmsnorm`` (torch's own).

    ln_f: {op: layernorm, dim: n_embd, eps: 1.0e-5}  ->  self.ln_f = nn.LayerNorm(config.n_embd)
    norm: {op: rmsnorm, dim: dim, eps: eps}          ->  self.norm = nn.RMSNorm(config.dim, ...)

Both keep the input's shape; the last dim must be ``dim``. A residual's norm
(``op: residual``) is one of these kinds too. GroupNorm, over channels, is in
:mod:`archcc.ops.groupnorm`.
"""

from __future__ import annotations

from typing import Literal

from archcc.ir.graph import Submodule
from archcc.ir.shapes import FLOAT
from archcc.ops import Example, Kind, Op, kind, op
from archcc.ops.base import is_default
from archcc.ops.linear import last_dim
from archcc.parser.expr import Num
from archcc.parser.fields import Scalar, Size, Strict


class LayerNorm(Strict):
    """Layer normalisation over the last axis."""

    op: Literal["layernorm"]
    dim: Size
    """Width normalised: the input's last dim."""
    eps: Scalar = 1e-5
    """Added to the variance (HF BERT uses 1e-12)."""
    bias: bool = True
    """A learned shift besides the learned scale (false: scale only, as in OLMo)."""


class RMSNorm(Strict):
    """Root-mean-square normalisation over the last axis (no centring, no bias)."""

    op: Literal["rmsnorm"]
    dim: Size
    """Width normalised: the input's last dim."""
    eps: Scalar = 1e-6
    """Added to the mean square before the root."""


NORMS = ("layernorm", "rmsnorm")


def submodule(norm: str, name: str, dim, eps, loc=None, bias: bool = True) -> Submodule:
    """The ``nn.LayerNorm`` or ``nn.RMSNorm`` line of a norm called ``norm``."""
    args = {"dim": dim, "eps": eps}
    if norm == "layernorm":
        args["bias"] = Num(bias)
    return Submodule(name, norm, args, loc)


class _Norm(Op):
    sizes, scalars, is_norm = ("dim",), ("eps",), True

    def submodules(self, layer):
        bias = getattr(layer.spec, "bias", True)
        return [submodule(self.name, layer.name, layer.sizes["dim"], layer.sizes["eps"],
                          layer.loc, bias)]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        last_dim(ctx, layer, shapes[0], "dim", "input")
        return shapes[0], FLOAT

    def flops(self, values, shapes):
        return 0


@op
class LayerNormOp(_Norm):
    name, schema, order = "layernorm", LayerNorm, 30
    example = Example("ln_f: {op: layernorm, dim: n_embd, eps: 1.0e-5}", {"n_embd": 16})

    def params(self, values):
        return values["dim"] * (2 if values["bias"] else 1)


@op
class RMSNormOp(_Norm):
    name, schema, order = "rmsnorm", RMSNorm, 40
    example = Example("norm: {op: rmsnorm, dim: n_embd}", {"n_embd": 16})

    def params(self, values):
        return values["dim"]


class _NormKind(Kind):
    init_params, no_decay = ("weight", "bias"), True
    init = torch_init = {"weight": "ones", "bias": "zeros"}

    def call_shape(self, ctx, sub, shapes, dtypes):
        return shapes[0], dtypes[0] if self.name == "layernorm" else FLOAT


@kind
class LayerNormKind(_NormKind):
    name = "layernorm"

    def init_lines(self, sub, arg):
        a = sub.args
        extra = "" if is_default(a["eps"], 1e-5) else f", eps={arg(a['eps'])}"
        extra += "" if is_default(a["bias"], True) else f", bias={arg(a['bias'])}"
        return [f"self.{sub.name} = nn.LayerNorm({arg(a['dim'])}{extra})"]


@kind
class RMSNormKind(_NormKind):
    name, init_params = "rmsnorm", ("weight",)

    def init_lines(self, sub, arg):
        return [f"self.{sub.name} = nn.RMSNorm({arg(sub.args['dim'])}, "
                f"eps={arg(sub.args['eps'])})"]
