"""High-level ops lowered to primitive IR: each becomes a small generated class.

Attention is not a template: it is a graph of linear / split / matmul / softmax nodes, the
same a user could write by hand, so the optimizer's fusion pass is what turns it into
``F.scaled_dot_product_attention``. Each builder returns a :class:`ModuleIR` whose
``signature`` says which facets shaped it; equal signatures share one class.

Shapes inside a lowered class use its own names: ``(B, n_head, T, head_dim)``.
"""

from __future__ import annotations

import sympy

from archcc.ir.graph import ModuleIR, Submodule, add_node, new_graph
from archcc.ir.params import symbol
from archcc.ir.shapes import BOOL, FLOAT
from archcc.parser.expr import Expr, parse_expr

B, T, S = symbol("B"), symbol("T"), symbol("S")


def E(text: str) -> Expr:  # noqa: N802 - reads like a literal: E("dim // n_head")
    """An expression over a lowered class's own names."""
    return parse_expr(text)


class _Builder:
    """Appends nodes to one lowered class graph, one logical source line per ``line()``."""

    def __init__(self, name: str):
        self.g = new_graph(name)
        self.stmt = 0

    def input(self, name: str, shape: tuple, dtype: str = FLOAT) -> str:
        node = add_node(self.g, "input", var=name, name=name)
        self.g.nodes[node].update(shape=shape, dtype=dtype)
        self.g.graph["inputs"].append(node)
        return node

    def line(self) -> _Builder:
        self.stmt += 1
        return self

    def op(self, op: str, *inputs: str, var: str | None = None, **attrs) -> str:
        return add_node(self.g, op, inputs, var=var, stmt=self.stmt, **attrs)

    def call(self, target: str, *inputs: str, var: str | None = None) -> str:
        return self.op("call", *inputs, var=var, target=target, kwargs=())

    def ret(self, node: str) -> None:
        self.g.graph["output"] = add_node(self.g, "output", [node], stmt=self.stmt)


def _linear(name: str, fan_in: str, fan_out: str) -> Submodule:
    return Submodule(name, "linear", {"in": E(fan_in), "out": E(fan_out), "bias": E("bias")})


# ------------------------------------------------------------------------------ attention


def _split_heads(b: _Builder, node: str, var: str) -> str:
    b.line()
    node = b.op("unflatten", node, var=var, dim=-1, sizes=(E("n_head"), E("head_dim")))
    return b.op("transpose", node, var=var, dim0=1, dim1=2)


def attention(causal: bool, cross: bool, fused: bool, masked: bool, scaled: bool = True,
              biased: bool = False) -> ModuleIR:
    """Multi-head attention as primitives; the canonical pattern fuse_attention knows.

    ``scaled=False`` leaves scores unscaled (T5); ``biased`` adds a float ``bias`` input
    (1, n_head, T, S) to the scores before masking (T5's relative position bias)."""
    name = ("Biased" if biased else "") + ("Causal" if causal else "") + \
        ("Cross" if cross else "Self") + "Attention"
    b = _Builder(name)
    x = b.input("x", (B, T, symbol("dim")))
    memory = b.input("memory", (B, S, symbol("dim"))) if cross else x
    keys = S if cross else T
    mask = b.input("mask", (B, keys), BOOL) if masked else None
    bias = b.input("bias", (sympy.Integer(1), symbol("n_head"), T, keys)) if biased else None
    subs: dict[str, Submodule] = {}
    if fused and not cross:
        subs["qkv"] = _linear("qkv", "dim", "3 * dim")
        qkv = b.line().call("qkv", x, var="qkv")
        parts = b.op("split", qkv, var="qkv", size=E("dim"), dim=2)
        q, k, v = (b.op("getitem", parts, var=n, index=i) for i, n in enumerate("qkv"))
    elif fused:
        subs["q"], subs["kv"] = _linear("q", "dim", "dim"), _linear("kv", "dim", "2 * dim")
        q = b.line().call("q", x, var="q")
        kv = b.line().call("kv", memory, var="kv")
        parts = b.op("split", kv, var="kv", size=E("dim"), dim=2)
        k, v = (b.op("getitem", parts, var=n, index=i) for i, n in enumerate("kv"))
    else:
        for n in "qkv":
            subs[n] = _linear(n, "dim", "dim")
        q = b.line().call("q", x, var="q")
        k = b.line().call("k", memory, var="k")
        v = b.line().call("v", memory, var="v")
    q, k, v = (_split_heads(b, node, n) for node, n in ((q, "q"), (k, "k"), (v, "v")))
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
    subs["proj"] = _linear("proj", "dim", "dim")
    subs["drop"] = Submodule("drop", "dropout", {"p": E("dropout")})
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


# ------------------------------------------------------------------------------------ ffn

GATED_NAMES = {"sigmoid": "GLU", "gelu": "GEGLU", "gelu_tanh": "GEGLU", "silu": "SwiGLU"}


def ffn(act: str, gated: bool) -> ModuleIR:
    """``down(act(up(x)))``, or gated ``down(act(gate(x)) * up(x))``."""
    name = GATED_NAMES.get(act, "GatedMLP") if gated else "MLP"
    b = _Builder(name)
    x = b.input("x", (B, T, symbol("dim")))
    subs = {"up": _linear("up", "dim", "hidden")}
    if gated:
        subs["gate"] = _linear("gate", "dim", "hidden")
        h = b.line().op(act, b.call("gate", x, var="h"), var="h")
        h = b.op("mul", h, b.call("up", x, var="up"), var="h")
    else:
        h = b.line().op(act, b.call("up", x, var="h"), var="h")
    subs["down"] = _linear("down", "hidden", "dim")
    subs["drop"] = Submodule("drop", "dropout", {"p": E("dropout")})
    b.ret(b.line().call("drop", b.call("down", h, var="y"), var="y"))
    return ModuleIR(
        name, "lowered", b.g, subs,
        ctor_args=[("dim", None), ("hidden", None), ("bias", True), ("dropout", 0.0)],
        doc=f"Feed-forward: {'gated ' if gated else ''}{act}, dim -> hidden -> dim.",
        signature=("ffn", act, gated))


# ------------------------------------------------------------------------------ patchify


def patchify() -> ModuleIR:
    """(B, C, H, W) -> (B, H/patch * W/patch, dim): a strided conv, flattened to tokens."""
    b = _Builder("PatchEmbed")
    h, w = symbol("H"), symbol("W")
    x = b.input("x", (B, symbol("in_channels"), h, w))
    subs = {"proj": Submodule("proj", "conv2d", {"in": E("in_channels"), "out": E("dim"),
                                                  "kernel": E("patch"), "stride": E("patch")})}
    y = b.line().call("proj", x, var="x")
    y = b.op("flatten", y, var="x", start=2)
    b.ret(b.op("transpose", y, var="x", dim0=1, dim1=2))
    return ModuleIR("PatchEmbed", "lowered", b.g, subs,
                    ctor_args=[("in_channels", None), ("dim", None), ("patch", None)],
                    doc="Non-overlapping patches to tokens with one strided convolution.",
                    signature=("patchify",))


# ---------------------------------------------------------------------------- sinusoidal


def sinusoidal() -> ModuleIR:
    """Fixed sin/cos table; returns its first T rows for an input (B, T, ...)."""
    b = _Builder("SinusoidalPositions")
    x = b.input("x", (B, T))
    subs = {"pe": Submodule("pe", "buffer", {"init": "sinusoidal", "rows": E("max_len"),
                                             "cols": E("dim")})}
    table = b.line().op("get_attr", var="pe", target="pe")
    b.g.nodes[table].update(shape=(symbol("max_len"), symbol("dim")), dtype=FLOAT)
    b.ret(b.op("take_rows", table, x, var="pe"))
    return ModuleIR("SinusoidalPositions", "lowered", b.g, subs,
                    ctor_args=[("dim", None), ("max_len", 5000)],
                    doc="Fixed sin/cos positions (Vaswani et al. 2017), first T rows.",
                    signature=("sinusoidal",))
