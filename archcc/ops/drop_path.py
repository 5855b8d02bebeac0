"""``op: drop_path``: stochastic depth, dropping a residual branch for whole samples.

    drop_path: {op: drop_path, p: 0.1}  ->  self.drop_path = DropPath(0.1)
    x = x + drop_path(branch(x))        # in training each sample keeps its branch with
                                        # probability 1 - p, scaled by 1 / (1 - p)

Huang et al. 2016, as timm's ``DropPath`` computes it (the same random draws, so a seeded
run matches timm's exactly): one Bernoulli(1 - p) per sample, broadcast over the other
dims, surviving samples divided by 1 - p. In eval, or with ``p: 0``, it is the identity. The
generated class::

    class DropPath(nn.Module):
        def forward(self, x):
            if not self.training or self.p == 0.0:
                return x
            keep = 1.0 - self.p
            mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
            return x * mask.div_(keep)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from archcc.codegen.forward import Line
from archcc.ir.builder import E, dims
from archcc.ir.graph import ModuleIR, Submodule, add_node, new_graph
from archcc.ir.shapes import register_rule, same
from archcc.ops import Example, Op, op
from archcc.ops.base import field_diag
from archcc.parser.fields import Scalar, Strict


@dataclass
class Body:
    """What codegen writes for a class whose op spells out its forward (see views.py)."""

    forward_params: str
    forward_lines: list[Line]
    methods: list = field(default_factory=list)


class DropPath(Strict):
    """Stochastic depth: in training, zero a residual branch for whole samples with
    probability p and scale the kept ones by 1 / (1 - p); the identity in eval."""

    op: Literal["drop_path"]
    p: Scalar = 0.0
    """Probability of dropping a sample's branch, in [0, 1)."""


@op
class DropPathOp(Op):
    name, schema, order = "drop_path", DropPath, 55
    scalars = ("p",)
    example = Example("drop_path: {op: drop_path, p: 0.1}")

    def check(self, scope, layer):
        p = scope.value(layer.sizes["p"])  # outside [0, 1]: the bound every `p` has
        if p == 1:
            scope.errors.append(field_diag(scope, layer, "p", f"p ({p}) must lie in [0, 1)",
                                           "p = 1 would drop the branch always: leave the "
                                           "branch out instead"))

    def submodules(self, layer):
        return [Submodule(layer.name, "class", {"p": layer.sizes["p"]}, layer.loc)]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        from archcc.ops.conv2d import image_arity

        image_arity(layer, shapes, kwargs, usage=f"x + {layer.name}(branch(x))")
        return shapes[0], dtypes[0]

    def lower(self, layer, kwargs):
        g = new_graph("DropPath")
        x = add_node(g, "input", var="x", name="x")
        g.nodes[x].update(shape=dims("B"), dtype="float32")  # any rank: the rule keeps it
        g.graph["inputs"] = [x]
        y = add_node(g, "drop_path", [x], var="x", stmt=1)
        g.graph["output"] = add_node(g, "output", [y], stmt=1)
        return ModuleIR("DropPath", "lowered", g, {}, ctor_args=[("p", 0.0)],
                        scalars={"p": E("p")}, signature=(self.name,),
                        doc="Stochastic depth: drops the branch of whole samples in training.",
                        facets={"template": self.name})

    def body(self, facets: dict) -> Body:
        """The forward codegen writes for the class (a branch on training, not a graph)."""
        lines = [Line("if not self.training or self.p == 0.0:"),
                 Line("return x", indent=1),
                 Line("keep = 1.0 - self.p"),
                 Line("mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)",
                      "(B, 1, ...): one draw per sample"),
                 Line("return x * mask.div_(keep)")]
        return Body("x", lines)

    def params(self, values):
        return 0

    def flops(self, values, shapes):
        return 0


register_rule("drop_path")(same)
