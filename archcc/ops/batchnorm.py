"""``op: batchnorm``: batch normalisation over the channels of (B, C, ...), ``nn.BatchNorm2d``.

    bn: {op: batchnorm, channels: 64}      ->  self.bn = nn.BatchNorm2d(64)
    bn(x) with x (B, 64, H, W)             ->  (B, 64, H, W)
    {op: batchnorm, channels: 64, dims: 1} ->  nn.BatchNorm1d(64): x (B, 64) or (B, 64, L)

It is torch's module, so it behaves as torch's does: in training it normalises with the
batch's statistics and moves ``running_mean`` / ``running_var`` towards them by ``momentum``
(``num_batches_tracked`` counts the steps); in eval it normalises with the running
statistics. All three are persistent buffers, in ``state_dict()`` as in torch, so a ResNet
checkpoint loads them and a model trained here saves them.
"""

from __future__ import annotations

from typing import Literal

from archcc.ir.graph import Submodule
from archcc.ir.shapes import FLOAT, ShapeError, fmt
from archcc.ops import Example, Op, kind, op
from archcc.ops.base import AffineNormKind, field_diag, is_default
from archcc.ops.conv2d import image_arity
from archcc.parser.expr import Num
from archcc.parser.fields import Scalar, Size, Strict

# dims -> the ranks of input nn.BatchNorm{dims}d accepts (with the batch axis)
RANKS = {1: (2, 3), 2: (4,), 3: (5,)}
LAYOUTS = {1: "(B, C) or (B, C, L)", 2: "(B, C, H, W)", 3: "(B, C, D, H, W)"}


class BatchNorm(Strict):
    """Batch normalisation over the channels (dim 1) of (B, C, ...), like `nn.BatchNorm2d`:
    batch statistics in training, running statistics (persistent buffers) in eval."""

    op: Literal["batchnorm"]
    channels: Size
    """Channels normalised: dim 1 of the input."""
    dims: Literal[1, 2, 3] = 2
    """Spatial dims: 2 for images (B, C, H, W) (`nn.BatchNorm2d`), 1 for (B, C) or
    (B, C, L) (`nn.BatchNorm1d`), 3 for volumes (B, C, D, H, W) (`nn.BatchNorm3d`)."""
    eps: Scalar = 1e-5
    """Added to the variance."""
    momentum: Scalar = 0.1
    """Weight of the current batch in the running statistics' update, in [0, 1]."""
    affine: bool = True
    """Learned per-channel scale (`weight`) and shift (`bias`)."""
    track_running_stats: bool = True
    """Keep running statistics (and use them in eval); false: batch statistics always,
    and no buffers."""


def submodule(name: str, channels, eps=None, momentum=None, dims: int = 2,
              affine: bool = True, track: bool = True, loc=None) -> Submodule:
    """An ``nn.BatchNorm{dims}d`` line; ``eps`` / ``momentum`` None are torch's defaults."""
    args = {"channels": channels, "dims": dims, "affine": Num(affine),
            "track_running_stats": Num(track)}
    args.update({k: v for k, v in (("eps", eps), ("momentum", momentum)) if v is not None})
    return Submodule(name, "batchnorm", args, loc)


@op
class BatchNormOp(Op):
    name, schema, order = "batchnorm", BatchNorm, 212
    sizes, scalars, is_norm = ("channels",), ("eps", "momentum"), True
    example = Example("bn: {op: batchnorm, channels: 8}", {}, {"x": "[B, 8, 4, 4]"}, dims={})

    def check(self, scope, layer):
        momentum = scope.value(layer.sizes["momentum"])
        if not 0 <= momentum <= 1:
            scope.errors.append(field_diag(scope, layer, "momentum", f"momentum ({momentum}) "
                                           "must lie in [0, 1]",
                                           "torch's default is 0.1: the running statistics "
                                           "move a tenth of the way to each batch's"))

    def submodules(self, layer):
        s, spec = layer.sizes, layer.spec
        return [submodule(layer.name, s["channels"], s["eps"], s["momentum"], spec.dims,
                          spec.affine, spec.track_running_stats, layer.loc)]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        image_arity(layer, shapes, kwargs)
        x, dims = shapes[0], layer.spec.dims
        channels = layer.dim("channels")
        if len(x) not in RANKS[dims] or not ctx.equal(x[1], channels):
            raise ShapeError(f"{layer.name} expects {LAYOUTS[dims].replace('C', str(channels))}"
                             f" ({ctx.concrete(channels)} channels), got {fmt(x)}",
                             "dims: 1, 2 or 3 picks nn.BatchNorm1d, 2d or 3d"
                             if len(x) not in RANKS[dims] else None)
        return x, FLOAT

    def params(self, values):
        return 2 * values["channels"] if values["affine"] else 0

    def flops(self, values, shapes):
        return 0

    def facet(self, fields):
        return f"batchnorm{fields.get('dims', 2)}d"


@kind
class BatchNormKind(AffineNormKind):
    """``nn.BatchNorm{dims}d``: its scale and shift start at ones and zeros (torch's, and
    every reference's); ``batchnorm: zeros`` zero-inits the scale, as Goyal et al. (2017)
    do for each residual branch's last norm. The running statistics are buffers, not drawn.
    """

    name = "batchnorm"

    def init_lines(self, sub, arg):
        """``nn.BatchNorm2d(C, eps=..., momentum=...)``, torch's defaults left out."""
        a = sub.args
        defaults = {"eps": 1e-5, "momentum": 0.1, "affine": True, "track_running_stats": True}
        extra = "".join(f", {k}={arg(a[k])}" for k, d in defaults.items()
                        if k in a and not is_default(a[k], d))
        return [f"self.{sub.name} = nn.BatchNorm{a['dims']}d({arg(a['channels'])}{extra})"]

    def call_shape(self, ctx, sub, shapes, dtypes):
        return shapes[0], FLOAT
