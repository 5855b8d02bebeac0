"""``op: ffn``: the position-wise feed-forward, plain or gated (GLU, GEGLU, SwiGLU).

    mlp: {op: ffn, dim: n_embd, hidden: 4 * n_embd, act: gelu_tanh}
    ->  self.mlp = MLP(config.n_embd, 4 * config.n_embd)      # down(act(up(x)))
    mlp: {op: ffn, dim: dim, hidden: hidden, act: silu, gated: true, bias: false}
    ->  self.mlp = SwiGLU(config.dim, config.hidden, bias=False)  # down(act(gate(x)) * up(x))
"""

from __future__ import annotations

from typing import Literal

from archcc.ir.builder import Builder, E
from archcc.ir.graph import ModuleIR, Submodule
from archcc.ir.shapes import FLOAT
from archcc.ops import Example, Op, dropout, op
from archcc.ops.linear import last_dim, projection
from archcc.parser.expr import Num
from archcc.parser.fields import Activation, Scalar, Size, Strict


class FFN(Strict):
    """Position-wise feed-forward: down(act(up(x))), or gated: down(act(gate(x)) * up(x))."""

    op: Literal["ffn"]
    dim: Size
    """Model width: input and output features."""
    hidden: Size
    """Inner width (GPT-2: 4 * n_embd; LLaMA: intermediate_size)."""
    act: Activation = "gelu"
    """Nonlinearity after `up` (on the gate when `gated`)."""
    gated: bool = False
    """GLU family: sigmoid -> GLU, gelu -> GEGLU, silu -> SwiGLU."""
    bias: bool = True
    """Biases in the up, gate and down projections."""
    dropout: Scalar = 0.0
    """Dropout after the output projection."""


@op
class FFNOp(Op):
    name, schema, order = "ffn", FFN, 80
    sizes, scalars = ("dim", "hidden"), ("dropout",)
    example = Example("mlp: {op: ffn, dim: n_embd, hidden: 4 * n_embd, act: silu, gated: true}",
                      {"n_embd": 16})

    def submodules(self, layer):
        s = layer.sizes
        return [Submodule(layer.name, "class", {"dim": s["dim"], "hidden": s["hidden"],
                                                "bias": Num(layer.spec.bias),
                                                "dropout": s["dropout"]}, layer.loc)]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        last_dim(ctx, layer, shapes[0], "dim", "input")
        return shapes[0], FLOAT

    def lower(self, layer, kwargs):
        return lower(layer.spec.act, layer.spec.gated)

    def params(self, values):
        dim, hidden, bias = values["dim"], values["hidden"], values["bias"]
        matrices = 3 if values["gated"] else 2
        return matrices * dim * hidden + (hidden * (matrices - 1) + dim if bias else 0)

    def flops(self, values, shapes):
        tokens = 1
        for d in shapes[0][:-1]:
            tokens *= d
        return 2 * tokens * values["dim"] * values["hidden"] * (3 if values["gated"] else 2)

    def facet(self, fields):
        gated = {"silu": "swiglu", "gelu": "geglu", "gelu_tanh": "geglu", "sigmoid": "glu"}
        return "ffn " + (gated.get(fields.get("act"), f"gated {fields.get('act')}")
                         if fields.get("gated") else str(fields.get("act")))


GATED_NAMES = {"sigmoid": "GLU", "gelu": "GEGLU", "gelu_tanh": "GEGLU", "silu": "SwiGLU"}


def lower(act: str, gated: bool) -> ModuleIR:
    """``down(act(up(x)))``, or gated ``down(act(gate(x)) * up(x))``."""
    name = GATED_NAMES.get(act, "GatedMLP") if gated else "MLP"
    b = Builder(name)
    x = b.input("x", "B, T, dim")
    subs = {"up": projection("up", "dim", "hidden")}
    if gated:
        subs["gate"] = projection("gate", "dim", "hidden")
        h = b.line().op(act, b.call("gate", x, var="h"), var="h")
        h = b.op("mul", h, b.call("up", x, var="up"), var="h")
    else:
        h = b.line().op(act, b.call("up", x, var="h"), var="h")
    subs["down"] = projection("down", "hidden", "dim")
    subs["drop"] = dropout.submodule("drop", E("dropout"))
    b.ret(b.line().call("drop", b.call("down", h, var="y"), var="y"))
    return ModuleIR(
        name, "lowered", b.g, subs,
        ctor_args=[("dim", None), ("hidden", None), ("bias", True), ("dropout", 0.0)],
        doc=f"Feed-forward: {'gated ' if gated else ''}{act}, dim -> hidden -> dim.",
        signature=("ffn", act, gated))
