"""``op: maxpool2d`` and ``op: avgpool2d``: pooling over windows of an image, or adaptive.

    pool: {op: maxpool2d, kernel: 3, stride: 2, padding: 1}
    ->  self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    pool(x) with x (B, C, 64, 64)  ->  (B, C, 32, 32)          (ResNet's stem)

    pooler: {op: avgpool2d, output: 1}  ->  self.pooler = nn.AdaptiveAvgPool2d(1)
    pooler(x) with x (B, C, H, W)       ->  (B, C, 1, 1)        (global average pooling)

Windows of side ``kernel`` every ``stride`` (default: ``kernel``) with ``padding`` on every
side; output sides follow torch, ``floor((H + 2 * padding - kernel) / stride) + 1`` (``ceil``
with ``ceil_mode``). ``output: n`` instead pools adaptively to n x n whatever the input
(``nn.AdaptiveMaxPool2d`` / ``nn.AdaptiveAvgPool2d``); ``output: 1`` is global pooling. Channels
pass through unchanged; there are no parameters.
"""

from __future__ import annotations

import math
from typing import Literal

from archcc.ir.graph import Submodule
from archcc.ir.shapes import FLOAT, ShapeError, fmt
from archcc.lazy import sympy
from archcc.ops import Example, Kind, Op, kind, op
from archcc.ops.base import diag, field_diag, is_default
from archcc.ops.conv2d import conv_side, image_arity
from archcc.parser.expr import Num
from archcc.parser.fields import Size, Strict

_WINDOW = ("kernel", "stride", "padding")


class _Pool2d(Strict):
    kernel: Size | None = None
    """Square window side (leave it out with `output`)."""
    stride: Size | None = None
    """Step between windows; default: the kernel (non-overlapping windows)."""
    padding: Size = 0
    """Implicit padding on every side, at most half the kernel."""
    ceil_mode: bool = False
    """Round output sides up (a last, partial window) instead of down."""
    output: Size | None = None
    """Adaptive pooling to `output` x `output` whatever the input's sides (1: global
    pooling); instead of kernel, stride and padding."""


class MaxPool2d(_Pool2d):
    """Max over windows of an image (B, C, H, W), like `nn.MaxPool2d` (padding counts as
    -inf); with `output`, `nn.AdaptiveMaxPool2d`."""

    op: Literal["maxpool2d"]


class AvgPool2d(_Pool2d):
    """Mean over windows of an image (B, C, H, W), like `nn.AvgPool2d`; with `output`,
    `nn.AdaptiveAvgPool2d` (`output: 1` is global average pooling)."""

    op: Literal["avgpool2d"]
    count_include_pad: bool = True
    """Count padded zeros in each window's mean (torch's default)."""


class _PoolOp(Op):
    """Both pools: the same fields, checks and shape rule; torch class by op."""

    optional_sizes, zero_sizes = ("kernel", "stride", "output"), ("padding",)
    module: str  # MaxPool2d | AvgPool2d

    def check(self, scope, layer):
        spec, set_ = layer.spec, layer.spec.model_fields_set
        if spec.output is not None:
            extra = [k for k in _WINDOW if k in set_]
            if extra:
                scope.errors.append(field_diag(
                    scope, layer, extra[0], f"{extra[0]} has no meaning with output (adaptive "
                    "pooling picks its own windows)", "give either output, or kernel "
                    "(with stride and padding)"))
            return
        if spec.kernel is None:
            scope.errors.append(diag(layer, f"{self.name} needs kernel (windows) or output "
                                     "(adaptive pooling)", f"e.g. {{op: {self.name}, kernel: "
                                     "2}, or output: 1 for global pooling"))
            layer.broken = True  # no windows to build a line from
            return
        kernel, padding = (scope.value(layer.sizes[k]) for k in ("kernel", "padding"))
        if 2 * padding > kernel:
            scope.errors.append(field_diag(scope, layer, "padding",
                                           f"padding ({padding}) must be at most half the "
                                           f"kernel ({kernel})", "torch refuses more: a "
                                           "window would see only padding"))

    def submodules(self, layer):
        s = layer.sizes
        if "output" in s:
            return [Submodule(layer.name, "pool2d", {"module": self.module,
                                                     "output": s["output"]}, layer.loc)]
        args = {"module": self.module, "kernel": s["kernel"],
                "stride": s.get("stride", s["kernel"]), "padding": s["padding"],
                "ceil_mode": Num(layer.spec.ceil_mode)}
        if self.name == "avgpool2d":
            args["count_include_pad"] = Num(layer.spec.count_include_pad)
        return [Submodule(layer.name, "pool2d", args, layer.loc)]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        image_arity(layer, shapes, kwargs)
        try:
            return pool_shape(ctx, layer.submodules[0].args, shapes[0]), FLOAT
        except ShapeError as exc:
            raise ShapeError(f"{layer.name}: {exc.message}", exc.hint) from None

    def params(self, values):
        return 0

    def flops(self, values, shapes):
        return 0

    def facet(self, fields):
        if fields.get("output") is not None:
            return f"{self.name} adaptive {fields['output']}"
        return f"{self.name} k{fields.get('kernel')}"


@op
class MaxPool2dOp(_PoolOp):
    name, schema, order, module = "maxpool2d", MaxPool2d, 213, "MaxPool2d"
    example = Example("pool: {op: maxpool2d, kernel: 3, stride: 2, padding: 1}", {},
                      {"x": "[B, 4, 8, 8]"}, dims={})


@op
class AvgPool2dOp(_PoolOp):
    name, schema, order, module = "avgpool2d", AvgPool2d, 214, "AvgPool2d"
    example = Example("pool: {op: avgpool2d, output: 1}", {}, {"x": "[B, 4, 8, 8]"}, dims={})


def pool_shape(ctx, args: dict, x) -> tuple:
    """(B, C, H, W) -> (B, C, H', W') of one pooling line (``args`` of a ``pool2d`` kind)."""
    from archcc.ir.params import to_sympy

    if len(x) != 4:
        raise ShapeError(f"pooling needs an image (B, C, H, W), got {fmt(x)}")
    if "output" in args:
        side = to_sympy(args["output"])
        return (x[0], x[1], side, side)
    k, s, p = (to_sympy(args[key]) for key in _WINDOW)
    if not args["ceil_mode"].value:
        return (x[0], x[1], *(conv_side(ctx, side, k, s, p) for side in x[2:]))
    return (x[0], x[1], *(_ceil_side(ctx, side, k, s, p) for side in x[2:]))


def _ceil_side(ctx, side, k, s, p):
    """torch's ceil_mode side: rounded up, less one if the last window starts in padding."""
    values = [ctx.concrete(v) for v in (side, k, s, p)]
    if not all(v.is_number for v in values):
        raise ShapeError("ceil_mode needs concrete sides", "give the input's sides as params")
    n, k_, s_, p_ = (int(v) for v in values)
    out = math.ceil((n + 2 * p_ - k_) / s_) + 1
    if (out - 1) * s_ >= n + p_:
        out -= 1
    return sympy.Integer(out)


@kind
class Pool2dKind(Kind):
    name = "pool2d"

    def init_lines(self, sub, arg):
        """``nn.MaxPool2d(kernel_size=3, stride=2, padding=1)`` (defaults left out) or
        ``nn.AdaptiveAvgPool2d(1)``."""
        a = sub.args
        if "output" in a:
            return [f"self.{sub.name} = nn.Adaptive{a['module']}({arg(a['output'])})"]
        parts = [f"kernel_size={arg(a['kernel'])}"]
        if arg(a["stride"]) != arg(a["kernel"]):
            parts.append(f"stride={arg(a['stride'])}")
        defaults = {"padding": 0, "ceil_mode": False, "count_include_pad": True}
        parts += [f"{k}={arg(a[k])}" for k, d in defaults.items()
                  if k in a and not is_default(a[k], d)]
        return [f"self.{sub.name} = nn.{a['module']}({', '.join(parts)})"]

    def call_shape(self, ctx, sub, shapes, dtypes):
        return pool_shape(ctx, sub.args, shapes[0]), FLOAT
