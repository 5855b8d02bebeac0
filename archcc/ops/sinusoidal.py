"""``op: sinusoidal``: the fixed sin/cos position table of Vaswani et al. (2017).

    pos: {op: sinusoidal, dim: d_model, max_len: 5000}
    ->  self.pos = SinusoidalPositions(config.d_model)      # a (max_len, dim) buffer
    pos(x) with x (B, T, ...)  ->  (T, d_model): its first T rows (after cached ones)
"""

from __future__ import annotations

from typing import Literal

from archcc.ir.builder import Builder, E
from archcc.ir.graph import ModuleIR, Submodule
from archcc.ir.shapes import FLOAT, ShapeError, fmt
from archcc.ops import Example, Op, op, register_buffer
from archcc.parser.fields import Size, Strict


class Sinusoidal(Strict):
    """Fixed sin/cos position table (Vaswani et al.); call on (B, T, ...) to get (T, dim)."""

    op: Literal["sinusoidal"]
    dim: Size
    """Width of each position vector (even)."""
    max_len: Size = 5000
    """Rows of the table: the longest sequence it serves."""


@op
class SinusoidalOp(Op):
    name, schema, order = "sinusoidal", Sinusoidal, 100
    sizes = ("dim", "max_len")
    example = Example("pos: {op: sinusoidal, dim: n_embd, max_len: 64}", {"n_embd": 16},
                      call="x + pos(x)")

    def submodules(self, layer):
        s = layer.sizes
        return [Submodule(layer.name, "class", {"dim": s["dim"], "max_len": s["max_len"]},
                          layer.loc)]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        x = shapes[0]
        if len(x) < 2:
            raise ShapeError(f"{layer.name} needs a (B, T, ...) input, got {fmt(x)}")
        return (x[1], layer.dim("dim")), FLOAT

    def lower(self, layer, kwargs):
        b = Builder("SinusoidalPositions")
        x = b.input("x", "B, T")
        subs = {"pe": Submodule("pe", "buffer", {"init": "sinusoidal", "rows": E("max_len"),
                                                 "cols": E("dim")})}
        table = b.line().attr("pe", "max_len, dim")
        b.ret(b.op("take_rows", table, x, var="pe"))
        return ModuleIR("SinusoidalPositions", "lowered", b.g, subs,
                        ctor_args=[("dim", None), ("max_len", 5000)],
                        doc="Fixed sin/cos positions (Vaswani et al. 2017), first T rows.",
                        signature=("sinusoidal",))

    def params(self, values):
        return 0

    def flops(self, values, shapes):
        return 0


@register_buffer("sinusoidal")
def table(sub, arg) -> list[str]:
    """``pe[pos, 2i] = sin(pos / 10000 ** (2i / dim))``, ``pe[pos, 2i + 1] = cos(...)``."""
    rows, cols = arg(sub.args["rows"]), arg(sub.args["cols"])
    return [
        f"position = torch.arange({rows}).unsqueeze(1)",
        f"div_term = torch.exp(torch.arange(0, {cols}, 2) * (-math.log(10000.0) / {cols}))",
        f"pe = torch.zeros({rows}, {cols})",
        "pe[:, 0::2] = torch.sin(position * div_term)",
        "pe[:, 1::2] = torch.cos(position * div_term)",
        f'self.register_buffer("{sub.name}", pe, persistent=False)',
    ]
