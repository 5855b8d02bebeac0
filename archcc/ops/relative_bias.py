"""``op: relative_bias``: T5's relative position bias, lowered to primitives: bucketed
offsets -> a per-head bias.

Every key-minus-query offset falls in one of ``buckets`` buckets: small offsets get a bucket
each, larger ones share log-spaced buckets up to ``max_distance``. A bidirectional bias (T5
encoder) spends half the buckets on keys after the query; a causal one (decoder) only counts
keys at or before it. One learned scalar per (bucket, head) is the bias added to the scores::

    rel(x) with x (B, T, d_model)  ->  (1, n_head, T, T)

The arithmetic follows ``T5Attention._relative_position_bucket`` op for op (same float32
``log``, same ``math.log`` divisor), so buckets agree with Hugging Face exactly, including at
bucket edges where a reordered formula would round differently.
"""

from __future__ import annotations

from typing import Literal

from archcc.ir.builder import Builder, E
from archcc.ir.graph import ModuleIR, Submodule
from archcc.ir.shapes import FLOAT, INT, ShapeError
from archcc.lazy import sympy
from archcc.ops import Example, Op, embedding, op
from archcc.parser.fields import Size, Strict


class RelativeBias(Strict):
    """T5's relative position bias: key-minus-query offsets in log-spaced buckets, one
    learned scalar per bucket and head. `bias = rel(x)` gives (1, heads, T, T), added to the
    attention scores by `attn(x, bias=bias)`; compute it once and pass it to every layer."""

    op: Literal["relative_bias"]
    heads: Size
    """Attention heads: one learned value per bucket and head."""
    buckets: Size = 32
    """Number of buckets (HF `relative_attention_num_buckets`)."""
    max_distance: Size = 128
    """Offsets at or beyond this share the last bucket (HF `relative_attention_max_distance`)."""
    bidirectional: bool = True
    """Separate buckets for keys before and after the query (encoder); false for a causal
    decoder, where only keys at or before the query matter."""


@op
class RelativeBiasOp(Op):
    name, schema, order = "relative_bias", RelativeBias, 190
    sizes = ("heads", "buckets", "max_distance")
    example = Example("rel: {op: relative_bias, heads: n_head, buckets: 32, max_distance: 128}",
                      {"n_head": 4, "n_embd": 16})

    def submodules(self, layer):
        s = layer.sizes
        return [Submodule(layer.name, "class", {"n_head": s["heads"], "buckets": s["buckets"],
                                                "max_distance": s["max_distance"]}, layer.loc)]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        """``rel(x)`` with x (B, T, ...) -> (1, heads, T, T)."""
        if kwargs or len(shapes) != 1 or len(shapes[0]) < 2:
            raise ShapeError(f"{layer.name} is called as {layer.name}(x) on a (B, T, ...) "
                             "sequence")
        t = shapes[0][1]
        return (sympy.Integer(1), layer.dim("heads"), t, t), FLOAT

    def lower(self, layer, kwargs):
        return lower(layer.spec.bidirectional)

    def params(self, values):
        return values["buckets"] * values["heads"]

    def flops(self, values, shapes):
        return 0


def _const(b: Builder, text: str, var: str, integer: bool = True) -> str:
    node = b.op("const", var=var, value=E(text))
    b.g.nodes[node]["dtype"] = INT if integer else None
    return node


def _log_bucket(b: Builder, rel: str) -> str:
    """``exact + log(rel / exact) / log(max_distance / exact) * (num - exact)``, as long."""
    exact = _const(b, "exact", "exact")
    scaled = b.line().op("div", b.op("cast", rel, var="rel", dtype="float32"), exact, var="large")
    scaled = b.op("log", scaled, var="large")
    scaled = b.op("div", scaled, _const(b, "log(max_distance / exact)", "ratio", False),
                  var="large")
    scaled = b.op("mul", scaled, _const(b, "num - exact", "span"), var="large")
    return b.op("add", exact, b.op("cast", scaled, var="large", dtype="int64"), var="large")


def lower(bidirectional: bool) -> ModuleIR:
    """The bias module for ``op: relative_bias``; ``bidirectional`` picks the encoder form."""
    name = "RelativePositionBias" if bidirectional else "CausalRelativePositionBias"
    b = Builder(name)
    x = b.input("x", "B, T")
    rel = b.line().op("relative_position", x, var="rel")
    far = None
    if bidirectional:  # keys after the query use the upper half of the buckets
        after = b.line().op("gt", rel, _const(b, "0", "zero"), var="far")
        far = b.op("mul", b.op("cast", after, var="far", dtype="int64"), _const(b, "num", "num"),
                   var="far")
        rel = b.line().op("abs", rel, var="rel")
    else:  # only keys at or before the query: distance back, 0 for later keys
        rel = b.line().op("clamp", b.op("neg", rel, var="rel"), var="rel", min=E("0"), max=None)
    large = _log_bucket(b, rel)
    large = b.line().op("clamp", large, var="large", min=None, max=E("num - 1"))
    small = b.line().op("lt", rel, _const(b, "exact", "exact"), var="bucket")
    bucket = b.op("where", small, rel, large, var="bucket")
    if far is not None:
        bucket = b.op("add", far, bucket, var="bucket")
    values = b.line().call("table", bucket, var="bias")
    values = b.op("permute", values, var="bias", dims=(2, 0, 1))
    b.ret(b.op("unsqueeze", values, var="bias", dim=0))
    half = "buckets // 2" if bidirectional else "buckets"
    return ModuleIR(
        name, "lowered", b.g,
        {"table": embedding.submodule("table", E("buckets"), E("n_head"))},
        ctor_args=[("n_head", None), ("buckets", 32), ("max_distance", 128)],
        scalars={"num": E(half), "exact": E(f"({half}) // 2"),
                 "max_distance": E("max_distance")},
        doc=f"T5 relative position bias, {'bidirectional' if bidirectional else 'causal'}: "
            "a value per offset bucket and head.",
        signature=("relative_bias", bidirectional),
        display={"n_head": "nh"})
