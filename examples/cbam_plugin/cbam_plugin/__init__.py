"""CBAM channel attention as an archcc plugin op (Woo et al. 2018, "CBAM", section 3.1).

    ca: {op: channel_attention, channels: 64, reduction: 16}      # in a spec's layers
    x = ca(x)                                                     # (B, C, H, W) -> same

Average- and max-pool over H and W, one shared MLP C -> C // reduction -> C on both, the
sum through a sigmoid scales each channel of x. Everything archcc needs is ``PLUGIN``.
"""

from typing import Literal

from archcc.plugins import FLOAT, OpPlugin, OpSchema, ShapeError, Size, fmt


class ChannelAttentionSpec(OpSchema):
    """CBAM channel attention: x * sigmoid(mlp(avgpool(x)) + mlp(maxpool(x))) over (B, C, H, W)."""

    op: Literal["channel_attention"]
    channels: Size
    """Channels C of the input (dim 1)."""
    reduction: Size = 16
    """The shared MLP's hidden width is channels // reduction; must divide channels."""
    bias: bool = True
    """Biases in the MLP's two linears."""


CLASS_TEMPLATE = '''
class {{ name }}(nn.Module):
    """CBAM channel attention: a sigmoid gate per channel from avg- and max-pooled features.

    Plugin op `channel_attention` (archcc-cbam-plugin); Woo et al. 2018, section 3.1."""

    def __init__(self, channels: int, reduction: int = 16, bias: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // reduction, bias=bias)
        self.fc2 = nn.Linear(channels // reduction, channels, bias=bias)

    def forward(self, x):
        avg = self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3)))))  # (B, C)
        peak = self.fc2(F.relu(self.fc1(x.amax(dim=(2, 3)))))  # (B, C)
        return x * torch.sigmoid(avg + peak)[:, :, None, None]  # (B, C, H, W)
'''


def shape(ctx, layer, shapes, dtypes):
    """(B, C, H, W) with C = channels -> the same shape."""
    if len(shapes) != 1:
        raise ShapeError(f"{layer.name} takes one input, got {len(shapes)}")
    x, channels = shapes[0], layer.dim("channels")
    if len(x) != 4 or not ctx.equal(x[1], channels):
        value = ctx.concrete(channels)
        want = f"{channels}" if channels == value else f"{channels} ({value})"
        raise ShapeError(f"{layer.name} expects (B, C, H, W) with C = {want}, got {fmt(x)}",
                         "channels must equal dim 1 of the input")
    return x, FLOAT


def check(sizes):
    """reduction must divide channels (the hidden width is channels // reduction)."""
    if sizes["channels"] % sizes["reduction"]:
        return (f"reduction ({sizes['reduction']}) must divide channels ({sizes['channels']})"
                "\nhint: CBAM uses reduction 16")
    return None


def params(values):
    """Two linears C -> C/r -> C (and their biases)."""
    c, hidden = values["channels"], values["channels"] // values["reduction"]
    return 2 * c * hidden + (hidden + c if values["bias"] else 0)


def flops(values, shapes):
    """Both linears on both pooled vectors: 4 matmuls of B x C x C/r, 2 FLOPs per MAC."""
    batch, hidden = shapes[0][0], values["channels"] // values["reduction"]
    return 8 * batch * values["channels"] * hidden


PLUGIN = OpPlugin(
    name="channel_attention", schema=ChannelAttentionSpec, class_name="ChannelAttention",
    class_template=CLASS_TEMPLATE, shape=shape, sizes=("channels", "reduction"),
    options=("bias",), check=check, params=params, flops=flops,
    example="ca: {op: channel_attention, channels: 64, reduction: 16}")
