"""``op: activation``: a pointwise nonlinearity as a layer (``nn.GELU()``, ``nn.SiLU()``...).

    act: {op: activation, fn: gelu_tanh}  ->  self.act = nn.GELU(approximate="tanh")

The same functions are callable in forward wiring without a layer: ``gelu(x)``.
"""

from __future__ import annotations

from typing import Literal

from archcc.ir.graph import Submodule
from archcc.ops import Example, Kind, Op, kind, op
from archcc.ops.base import diag
from archcc.parser.fields import Activation, Strict

MODULES = {"relu": "nn.ReLU()", "gelu": "nn.GELU()", "gelu_tanh": 'nn.GELU(approximate="tanh")',
           "silu": "nn.SiLU()", "tanh": "nn.Tanh()", "sigmoid": "nn.Sigmoid()",
           "identity": "nn.Identity()"}


class ActivationLayer(Strict):
    """A pointwise nonlinearity as a layer (functions such as `gelu(x)` work in forward too)."""

    op: Literal["activation"]
    fn: Activation
    """The function; `quick_gelu` (CLIP's) exists only as `quick_gelu(x)` in forward."""


@op
class ActivationOp(Op):
    name, schema, order = "activation", ActivationLayer, 60
    example = Example("act: {op: activation, fn: gelu_tanh}")

    def check(self, scope, layer):
        if layer.spec.fn not in MODULES:  # quick_gelu: CLIP's, a function only
            scope.errors.append(diag(layer, f"{layer.spec.fn} has no nn module; call it in "
                                     "forward", f"write {layer.spec.fn}(x) in the forward wiring"))

    def submodules(self, layer):
        return [Submodule(layer.name, "activation", {"fn": layer.spec.fn}, layer.loc)]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        return shapes[0], dtypes[0]

    def params(self, values):
        return 0

    def flops(self, values, shapes):
        return 0


@kind
class ActivationKind(Kind):
    name = "activation"

    def init_lines(self, sub, arg):
        return [f"self.{sub.name} = {MODULES[sub.args['fn']]}"]

    def state(self, sub, value):
        return []
