"""Image ops lowered to primitive IR, one small generated class each (like ``lowering.py``).

    upsample        -> Upsample2D         nearest x scale, then a 3x3 conv
    downsample      -> Downsample2D       3x3 conv with stride 2 (or 2x2 average pooling)
    timesteps       -> Timesteps          diffusers' sinusoidal timestep embedding
    resblock        -> ResnetBlock        GroupNorm, act, conv, + time embedding, ..., shortcut
    image_attention -> ImageSelfAttention GroupNorm, attention among pixels, residual

Submodule names follow diffusers (``conv1``, ``time_emb_proj``, ``to_q``, ...) so a
checkpoint needs one prefix rename per block. The image attention is the same
matmul/softmax pattern as ``op: attention``, so ``fuse_attention`` turns it into SDPA.
"""

from __future__ import annotations

from archcc.ir.graph import ModuleIR, Submodule
from archcc.ir.lowering import B, E, _Builder, _split_heads
from archcc.ir.params import symbol
from archcc.ir.shapes import FLOAT
from archcc.parser.expr import Num

H, W = symbol("H"), symbol("W")


def _conv(name: str, fan_in: str, fan_out: str, kernel: int, stride: int = 1,
          padding: int = 0) -> Submodule:
    return Submodule(name, "conv2d", {"in": E(fan_in), "out": E(fan_out), "kernel": Num(kernel),
                                      "stride": Num(stride), "padding": Num(padding)})


def _norm(name: str, channels: str) -> Submodule:
    return Submodule(name, "groupnorm", {"groups": E("groups"), "channels": E(channels),
                                         "eps": E("eps"), "affine": Num(True)})


def builders(layer) -> dict:
    """Lowered-class builders of the image ops, for ``build._Classes.bind``."""
    spec, facets = layer.spec, layer.facets
    return {
        "upsample": lambda: upsample(spec.conv),
        "downsample": lambda: downsample(spec.conv, facets["pad_after"]),
        "timesteps": lambda: timesteps(spec.flip_sin_to_cos, facets["scaled"]),
        "resblock": lambda: resblock(spec.act, spec.temb is not None, facets["shortcut"]),
        "image_attention": image_attention,
    }


# -------------------------------------------------------------------------- sampling


def upsample(conv: bool) -> ModuleIR:
    """(B, C, H, W) -> (B, C, scale*H, scale*W): nearest neighbour, then a 3x3 conv."""
    name = "Upsample2D" if conv else "Upsample"
    b = _Builder(name)
    x = b.input("x", (B, symbol("channels"), H, W))
    y = b.line().op("interpolate", x, var="x", scale=E("scale"))
    subs = {}
    if conv:
        subs["conv"] = _conv("conv", "channels", "channels", 3, padding=1)
        y = b.line().call("conv", y, var="x")
    b.ret(y)
    return ModuleIR(name, "lowered", b.g, subs, ctor_args=[("channels", None), ("scale", 2)],
                    scalars={"scale": E("scale")},
                    doc="Nearest-neighbour up-sampling" + (", then a 3x3 convolution."
                                                           if conv else "."),
                    signature=("upsample", conv), display={"channels": "C"})


def downsample(conv: bool, pad_after: bool) -> ModuleIR:
    """(B, C, H, W) -> (B, C, H/2, W/2): a strided 3x3 conv (padded on all sides, or only
    right and bottom as the original DDPM), or 2x2 average pooling."""
    name = ("PadDownsample2D" if pad_after else "Downsample2D") if conv else "AvgDownsample"
    b = _Builder(name)
    x = b.input("x", (B, symbol("channels"), H, W))
    subs = {}
    if conv:
        subs["conv"] = _conv("conv", "channels", "channels", 3, stride=2,
                             padding=0 if pad_after else 1)
        if pad_after:
            x = b.line().op("pad", x, var="x", pad=(0, 1, 0, 1))
        b.ret(b.line().call("conv", x, var="x"))
    else:
        b.ret(b.line().op("avg_pool", x, var="x", kernel=2))
    how = ("a 3x3 convolution of stride 2" + (", after padding right and bottom by one."
                                             if pad_after else ".")) if conv else \
        "2x2 average pooling."
    return ModuleIR(name, "lowered", b.g, subs, ctor_args=[("channels", None)],
                    doc="Halves H and W with " + how,
                    signature=("downsample", conv, pad_after), display={"channels": "C"})


# ------------------------------------------------------------------------- timesteps


def timesteps(flip: bool, scaled: bool) -> ModuleIR:
    """(B,) -> (B, dim): ``cat(sin, cos)`` (or cos first) of ``t * max_period ** (-i / ...)``."""
    b = _Builder("Timesteps")
    t = b.input("timesteps", (B,))
    subs = {"freqs": Submodule("freqs", "buffer", {
        "init": "timestep_freqs", "half": E("dim // 2"), "shift": E("downscale_freq_shift"),
        "max_period": E("max_period")})}
    freqs = b.line().op("get_attr", var="freqs", target="freqs")
    b.g.nodes[freqs].update(shape=(symbol("dim") / 2,), dtype=FLOAT)
    args = b.op("mul", b.op("unsqueeze", t, var="args", dim=-1), freqs, var="args")
    if scaled:
        args = b.line().op("mul", args, b.op("const", var="scale", value=E("scale")),
                           var="args")
    sin, cos = b.line().op("sin", args), b.op("cos", args)
    b.ret(b.op("cat", *((cos, sin) if flip else (sin, cos)), var="emb", dim=-1))
    return ModuleIR("Timesteps", "lowered", b.g, subs,
                    ctor_args=[("dim", None), ("downscale_freq_shift", 1.0),
                               ("max_period", 10000), ("scale", 1.0)],
                    scalars={"scale": E("scale")} if scaled else {},
                    doc="Sinusoidal timestep embedding (diffusers get_timestep_embedding, "
                        f"{'cos' if flip else 'sin'} first).",
                    signature=("timesteps", flip, scaled))


# --------------------------------------------------------------------------- resblock


def resblock(act: str, temb: bool, shortcut: bool) -> ModuleIR:
    """norm1 -> act -> conv1 (+ projected time embedding) -> norm2 -> act -> conv2, + skip."""
    name = "ResnetBlock" + ("Shortcut" if shortcut else "")
    # without a shortcut in == out: one name, so that x + h is well-typed in this class
    cin, cout = ("in_channels", "out_channels") if shortcut else ("channels", "channels")
    b = _Builder(name)
    x = b.input("x", (B, symbol(cin), H, W))
    subs = {"norm1": _norm("norm1", cin), "conv1": _conv("conv1", cin, cout, 3, padding=1)}
    h = b.line().call("conv1", b.op(act, b.call("norm1", x, var="h"), var="h"), var="h")
    if temb:
        emb = b.input("temb", (B, symbol("temb_channels")))
        subs["time_emb_proj"] = Submodule("time_emb_proj", "linear", {
            "in": E("temb_channels"), "out": E(cout), "bias": Num(True)})
        emb = b.line().call("time_emb_proj", b.op(act, emb, var="temb"), var="temb")
        emb = b.op("unsqueeze", b.op("unsqueeze", emb, var="temb", dim=-1), var="temb", dim=-1)
        h = b.op("add", h, emb, var="h")
    subs["norm2"] = _norm("norm2", cout)
    subs["dropout"] = Submodule("dropout", "dropout", {"p": E("dropout")})
    subs["conv2"] = _conv("conv2", cout, cout, 3, padding=1)
    h = b.line().op(act, b.call("norm2", h, var="h"), var="h")
    h = b.call("conv2", b.call("dropout", h, var="h"), var="h")
    skip = x
    if shortcut:
        subs["conv_shortcut"] = _conv("conv_shortcut", cin, cout, 1)
        skip = b.line().call("conv_shortcut", x, var="x")
    b.ret(b.line().op("add", skip, h, var="out"))
    ctor = [(cin, None), (cout, None)] if shortcut else [(cin, None)]
    ctor += [("temb_channels", None)] if temb else []
    return ModuleIR(name, "lowered", b.g, subs,
                    ctor_args=[*ctor, ("groups", 32), ("eps", 1e-6), ("dropout", 0.0)],
                    doc=f"ResNet block: (GroupNorm, {act}, conv3x3) x 2"
                        + (" + time embedding" if temb else "")
                        + (" + 1x1 conv shortcut." if shortcut else "."),
                    signature=("resblock", act, temb, shortcut),
                    display={"in_channels": "C_in", "out_channels": "C_out", "channels": "C",
                             "temb_channels": "T_emb"})


# -------------------------------------------------------------------- image attention


def image_attention() -> ModuleIR:
    """x + to_out(attention(group_norm(x) as (B, H*W, C) tokens)), back in (B, C, H, W)."""
    b = _Builder("ImageSelfAttention")
    x = b.input("x", (B, symbol("channels"), H, W))
    subs = {"group_norm": _norm("group_norm", "channels")}
    h = b.line().op("flatten", b.call("group_norm", x, var="h"), var="h", start=2)
    h = b.op("transpose", h, var="h", dim0=1, dim1=2)
    qkv = []
    for n in "qkv":
        subs[f"to_{n}"] = Submodule(f"to_{n}", "linear", {"in": E("channels"),
                                                          "out": E("channels"), "bias": Num(True)})
        qkv.append(_split_heads(b, b.line().call(f"to_{n}", h, var=n), n))
    q, k, v = qkv
    att = b.line().op("matmul", q, b.op("transpose", k, var="att", dim0=-2, dim1=-1), var="att")
    att = b.op("mul", att, b.op("const", var="scale", value=E("head_dim ** -0.5")), var="att")
    att = b.line().op("softmax", att, var="att", dim=-1)
    y = b.line().op("matmul", att, v, var="y")
    y = b.line().op("flatten", b.op("transpose", y, var="y", dim0=1, dim1=2), var="y", start=2)
    subs["to_out"] = Submodule("to_out", "linear", {"in": E("channels"), "out": E("channels"),
                                                    "bias": Num(True)})
    y = b.line().call("to_out", y, var="y")
    y = b.op("reshape_as", b.op("transpose", y, var="y", dim0=1, dim1=2), x, var="y")
    b.ret(b.line().op("add", x, y, var="out"))
    return ModuleIR(
        "ImageSelfAttention", "lowered", b.g, subs,
        ctor_args=[("channels", None), ("n_head", None), ("groups", 32), ("eps", 1e-6)],
        scalars={"n_head": E("n_head"), "head_dim": E("channels // n_head")},
        doc="Self-attention among the H*W pixels, GroupNorm in front, residual around.",
        signature=("image_attention",),
        display={"channels": "C", "n_head": "nh", "head_dim": "hs"})
