"""``op: residual``: a layer with its norm and skip, pre-norm or post-norm.

    attn: {op: residual, placement: pre, norm: layernorm, dim: n_embd,
           layer: {op: attention, dim: n_embd, heads: n_head, causal: true}}
    attn(x)  ->  x + attn(attn_norm(x))          (pre)
             ->  attn_norm(x + attn(x))          (post)

The norm is a sibling module named ``<name>_norm``, so checkpoint keys stay flat
(``h.0.attn.qkv.weight``, ``h.0.attn_norm.weight``). Any op marked ``wrappable``, plugin
ops included, may be the wrapped layer.
"""

from __future__ import annotations

import functools
import operator
from typing import Annotated, Any, Literal

from pydantic import Field, create_model

from archcc import ops
from archcc.diagnostics import Diagnostic
from archcc.ir.shapes import FLOAT, ShapeError, fmt
from archcc.ops import Example, Op, norms, op
from archcc.parser.fields import Scalar, Size, Strict


class Residual(Strict):
    """`x + layer(norm(x))` (pre) or `norm(x + layer(x))` (post). The norm is a sibling
    module named `<name>_norm`, so checkpoint keys stay flat."""

    op: Literal["residual"]
    layer: Any
    """The wrapped layer."""
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    """The norm beside the layer, a module named `<name>_norm`."""
    placement: Literal["pre", "post"] = "pre"
    """`pre`: `x + layer(norm(x))` (GPT-2, LLaMA); `post`: `norm(x + layer(x))` (BERT)."""
    dim: Size
    """Width normalised."""
    eps: Scalar = 1e-5
    """Epsilon of the norm."""


@functools.cache
def _schema(version: int) -> type[Residual]:
    """Residual with ``layer`` typed as the union of every wrappable op registered now."""
    from archcc.parser.structure import with_when

    wrapped = [with_when(o.schema) for o in ops.all_ops() if o.wrappable]
    union = Annotated[functools.reduce(operator.or_, wrapped), Field(discriminator="op")]
    return create_model("Residual", __base__=Residual, __module__=Residual.__module__,
                        __doc__=Residual.__doc__,
                        layer=(union, Field(description=Residual.model_fields["layer"]
                                            .description)))


@op
class ResidualOp(Op):
    name, order, wrappable = "residual", 120, False
    sizes, scalars, suffixes = ("dim",), ("eps",), ("", "_norm")
    example = Example("mlp: {op: residual, placement: pre, dim: n_embd, layer: {op: ffn, dim: "
                      "n_embd, hidden: 4 * n_embd}}", {"n_embd": 16})

    @property
    def schema(self) -> type[Residual]:
        return _schema(ops.version())

    def declare(self, scope, layer):
        from archcc.ir.layers import declare

        super().declare(scope, layer)
        if getattr(layer.spec.layer, "when", None) is not None:
            where = (*layer.path, "layer", "when")
            scope.errors.append(Diagnostic(scope.loaded.where.key(where), ".".join(where),
                                           "`when` goes on the residual, not on its layer",
                                           "move it up one level: the norm goes too"))
        layer.inner = declare(scope, layer.name, layer.spec.layer, (*layer.path, "layer"), {})
        layer.broken = layer.inner is None

    def submodules(self, layer):
        s, spec = layer.sizes, layer.spec
        norm = norms.submodule(spec.norm, f"{layer.name}_norm", s["dim"], s["eps"], layer.loc)
        return [*layer.inner.submodules, norm]

    def lowered_layer(self, layer):
        return layer.inner

    def call(self, fwd, layer, e):
        ops.get(layer.inner.op).check_call(fwd, layer.inner, e)  # the wrapped layer decides
        args, kwargs = fwd.call_args(layer, e)
        (x, *rest), pos, norm = args, e.pos, f"{layer.name}_norm"
        fwd.classes.bind(layer.inner, kwargs)
        if layer.spec.placement == "pre":
            normed = fwd.node("call", [x], pos, var=norm, target=norm, kwargs=())
            inner = fwd.node("call", [normed, *rest], pos, var=layer.name, target=layer.name,
                             kwargs=kwargs)
            return fwd.node("add", [x, inner], pos)
        inner = fwd.node("call", [x, *rest], pos, var=layer.name, target=layer.name,
                         kwargs=kwargs)
        summed = fwd.node("add", [x, inner], pos)
        return fwd.node("call", [summed], pos, var=norm, target=norm, kwargs=())

    def target_shape(self, ctx, layer, target, shapes, dtypes, kwargs):
        if target != layer.name:  # the norm beside the wrapped layer
            want = layer.dim("dim")
            if not ctx.equal(shapes[0][-1], want):
                raise ShapeError(f"{target} expects last dim {want} ({ctx.concrete(want)}), "
                                 f"got {fmt(shapes[0])}")
            return shapes[0], FLOAT
        inner = layer.inner
        return ops.get(inner.op).call_shape(ctx, inner, shapes, dtypes, kwargs)

    def params(self, values):
        inner = values["layer"]
        norm = values["dim"] * (2 if values["norm"] == "layernorm" else 1)
        return ops.get(inner["op"]).params(inner) + norm

    def flops(self, values, shapes):
        inner = values["layer"]
        return ops.get(inner["op"]).flops(inner, shapes)

    def core(self, fields):
        inner = {k[6:]: v for k, v in fields.items() if k.startswith("layer.")}
        own = {f"residual.{k}": v for k, v in fields.items() if not k.startswith("layer.")}
        return str(inner.pop("op", "?")), {**inner, **own}

    def facet(self, fields):
        inner = {k[6:]: v for k, v in fields.items() if k.startswith("layer.")}
        wrapped = ops.get(str(inner.get("op")))
        text = wrapped.facet(inner) if wrapped is not None else str(inner.get("op"))
        return f"residual {fields.get('placement')}-{fields.get('norm')} {text}"
