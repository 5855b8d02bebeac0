"""``op: timesteps``: the sinusoidal embedding of diffusion timesteps (diffusers).

    t_emb: {op: timesteps, dim: 128, flip_sin_to_cos: true, downscale_freq_shift: 0}
    t_emb(t) with t (B,)  ->  (B, 128): cat(cos, sin) of t * max_period ** (-i / (64 - shift))
"""

from __future__ import annotations

from typing import Literal

from archcc.ir.builder import Builder, E
from archcc.ir.graph import ModuleIR, Submodule
from archcc.ir.shapes import FLOAT, ShapeError, fmt
from archcc.ops import Example, Op, op, register_buffer
from archcc.ops.base import diag
from archcc.ops.conv2d import image_arity
from archcc.parser.fields import Scalar, Size, Strict


class Timesteps(Strict):
    """Sinusoidal embedding of diffusion timesteps (B,) -> (B, dim), the conventions of
    diffusers `get_timestep_embedding`."""

    op: Literal["timesteps"]
    dim: Size
    """Embedding width (even)."""
    flip_sin_to_cos: bool = False
    """Put the cosines first: `cat(cos, sin)` instead of `cat(sin, cos)`."""
    downscale_freq_shift: Scalar = 1.0
    """Frequencies are `max_period ** (-i / (dim / 2 - shift))`."""
    max_period: Scalar = 10000
    """The longest period of the sines (the base of the frequencies)."""
    scale: Scalar = 1.0
    """Multiplies the angles."""


@op
class TimestepsOp(Op):
    name, schema, order = "timesteps", Timesteps, 240
    sizes, scalars = ("dim",), ("downscale_freq_shift", "max_period", "scale")
    example = Example("t_emb: {op: timesteps, dim: 16}", {}, {"t": "[B] int64"}, dims={})

    def declare(self, scope, layer):
        super().declare(scope, layer)
        if layer.sizes["scale"] is not None:
            layer.facets["scaled"] = scope.value(layer.sizes["scale"]) != 1

    def check(self, scope, layer):
        dim = scope.value(layer.sizes["dim"])
        if dim % 2:
            scope.errors.append(diag(layer, f"dim ({dim}) must be even: half sines, half "
                                     "cosines"))

    def submodules(self, layer):
        s = layer.sizes
        return [Submodule(layer.name, "class", {
            "dim": s["dim"], "downscale_freq_shift": s["downscale_freq_shift"],
            "max_period": s["max_period"], "scale": s["scale"]}, layer.loc)]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        image_arity(layer, shapes, kwargs)
        x = shapes[0]
        if len(x) != 1:
            raise ShapeError(f"{layer.name} embeds one timestep per sample: needs (B,), got "
                             f"{fmt(x)}")
        return (x[0], layer.dim("dim")), FLOAT

    def lower(self, layer, kwargs):
        return lower(layer.spec.flip_sin_to_cos, layer.facets["scaled"])

    def params(self, values):
        return 0

    def flops(self, values, shapes):
        return 0


@register_buffer("timestep_freqs")
def frequencies(sub, arg) -> list[str]:
    """diffusers' ``get_timestep_embedding`` frequencies, computed in the same float32 order."""
    a = sub.args
    half, shift, period = arg(a["half"]), arg(a["shift"]), arg(a["max_period"])
    return [
        f"exponent = -math.log({period}) * torch.arange({half}, dtype=torch.float32)",
        f"freqs = torch.exp(exponent / ({half} - {shift}))",
        f'self.register_buffer("{sub.name}", freqs, persistent=False)',
    ]


def lower(flip: bool, scaled: bool) -> ModuleIR:
    """(B,) -> (B, dim): ``cat(sin, cos)`` (or cos first) of ``t * max_period ** (-i / ...)``."""
    b = Builder("Timesteps")
    t = b.input("timesteps", "B")
    subs = {"freqs": Submodule("freqs", "buffer", {
        "init": "timestep_freqs", "half": E("dim // 2"), "shift": E("downscale_freq_shift"),
        "max_period": E("max_period")})}
    freqs = b.line().attr("freqs", "dim / 2")
    args = b.op("mul", b.op("unsqueeze", t, var="args", dim=-1), freqs, var="args")
    if scaled:
        args = b.line().op("mul", args, b.op("const", var="scale", value=E("scale")),
                           var="args")
    sin, cos = b.line().op("sin", args), b.op("cos", args)
    b.ret(b.op("cat", *((cos, sin) if flip else (sin, cos)), var="emb", dim=-1))
    return ModuleIR("Timesteps", "lowered", b.g, subs,
                    ctor_args=[("dim", None), ("downscale_freq_shift", 1.0),
                               ("max_period", 10000), ("scale", 1.0)],
                    scalars={"scale": E("scale")} if scaled else {},
                    doc="Sinusoidal timestep embedding (diffusers get_timestep_embedding, "
                        f"{'cos' if flip else 'sin'} first).",
                    signature=("timesteps", flip, scaled))
