"""Normalisation layers over the last axis: ``layernorm`` and ``rmsnorm`` (torch's own).

    ln_f: {op: layernorm, dim: n_embd, eps: 1.0e-5}  ->  self.ln_f = nn.LayerNorm(config.n_embd)
    norm: {op: rmsnorm, dim: dim, eps: eps}          ->  self.norm = nn.RMSNorm(config.dim, ...)

Both keep the input's shape; the last dim must be ``dim``. A residual's norm
(``op: residual``) is one of these kinds too. GroupNorm, over channels, is in
:mod:`archcc.ops.groupnorm`.
"""

from __future__ import annotations

from typing import Literal

from archcc.codegen import safe_text
from archcc.ir.graph import Submodule
from archcc.ir.shapes import FLOAT
from archcc.ops import Example, Kind, Op, kind, op, register_helper
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
    upcast: Literal["none", "norm", "all"] = "none"
    """Numerics: `none` is torch's nn.RMSNorm in the input's dtype; `norm` normalises in
    float32 and casts back before the weight (Hugging Face LLaMA, Mistral, Qwen, Phi-3);
    `all` multiplies the weight in float32 too, then casts (OLMo-2, Gemma)."""
    unit_offset: bool = False
    """Scale by `1 + weight`, the weight starting at zero (Gemma)."""


NORMS = ("layernorm", "rmsnorm")


def submodule(norm: str, name: str, dim, eps, loc=None, bias: bool = True,
              upcast: str = "none", unit_offset: bool = False) -> Submodule:
    """The ``nn.LayerNorm`` or ``nn.RMSNorm`` line of a norm called ``norm`` (an RMSNorm
    with ``upcast`` or ``unit_offset`` is the generated file's own ``RMSNorm``)."""
    args = {"dim": dim, "eps": eps}
    if norm == "layernorm":
        args["bias"] = Num(bias)
    if upcast != "none" or unit_offset:
        args.update(upcast=upcast, unit_offset=unit_offset)
    return Submodule(name, norm, args, loc)


class _Norm(Op):
    sizes, scalars, is_norm = ("dim",), ("eps",), True

    def submodules(self, layer):
        spec = layer.spec
        return [submodule(self.name, layer.name, layer.sizes["dim"], layer.sizes["eps"],
                          layer.loc, getattr(spec, "bias", True), getattr(spec, "upcast", "none"),
                          getattr(spec, "unit_offset", False))]

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

    def facet(self, fields):
        return "rmsnorm" + (" (1 + w)" if fields.get("unit_offset") else "")


class _NormKind(Kind):
    init_params, no_decay = ("weight", "bias"), True
    init = torch_init = {"weight": "ones", "bias": "zeros"}

    def call_shape(self, ctx, sub, shapes, dtypes):
        return shapes[0], dtypes[0] if self.name == "layernorm" else FLOAT

    def state(self, sub, value):
        return ["weight", "bias"] if value(sub.args.get("bias", False)) else ["weight"]


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
    """With ``unit_offset`` (Gemma's ``x * (1 + w)``) the weight starts at zeros, as its
    constructor and transformers' Gemma ``_init_weights`` set it: a gain of one."""

    name, init_params = "rmsnorm", ("weight",)

    def default_init(self, sub, param):
        return "zeros" if sub.args.get("unit_offset") else super().default_init(sub, param)

    def torch_default(self, sub, param):
        return "zeros" if sub.args.get("unit_offset") else super().torch_default(sub, param)

    def init_lines(self, sub, arg):
        a = sub.args
        if "upcast" not in a:
            return [f"self.{sub.name} = nn.RMSNorm({arg(a['dim'])}, eps={arg(a['eps'])})"]
        extra = "" if a["upcast"] == "norm" else f", upcast={safe_text.literal(a['upcast'])}"
        extra += ", unit_offset=True" if a["unit_offset"] else ""
        return [f"self.{sub.name} = RMSNorm({arg(a['dim'])}, eps={arg(a['eps'])}{extra})"]


RMS_NORM = '''
class RMSNorm(nn.Module):
    """Root-mean-square normalisation as Hugging Face computes it: in float32.

    x / sqrt(mean(x ** 2) + eps) over the last dim, then times the weight, cast back to x's
    dtype before the weight (``upcast="norm"``: LLaMA, Mistral, Qwen, Phi-3) or after it
    (``"all"``: OLMo-2, Gemma). ``unit_offset`` scales by 1 + weight (Gemma: weight starts at 0).
    """

    def __init__(
        self, dim: int, eps: float = 1e-6, upcast: str = "norm", unit_offset: bool = False
    ) -> None:
        super().__init__()
        self.eps, self.upcast, self.unit_offset = eps, upcast, unit_offset
        self.weight = nn.Parameter(torch.zeros(dim) if unit_offset else torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.upcast == "none" else x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        weight = 1.0 + self.weight.float() if self.unit_offset else self.weight
        if self.upcast == "norm":
            return weight * h.to(x.dtype)
        return (h * weight).to(x.dtype)
'''

register_helper("RMSNorm", RMS_NORM)
