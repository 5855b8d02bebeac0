"""T5's relative position bias lowered to primitives: bucketed offsets -> a per-head bias.

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

from archcc.ir.graph import ModuleIR, Submodule
from archcc.ir.lowering import B, E, T, _Builder
from archcc.ir.shapes import INT


def _const(b: _Builder, text: str, var: str, integer: bool = True) -> str:
    node = b.op("const", var=var, value=E(text))
    b.g.nodes[node]["dtype"] = INT if integer else None
    return node


def _log_bucket(b: _Builder, rel: str) -> str:
    """``exact + log(rel / exact) / log(max_distance / exact) * (num - exact)``, as long."""
    exact = _const(b, "exact", "exact")
    scaled = b.line().op("div", b.op("cast", rel, var="rel", dtype="float32"), exact, var="large")
    scaled = b.op("log", scaled, var="large")
    scaled = b.op("div", scaled, _const(b, "log(max_distance / exact)", "ratio", False),
                  var="large")
    scaled = b.op("mul", scaled, _const(b, "num - exact", "span"), var="large")
    return b.op("add", exact, b.op("cast", scaled, var="large", dtype="int64"), var="large")


def relative_bias(bidirectional: bool) -> ModuleIR:
    """The bias module for ``op: relative_bias``; ``bidirectional`` picks the encoder form."""
    name = "RelativePositionBias" if bidirectional else "CausalRelativePositionBias"
    b = _Builder(name)
    x = b.input("x", (B, T))
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
        {"table": Submodule("table", "embedding", {"num": E("buckets"), "dim": E("n_head")})},
        ctor_args=[("n_head", None), ("buckets", 32), ("max_distance", 128)],
        scalars={"num": E(half), "exact": E(f"({half}) // 2"),
                 "max_distance": E("max_distance")},
        doc=f"T5 relative position bias, {'bidirectional' if bidirectional else 'causal'}: "
            "a value per offset bucket and head.",
        signature=("relative_bias", bidirectional),
        display={"n_head": "nh"})
