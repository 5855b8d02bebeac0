"""Multi-head attention as primitives: the canonical pattern ``fuse_attention`` knows.

    q, k, v = qkv(x).split(dim)            -> heads: (B, nh, T, hs)
    att = q @ k.transpose(-2, -1) * hs ** -0.5  [+ bias] [causal / padding masks]
    y = dropout(softmax(att)) @ v          -> proj -> drop

Each facet combination is one generated class (``CausalSelfAttention``, ``CrossAttention``,
``BiasedSelfAttention``...); equal signatures share it.
"""

from __future__ import annotations

from archcc.ir.builder import Builder, E
from archcc.ir.graph import ModuleIR, Submodule
from archcc.ir.shapes import BOOL
from archcc.ops import dropout
from archcc.ops.linear import projection

QKV = (("q", "dim"), ("k", "dim"), ("v", "dim"))  # the parts of a fused projection


def split_heads(b: Builder, node: str, var: str) -> str:
    b.line()
    node = b.op("unflatten", node, var=var, dim=-1, sizes=(E("n_head"), E("head_dim")))
    return b.op("transpose", node, var=var, dim0=1, dim1=2)


def attention(causal: bool, cross: bool, fused: bool, masked: bool, scaled: bool = True,
              biased: bool = False) -> ModuleIR:
    """Multi-head attention as primitives; the canonical pattern fuse_attention knows.

    ``scaled=False`` leaves scores unscaled (T5); ``biased`` adds a float ``bias`` input
    to the scores before masking (T5's relative position bias): declared (1, n_head, T, S),
    any shape that broadcasts to the scores' (B, n_head, T, S) is checked at the call."""
    name = ("Biased" if biased else "") + ("Causal" if causal else "") + \
        ("Cross" if cross else "Self") + "Attention"
    b = Builder(name)
    x = b.input("x", "B, T, dim")
    memory = b.input("memory", "B, S, dim") if cross else x
    keys = "S" if cross else "T"
    mask = b.input("mask", f"B, {keys}", BOOL) if masked else None
    bias = b.input("bias", f"1, n_head, T, {keys}") if biased else None
    subs: dict[str, Submodule] = {}
    if fused and not cross:
        subs["qkv"] = projection("qkv", "dim", "3 * dim", QKV)
        qkv = b.line().call("qkv", x, var="qkv")
        parts = b.op("split", qkv, var="qkv", size=E("dim"), dim=2)
        q, k, v = (b.op("getitem", parts, var=n, index=i) for i, n in enumerate("qkv"))
    elif fused:
        subs["q"], subs["kv"] = projection("q", "dim", "dim"), projection("kv", "dim", "2 * dim",
                                                                          QKV[1:])
        q = b.line().call("q", x, var="q")
        kv = b.line().call("kv", memory, var="kv")
        parts = b.op("split", kv, var="kv", size=E("dim"), dim=2)
        k, v = (b.op("getitem", parts, var=n, index=i) for i, n in enumerate("kv"))
    else:
        for n in "qkv":
            subs[n] = projection(n, "dim", "dim")
        q = b.line().call("q", x, var="q")
        k = b.line().call("k", memory, var="k")
        v = b.line().call("v", memory, var="v")
    q, k, v = (split_heads(b, node, n) for node, n in ((q, "q"), (k, "k"), (v, "v")))
    kt = b.line().op("transpose", k, var="att", dim0=-2, dim1=-1)
    att = b.op("matmul", q, kt, var="att")
    if scaled:
        scale = b.op("const", var="scale", value=E("head_dim ** -0.5"))
        att = b.op("mul", att, scale, var="att")
    if bias is not None:
        att = b.line().op("add", att, bias, var="att")
    if causal:
        keep = b.line().op("causal_mask", q, k, var="causal")
        att = b.line().op("masked_fill", att, keep, var="att", value="-inf")
    if mask is not None:
        keep = b.line().op("key_padding_mask", mask, var="keep")
        att = b.line().op("masked_fill", att, keep, var="att", value="-inf")
    att = b.line().op("softmax", att, var="att", dim=-1)
    att = b.line().op("dropout", att, var="att", p=E("dropout"))
    y = b.line().op("matmul", att, v, var="y")
    y = b.line().op("transpose", y, var="y", dim0=1, dim1=2)
    y = b.op("flatten", y, var="y", start=2)
    subs["proj"] = projection("proj", "dim", "dim")
    subs["drop"] = dropout.submodule("drop", E("dropout"))
    y = b.line().call("proj", y, var="y")
    b.ret(b.op("call", y, var="y", target="drop", kwargs=()))
    return ModuleIR(
        name, "lowered", b.g, subs,
        ctor_args=[("dim", None), ("n_head", None), ("bias", True), ("dropout", 0.0)],
        scalars={"dim": E("dim"), "n_head": E("n_head"), "head_dim": E("dim // n_head"),
                 "dropout": E("dropout")},
        doc=_attention_doc(causal, cross, masked, scaled, biased),
        signature=("attention", causal, cross, fused, masked) + ((scaled, biased) if
                                                                 biased or not scaled else ()),
        display={"dim": "C", "n_head": "nh", "head_dim": "hs"})


def _attention_doc(causal: bool, cross: bool, masked: bool, scaled: bool, biased: bool) -> str:
    kind = f"{'Causal self' if causal else 'Cross' if cross else 'Self'}-attention over " \
        "n_head heads"
    if scaled and not biased:
        return f"{kind}{' with a key-padding mask (True = attend)' if masked else ''}."
    extras = [("key-padding mask", masked), ("additive score bias", biased),
              ("unscaled scores", not scaled)]
    return f"{kind}; {', '.join(text for text, on in extras if on)}."
