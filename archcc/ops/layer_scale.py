"""``op: layer_scale``: a learned per-channel gain on a residual branch (CaiT, ConvNeXt).

    layer_scale_parameter: {op: layer_scale, dim: dim, init: 1.0e-6}
    ->  self.layer_scale_parameter = nn.Parameter(torch.full((config.dim,), 1e-06))
    layer_scale_parameter(y) with y (B, H, W, dim)  ->  self.layer_scale_parameter * y

The gain starts small (``init``), so each residual branch starts near the identity and deep
stacks train stably (Touvron et al. 2021). The parameter sits on the block itself under the
layer's name, as Hugging Face's ``layer_scale_parameter`` (timm calls it ``gamma``); with
``channels_first`` it scales dim 1 of (B, C, H, W) instead of the last dim. The bare name is
the tensor (``gamma * y`` is the same).
"""

from __future__ import annotations

from typing import Literal

from archcc.ir.shapes import FLOAT
from archcc.ops import Example, Op, op, parameter
from archcc.ops.base import field_diag
from archcc.parser.fields import Scalar, Size, Strict


class LayerScale(Strict):
    """A learned per-channel gain `gamma * y`, gamma starting at `init` (CaiT's and
    ConvNeXt's layer scale)."""

    op: Literal["layer_scale"]
    dim: Size
    """Channels scaled: the last dim of the input (dim 1 with `channels_first`)."""
    init: Scalar = 1e-6
    """Every gain's value at construction (ConvNeXt: 1e-6; timm `LayerScale`: 1e-5)."""
    channels_first: bool = False
    """Scale dim 1 of an image (B, C, H, W) rather than the last dim."""


@op
class LayerScaleOp(Op):
    name, schema, order = "layer_scale", LayerScale, 125
    sizes, scalars, wrappable = ("dim",), ("init",), False  # a gain, not a branch
    example = Example("gamma: {op: layer_scale, dim: n_embd, init: 0.1}", {"n_embd": 16})

    def check(self, scope, layer):
        if scope.value(layer.sizes["init"]) == 0:
            scope.errors.append(field_diag(scope, layer, "init", "init 0 would zero the "
                                           "branch for good (no gradient reaches it either)",
                                           "Hugging Face's layer_scale_init_value 0 means no "
                                           "layer scale: leave the layer out"))

    def submodules(self, layer):
        s = layer.sizes
        return [parameter.submodule(layer.name, (s["dim"],), "constant", s["init"],
                                    layer.loc)]

    def value(self, fwd, layer, pos):
        return fwd.node("get_attr", [], pos, var=layer.name, target=layer.name)

    def value_shape(self, layer):
        return (layer.dim("dim"),), FLOAT

    def call(self, fwd, layer, e):
        """``gamma * y``; channels first: ``gamma.unsqueeze(-1).unsqueeze(-1) * y``."""
        args, kwargs = fwd.call_args(layer, e)
        if len(args) != 1 or kwargs:
            fwd.fail(e.pos, f"{layer.name}() scales one tensor", f"call {layer.name}(y)")
        gamma = self.value(fwd, layer, e.pos)
        if layer.spec.channels_first:
            for _ in range(2):
                gamma = fwd.node("unsqueeze", [gamma], e.pos, var=layer.name, dim=-1)
        return fwd.node("mul", [gamma, args[0]], e.pos)

    def params(self, values):
        return values["dim"]

    def flops(self, values, shapes):
        return 0
