"""``op: parameter``: a free learned tensor (a CLS token, a position table, a temperature).

    cls_token: {op: parameter, shape: [1, 1, hidden_size]}
    ->  self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))

It is a value, not a layer: the forward uses its name (``cat(cls_token, x)``), never calls
it. Lowered classes hold parameters of this kind too (Swin's relative position table).
"""

from __future__ import annotations

from typing import Literal

from archcc.ir.graph import Submodule
from archcc.ir.shapes import FLOAT
from archcc.ops import Example, Kind, Op, kind, op
from archcc.parser.fields import Scalar, Size, Strict

_INITS = {"zeros": "torch.zeros", "ones": "torch.ones", "normal": "torch.randn"}


class Parameter(Strict):
    """A free learned tensor, e.g. a CLS token (1, 1, dim) or a position table."""

    op: Literal["parameter"]
    shape: list[Size]
    """Its dims, sizes or param expressions: `[1, 1, hidden_size]`."""
    init: Literal["zeros", "ones", "normal", "constant"] = "zeros"
    """Its value at construction (`constant`: `value` everywhere)."""
    value: Scalar = 0.0
    """The fill value of `init: constant` (CLIP's logit_scale starts at log(1 / 0.07))."""


def submodule(name: str, shape: tuple, init: str = "zeros", value=None, loc=None,
              default_init: str | None = None) -> Submodule:
    """An ``nn.Parameter`` line of this shape (expressions) and initial value;
    ``default_init`` is the scheme ``init_weights()`` draws it with when the spec's ``init:``
    does not name it (a ViT's CLS token: ``truncated_normal(0.02)``)."""
    args = {"shape": tuple(shape), "init": init}
    if value is not None:
        args["value"] = value
    if default_init is not None:
        args["default_init"] = default_init
    return Submodule(name, "parameter", args, loc)


@op
class ParameterOp(Op):
    name, schema, order = "parameter", Parameter, 110
    scalars = ("value",)
    example = Example("cls_token: {op: parameter, shape: [1, 1, n_embd]}", {"n_embd": 16},
                      call="x + cls_token")

    def declare(self, scope, layer):
        super().declare(scope, layer)
        for i, raw in enumerate(layer.spec.shape):
            layer.sizes[f"shape{i}"] = scope.size(raw, (*layer.path, "shape", str(i)))

    def submodules(self, layer):
        return [submodule(layer.name, self.shape_exprs(layer), layer.spec.init,
                          layer.sizes["value"], layer.loc)]

    @staticmethod
    def shape_keys(layer) -> list[str]:
        return sorted((k for k in layer.sizes if k.startswith("shape")), key=lambda k: int(k[5:]))

    def shape_exprs(self, layer) -> tuple:
        return tuple(layer.sizes[k] for k in self.shape_keys(layer))

    def value(self, fwd, layer, pos):
        return fwd.node("get_attr", [], pos, var=layer.name, target=layer.name)

    def value_shape(self, layer):
        return tuple(layer.dim(k) for k in self.shape_keys(layer)), FLOAT

    def call(self, fwd, layer, e):
        fwd.fail(e.pos, f"'{layer.name}' is a parameter, not a layer; use it as a value")

    def params(self, values):
        count = 1
        for d in values["shape"]:
            count *= d
        return count

    def flops(self, values, shapes):
        return 0


@kind
class ParameterKind(Kind):
    name, init_params = "parameter", ("",)  # the tensor is the attribute itself

    def default_init(self, sub, param):
        """What the spec's ``init:`` field says, unless the op that holds it knows better
        (``default_init``: ViT's CLS token starts at ``truncated_normal(0.02)``)."""
        return sub.args.get("default_init") or self.torch_init_of(sub)

    def torch_default(self, sub, param):
        return self.torch_init_of(sub)

    @staticmethod
    def torch_init_of(sub) -> str:
        return {"zeros": "zeros", "ones": "ones", "normal": "normal(1.0)",
                "constant": "constant(value)"}[sub.args["init"]]

    def state(self, sub, value):
        return [""]

    def init_lines(self, sub, arg):
        a = sub.args
        dims = [arg(d) for d in a["shape"]]
        if a["init"] == "constant":  # e.g. CLIP's logit_scale = log(1 / 0.07)
            shape = "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
            return [f"self.{sub.name} = nn.Parameter(torch.full({shape}, {arg(a['value'])}))"]
        return [f"self.{sub.name} = nn.Parameter({_INITS[a['init']]}({', '.join(dims)}))"]
