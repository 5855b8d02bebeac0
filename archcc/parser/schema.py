"""The spec schema: pydantic v2 models, one per layer op, discriminated on ``op``.

Every model forbids unknown keys (a typo is an error, not a silently ignored option) and
documents its fields with attribute docstrings, which become the JSON Schema descriptions an
editor shows on hover. Sizes may be integers or parameter expressions (``4 * n_embd``);
they stay text here and are parsed with positions by :mod:`archcc.parser.resolve`.

A layer entry looks like ``attn: {op: attention, dim: n_embd, heads: n_head, causal: true}``;
the one exception is ``h: {repeat: Block, times: n_layer}``.
"""

from __future__ import annotations

import builtins
import functools
import keyword
import math
import operator
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    create_model,
    field_validator,
    model_validator,
)

from archcc.parser.budget import canonical_bound, canonical_size

# Names that would shadow what generated code relies on, besides keywords and builtins.
RESERVED_NAMES = {
    # module-level names of every generated file
    "torch", "nn", "F", "math", "re", "dataclass", "annotations", "Config", "Model",
    "CHECKPOINT_LAYOUTS", "convert_state_dict", "example_inputs",
    "DYNAMIC_DIMS", "DIM_RANGES",
    # the generation facet's names (KV cache helpers, encode/decode methods, the cache argument)
    "KVCache", "generate", "filter_logits", "past_length", "extend_kv", "memoized", "cache",
    "encode", "decode",
    "fsdp_wrap", "parallelize", "PARALLEL_PLAN",
    # names generated methods use, and nn.Module attributes a layer name would shadow
    "self", "config", "layer", "block", "forward", "training", "state_dict", "parameters",
    "modules", "buffers", "children", "to", "cuda", "cpu", "eval", "train", "apply", "half",
    "float", "double", "register_buffer", "register_parameter", "add_module", "zero_grad",
    "load_state_dict", "named_parameters", "named_modules", "requires_grad_",
}


# Letters from other scripts that look like ASCII ones (a copy-paste from a PDF or a
# keyboard layout slip); NFKD handles accents and full-width forms.
_LOOKALIKES = str.maketrans("аеорсхуіјѕԁӏАВЕКМНОРСТХαοκνρτυχΑΒΕΗΙΚΜΝΟΡΤΧΥƒı",
                            "aeopcxyijsdlABEKMHOPCTXaoKvptuxABEHIKMNOPTXYfi")
HINT_MARK = "\nhint: "  # a validator message may end with a hint for the diagnostic


def ascii_lookalike(name: str) -> str:
    """``ascii_lookalike("ln_ƒ") == "ln_f"``: what a confusable name was probably meant to be."""
    plain = unicodedata.normalize("NFKD", name.translate(_LOOKALIKES))
    return "".join(c for c in plain if c.isascii())


MAX_NAME = 64


def check_identifier(name: str) -> str:
    """Names reach generated code, so they must be plain, unshadowing Python identifiers."""
    if not name.isascii():
        odd = next(c for c in name if not c.isascii())
        meant = ascii_lookalike(name)
        guess = f"did you mean '{meant}'? " if meant.isidentifier() else ""
        raise ValueError(f"'{name}' is not a valid name: '{odd}' is "
                         f"U+{ord(odd):04X} {unicodedata.name(odd, 'a non-ASCII character')}"
                         f"{HINT_MARK}{guess}names use ASCII letters, digits and _")
    if len(name) > MAX_NAME:  # names become file, class and attribute names
        raise ValueError(f"'{name[:20]}...' is too long for a name ({len(name)} characters, "
                         f"{MAX_NAME} at most)")
    if not name.isidentifier():
        raise ValueError(f"'{name}' is not a valid name (use ASCII letters, digits and _)")
    if keyword.iskeyword(name) or hasattr(builtins, name) or name in RESERVED_NAMES:
        raise ValueError(f"'{name}' is reserved in generated Python code; pick another name")
    if name.startswith("__"):
        raise ValueError(f"'{name}': names may not start with '__'")
    return name


Identifier = Annotated[str, AfterValidator(check_identifier)]


def check_finite(value: float) -> float:
    """NaN and infinity have no Python literal; as a size or setting they are mistakes."""
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    return value


FiniteFloat = Annotated[float, AfterValidator(check_finite)]
DimSize = Annotated[int, Field(ge=1, le=2**31)]


def check_doc_text(text: str) -> str:
    """Docs are prose for docstrings: no control or line-separator characters (a NEL or
    U+2028 reads as a line break to YAML and would not survive a round trip)."""
    bad = [c for c in text if c not in "\n\t"
           and unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")]
    if bad:
        raise ValueError(f"doc text may not contain the control character {ascii(bad[0])}")
    return text


DocText = Annotated[str, Field(max_length=2000), AfterValidator(check_doc_text)]
LayoutName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$",
                                  description="a layout name such as hf, timm or torch")]
# Checkpoint key patterns: dotted segments of word characters, `{name}` or `*` placeholders.
KeyPattern = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.{}*]*$", max_length=300)]
# Titles, not descriptions: a Field description here would replace each field's own
# attribute docstring ("Model width.") in the JSON Schema editors show.
Size = Annotated[int | str, Field(title="an integer or a parameter expression such as "
                                        "`4 * n_embd`")]
Scalar = Annotated[float | int | str, Field(title="a number or a parameter expression")]
Activation = Literal["relu", "gelu", "gelu_tanh", "silu", "tanh", "sigmoid", "identity",
                     "quick_gelu"]


def normal_forward(text: str) -> str:
    """One trailing newline, whatever the front end (YAML `|`, `|-`, or .arch braces)."""
    return text.rstrip() + "\n"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)


# --------------------------------------------------------------------------------- layers


class Embedding(_Strict):
    """Lookup table: int64 ids (B, T) -> vectors (B, T, dim). Learned positions use this too."""

    op: Literal["embedding"]
    num: Size
    """Number of rows (vocabulary size, or maximum positions)."""
    dim: Size
    """Width of each vector."""
    padding_idx: int | None = None
    """Row whose gradient is always zero (HF `pad_token_id`)."""


class Linear(_Strict):
    """Affine map over the last axis: (..., in) -> (..., out)."""

    op: Literal["linear"]
    in_: Size = Field(alias="in")
    """Input features."""
    out: Size
    """Output features."""
    bias: bool = True
    """Add a learned bias."""
    tie: Identifier | None = None
    """Share the weight of this earlier layer of the same block (e.g. `wte` for an LM head)."""


class LayerNorm(_Strict):
    """Layer normalisation over the last axis."""

    op: Literal["layernorm"]
    dim: Size
    eps: Scalar = 1e-5
    """Added to the variance (HF BERT uses 1e-12)."""
    bias: bool = True


class RMSNorm(_Strict):
    """Root-mean-square normalisation over the last axis (no centring, no bias)."""

    op: Literal["rmsnorm"]
    dim: Size
    eps: Scalar = 1e-6


class Dropout(_Strict):
    """Zeroes elements with probability p in training; identity in eval."""

    op: Literal["dropout"]
    p: Scalar = 0.0


class ActivationLayer(_Strict):
    """A pointwise nonlinearity as a layer (functions such as `gelu(x)` work in forward too)."""

    op: Literal["activation"]
    fn: Activation


class Attention(_Strict):
    """Multi-head attention: self, causal or cross. Lowers to matmul/softmax primitives that
    the optimizer fuses into `F.scaled_dot_product_attention`.

    Call it as `attn(x)`, `attn(x, mask=m)` (key-padding mask, True = attend) or
    `attn(x, memory)` for cross attention; `bias=b` adds a float bias to the scores
    (T5's relative position bias, shape (1, heads, T, S))."""

    op: Literal["attention"]
    dim: Size
    """Model width."""
    heads: Size
    """Number of heads; must divide dim."""
    causal: bool = False
    """Mask future positions."""
    cross: bool = False
    """Queries from the first argument, keys and values from the second."""
    bias: bool = True
    """Bias in the projections."""
    dropout: Scalar = 0.0
    """Dropout on the attention weights."""
    qkv: Literal["fused", "separate"] = "fused"
    """One projection producing q, k, v (kv for cross) or three separate ones."""
    scale: Literal["head_dim", "none"] = "head_dim"
    """Scores times head_dim ** -0.5, or unscaled (T5 folds the scale into its init)."""
    window: Size | None = None
    """Swin: attend within non-overlapping `window` x `window` squares of a (B, H, W, C)
    grid instead of over all tokens."""
    shift: Size = 0
    """Swin: cyclic shift of the grid before windowing (usually window // 2); a mask keeps
    tokens that wrapped around from attending across the seam. Needs `grid`."""
    grid: Size | None = None
    """Side of the (square) token grid a shifted window attention sees; the shift mask is
    built once for it."""
    position: Literal["none", "relative_table"] = "none"
    """`relative_table`: a learned bias per head and relative offset inside a window (Swin)."""


class FFN(_Strict):
    """Position-wise feed-forward: down(act(up(x))), or gated: down(act(gate(x)) * up(x))."""

    op: Literal["ffn"]
    dim: Size
    hidden: Size
    act: Activation = "gelu"
    gated: bool = False
    """GLU family: sigmoid -> GLU, gelu -> GEGLU, silu -> SwiGLU."""
    bias: bool = True
    dropout: Scalar = 0.0
    """Dropout after the output projection."""


class Patchify(_Strict):
    """Image (B, C, H, W) -> patch tokens (B, H/patch * W/patch, dim) by a strided conv,
    optionally with a CLS token, positions and a norm (ViT, Swin and MLP-Mixer stems)."""

    op: Literal["patchify"]
    in_channels: Size
    dim: Size
    patch: Size
    proj: Literal["conv", "linear"] = "conv"
    """`conv`: one strided Conv2d; `linear`: unfold the patches, then one Linear
    (the same map: its weight is the conv weight flattened)."""
    cls_token: bool = False
    """Prepend a learned CLS token (1, 1, dim): the output has one more token."""
    positions: Literal["none", "learned", "sincos"] = "none"
    """Added position table: learned (ViT) or fixed 2-D sin/cos (MAE); needs `image`."""
    image: Size | None = None
    """Image side the position table is laid out for."""
    interpolate: bool = False
    """Resample learned positions bicubically to the input's patch grid, so one model
    takes other image sizes (timm `dynamic_img_size`)."""
    layout: Literal["tokens", "grid"] = "tokens"
    """`tokens`: (B, N, dim); `grid`: (B, H/patch, W/patch, dim), channels last (Swin)."""
    norm: bool = False
    """LayerNorm over dim after the projection (Swin)."""
    eps: Scalar = 1e-5


class Sinusoidal(_Strict):
    """Fixed sin/cos position table (Vaswani et al.); call on (B, T, ...) to get (T, dim)."""

    op: Literal["sinusoidal"]
    dim: Size
    max_len: Size = 5000


class RelativeBias(_Strict):
    """T5's relative position bias: key-minus-query offsets in log-spaced buckets, one
    learned scalar per bucket and head. `bias = rel(x)` gives (1, heads, T, T), added to the
    attention scores by `attn(x, bias=bias)`; compute it once and pass it to every layer."""

    op: Literal["relative_bias"]
    heads: Size
    buckets: Size = 32
    """Number of buckets (HF `relative_attention_num_buckets`)."""
    max_distance: Size = 128
    """Offsets at or beyond this share the last bucket (HF `relative_attention_max_distance`)."""
    bidirectional: bool = True
    """Separate buckets for keys before and after the query (encoder); false for a causal
    decoder, where only keys at or before the query matter."""

class PatchMerge(_Strict):
    """Swin downsampling: each 2x2 patch neighbourhood of a (B, H, W, dim) grid is
    concatenated (4 * dim), normalised and projected: (B, H/2, W/2, out)."""

    op: Literal["patch_merge"]
    dim: Size
    """Channels of the input grid."""
    out: Size
    """Channels after merging (Swin: 2 * dim)."""
    eps: Scalar = 1e-5
    """LayerNorm epsilon over the 4 * dim concatenation."""


class Parameter(_Strict):
    """A free learned tensor, e.g. a CLS token (1, 1, dim) or a position table."""

    op: Literal["parameter"]
    shape: list[Size]
    init: Literal["zeros", "ones", "normal", "constant"] = "zeros"
    value: Scalar = 0.0
    """The fill value of `init: constant` (CLIP's logit_scale starts at log(1 / 0.07))."""


# ------------------------------------------------------------- convolutional layers (images)


class Conv2d(_Strict):
    """2-D convolution over images (B, C, H, W) -> (B, out, H', W'), like `nn.Conv2d`."""

    op: Literal["conv2d"]
    in_: Size = Field(alias="in")
    """Input channels."""
    out: Size
    """Output channels."""
    kernel: Size
    """Square kernel side."""
    stride: Size = 1
    padding: Size = 0
    """Zero padding on every side (0 allowed)."""
    groups: Size = 1
    """Grouped convolution; must divide in and out (in = groups = out is depthwise)."""
    bias: bool = True


class GroupNorm(_Strict):
    """Group normalisation over channels of (B, C, ...) (Wu & He 2018), like `nn.GroupNorm`."""

    op: Literal["groupnorm"]
    groups: Size
    """Number of groups; must divide channels."""
    channels: Size
    eps: Scalar = 1e-5
    affine: bool = True
    """Learned per-channel scale and shift."""


class Upsample(_Strict):
    """(B, C, H, W) -> (B, C, scale*H, scale*W): nearest-neighbour, then (conv: true) a 3x3
    conv (diffusers `Upsample2D`)."""

    op: Literal["upsample"]
    channels: Size
    scale: Size = 2
    conv: bool = True


class Downsample(_Strict):
    """(B, C, H, W) -> (B, C, H/2, W/2): a 3x3 conv with stride 2 (conv: true, diffusers
    `Downsample2D`) or 2x2 average pooling (conv: false)."""

    op: Literal["downsample"]
    channels: Size
    conv: bool = True
    padding: Size = 1
    """Of the conv: 1, or 0 to pad only right and bottom by one first (original DDPM,
    diffusers `downsample_padding: 0`)."""


class Timesteps(_Strict):
    """Sinusoidal embedding of diffusion timesteps (B,) -> (B, dim), the conventions of
    diffusers `get_timestep_embedding`."""

    op: Literal["timesteps"]
    dim: Size
    """Embedding width (even)."""
    flip_sin_to_cos: bool = False
    """Put the cosines first: `cat(cos, sin)` instead of `cat(sin, cos)`."""
    downscale_freq_shift: Scalar = 1.0
    """Frequencies are `max_period ** (-i / (dim / 2 - shift))`."""
    max_period: Scalar = 10000
    scale: Scalar = 1.0
    """Multiplies the angles."""


class ResBlock(_Strict):
    """Pre-activation ResNet block over images (diffusers `ResnetBlock2D`): norm, act, 3x3 conv,
    twice, plus a 1x1 conv shortcut when in != out. With `temb`, call it as `res(x, temb)`:
    the time embedding is projected and added between the two convolutions."""

    op: Literal["resblock"]
    in_: Size = Field(alias="in")
    """Input channels."""
    out: Size
    """Output channels."""
    temb: Size | None = None
    """Width of the time embedding injected into the block (none: `res(x)`)."""
    groups: Size = 32
    """GroupNorm groups; must divide in and out."""
    eps: Scalar = 1e-6
    act: Activation = "silu"
    dropout: Scalar = 0.0


class ImageAttention(_Strict):
    """Self-attention among the pixels of (B, C, H, W), GroupNorm in front and a residual
    around it (the attention of diffusers' UNet2D blocks)."""

    op: Literal["image_attention"]
    channels: Size
    heads: Size
    """Number of heads; must divide channels."""
    groups: Size = 32
    """GroupNorm groups; must divide channels."""
    eps: Scalar = 1e-6


# ------------------------------------------------------------- recurrence and 1-D sequences


class _Recurrent(_Strict):
    """Shared fields of `rnn`, `lstm` and `gru` (generated as `nn.RNN` / `nn.LSTM` / `nn.GRU`).

    Call it as `out = lstm(x)`, `out, (h, c) = lstm(x)`, `out, (h, c) = lstm(x, h0, c0)`,
    `out, h = gru(x, h0)`, or with `lengths=n` (int64 (B,)) for padded batches."""

    in_: Size = Field(alias="in")
    """Input features (last dim of x)."""
    hidden: Size
    """Hidden size per direction; outputs are hidden * (2 if bidirectional else 1) wide."""
    layers: Size = 1
    """Stacked layers."""
    bidirectional: bool = False
    dropout: Scalar = 0.0
    """Dropout between stacked layers (not after the last), in training only."""
    batch_first: bool = True
    """x is (B, T, in); false: (T, B, in). States are always (layers * directions, B, hidden)."""
    bias: bool = True
    lengths: Literal["packed", "mask"] = "packed"
    """How a `lengths=` argument is honoured: `packed` packs the padded batch (exact final
    states, every direction); `mask` runs over the padding and zeroes outputs past each length
    (unidirectional only, no final states; exports everywhere)."""


class RNN(_Recurrent):
    """Elman RNN: h_t = act(W_ih x_t + W_hh h_{t-1} + b)."""

    op: Literal["rnn"]
    nonlinearity: Literal["tanh", "relu"] = "tanh"


class LSTM(_Recurrent):
    """Long short-term memory; returns `out, (h, c)`."""

    op: Literal["lstm"]


class GRU(_Recurrent):
    """Gated recurrent unit; returns `out, h`."""

    op: Literal["gru"]


class Conv1d(_Strict):
    """1-D convolution over time: (B, in, T) -> (B, out, T'), with
    T' = (T + 2 * padding - kernel) // stride + 1."""

    op: Literal["conv1d"]
    in_: Size = Field(alias="in")
    out: Size
    kernel: Size
    stride: Size = 1
    padding: Size = 0
    bias: bool = True


class EmbeddingBag(_Strict):
    """Bag of embeddings reduced per bag: ids (B, L) -> (B, dim), or flat ids (N,) with
    offsets (nb,) -> (nb, dim)."""

    op: Literal["embedding_bag"]
    num: Size
    dim: Size
    mode: Literal["mean", "sum", "max"] = "mean"
    padding_idx: int | None = None
    """Row that is left out of every bag (and never trained)."""


class RNNDecoder(_Strict):
    """A recurrent decoder that attends over an encoder memory at every step (seq2seq).

    Called as `decoder(tgt, memory, h0)` (`h0, c0` for an LSTM cell), optionally with
    `mask=keep` (bool (B, S), True = attend); returns logits (B, T, vocab) by teacher
    forcing. The generated class also has `step()` and `greedy()` for decoding.
    Bahdanau et al. 2015: `score: additive, attend: previous`; Luong et al. 2015:
    `score: general` or `dot`, `attend: current`, `input_feed: true`."""

    op: Literal["rnn_decoder"]
    cell: Literal["gru", "lstm"] = "gru"
    """`nn.GRUCell` or `nn.LSTMCell`, stepped explicitly (the loop needs per-step access)."""
    vocab: Size
    """Target vocabulary: rows of the target embedding and width of the logits."""
    emb: Size
    """Width of the target embedding."""
    hidden: Size
    """Decoder state width."""
    memory: Size
    """Width of each encoder output (2 * hidden for a bidirectional encoder)."""
    score: Literal["additive", "general", "dot"] = "additive"
    """Attention scores: additive v^T tanh(W_q s + W_k h) (Bahdanau), general s^T W h or
    dot s^T h (Luong; dot needs memory == hidden)."""
    attn_dim: Size | None = None
    """Width of the additive score's hidden layer (default: hidden)."""
    attend: Literal["previous", "current"] = "previous"
    """`previous`: the previous state queries the memory and the context is fed into the
    cell (Bahdanau); `current`: the new state queries it and tanh(W_c [context; state])
    makes the output (Luong)."""
    input_feed: bool = False
    """Luong's input feeding: the previous attentional output joins the next cell input
    (needs `attend: current`)."""
    dropout: Scalar = 0.0
    """Dropout on the target embedding and before the output projection."""
    start_token: int = 1
    """Default first token of `greedy()` (BOS)."""
    eos_token: int = 2
    """Default end token of `greedy()`: a finished sequence is padded with it."""


SEQUENCE_OPS = [RNN, LSTM, GRU, Conv1d, EmbeddingBag, RNNDecoder]


# the ops a residual may wrap (registered plugin ops join them, see _spec_with)
SIMPLE_OPS = [Embedding, Linear, LayerNorm, RMSNorm, Dropout, ActivationLayer, Attention, FFN,
              Patchify, Sinusoidal, Parameter, RelativeBias, Conv2d, GroupNorm, Upsample,
              Downsample, Timesteps, ResBlock, ImageAttention, PatchMerge]


def simple_layer(ops: list[type[BaseModel]]) -> object:
    """The type of ``residual.layer``: one of ``ops``, discriminated on ``op``."""
    return Annotated[functools.reduce(operator.or_, ops), Field(discriminator="op")]


SimpleLayer = simple_layer(SIMPLE_OPS)


class Residual(_Strict):
    """`x + layer(norm(x))` (pre) or `norm(x + layer(x))` (post). The norm is a sibling
    module named `<name>_norm`, so checkpoint keys stay flat."""

    op: Literal["residual"]
    layer: SimpleLayer
    """The wrapped layer."""
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    placement: Literal["pre", "post"] = "pre"
    dim: Size
    """Width normalised."""
    eps: Scalar = 1e-5


def check_pattern(text: str) -> str:
    """A layer pattern is letters only, one per layer: ``AAFAAF``."""
    bad = next((i for i, c in enumerate(text) if not (c.isascii() and c.isalpha())), None)
    if not text or bad is not None:
        what = "is empty" if not text else f"has {text[bad]!r} at position {bad}"
        raise ValueError(f"pattern {text!r} {what}{HINT_MARK}a pattern is one letter per "
                         "layer, e.g. AAFAAF, each letter a key of `blocks`")
    return text


def check_letter(letter: str) -> str:
    """A key of a pattern's `blocks`: a single ASCII letter."""
    if len(letter) != 1 or not (letter.isascii() and letter.isalpha()):
        raise ValueError(f"{letter!r} is not a pattern letter{HINT_MARK}`blocks` maps single "
                         "letters to blocks, e.g. {A: Attn, F: FFNBlock}")
    return letter


Pattern = Annotated[str, Field(max_length=10_000), AfterValidator(check_pattern)]
Letter = Annotated[str, AfterValidator(check_letter)]


class Repeat(_Strict):
    """`times` copies of a block in an `nn.ModuleList`, applied in order, or one block per
    letter of a `pattern` (`AAFAAF`: layer i is the block letter i names)."""

    repeat: Identifier | None = None
    """Name of a block under `blocks:` (not with `pattern`)."""
    times: Size | None = None
    """Number of layers. Required with `repeat`; with `pattern` optional, and when given it
    must equal the pattern's length."""
    cycle: list[Identifier] = []
    """Further blocks taken in turn: with `cycle: [Shifted]`, layers alternate
    `repeat`, Shifted, `repeat`, ... (Swin's plain and shifted windows)."""
    pattern: Pattern | None = None
    """One letter per layer, e.g. `AAFAAF` with `blocks: {A: Attn, F: FFNBlock}`: layer i
    is an instance of the block letter i names (checkpoint keys stay `h.{i}.…`)."""
    blocks: dict[Letter, Identifier] = {}
    """For `pattern`: letter -> block name under the spec's `blocks:`."""

    @model_validator(mode="after")
    def _one_form(self) -> Repeat:
        if self.pattern is None:
            if self.blocks:
                raise ValueError(f"`blocks` goes with `pattern`{HINT_MARK}add a pattern such "
                                 f"as {''.join(self.blocks) * 2}, or drop `blocks`")
            for name in ("repeat", "times"):
                if getattr(self, name) is None:
                    raise ValueError(f"missing required field '{name}'")
            return self
        if self.repeat is not None or self.cycle:
            raise ValueError(f"a pattern names its blocks by letter{HINT_MARK}drop `repeat` "
                             "and `cycle` and map letters in `blocks: {A: Attn, F: FFNBlock}`")
        if not self.blocks:
            raise ValueError(f"missing required field 'blocks'{HINT_MARK}a pattern needs its "
                             "letters: blocks: {A: Attn, F: FFNBlock}")
        return self

    def block_names(self) -> list[str]:
        """The blocks this repeat instantiates, in order of first use: ``[repeat, *cycle]``,
        or the blocks a pattern's letters name (unknown letters left out)."""
        if self.pattern is None:
            return [self.repeat, *self.cycle]
        return list(dict.fromkeys(self.blocks[c] for c in self.pattern if c in self.blocks))


def _layer_tag(value: Any) -> str:
    if isinstance(value, dict):
        return "repeat" if ("repeat" in value or "pattern" in value) and "op" not in value \
            else str(value.get("op"))
    return "repeat" if hasattr(value, "repeat") else str(getattr(value, "op", ""))


_OPS = [Embedding, Linear, LayerNorm, RMSNorm, Dropout, ActivationLayer, Attention, FFN,
        Patchify, Sinusoidal, Parameter, Residual, *SEQUENCE_OPS, RelativeBias,
        Conv2d, GroupNorm, Upsample, Downsample, Timesteps, ResBlock, ImageAttention,
        PatchMerge]
OP_NAMES = [m.model_fields["op"].annotation.__args__[0] for m in _OPS]  # the builtins



def _op_name(model: type[BaseModel]) -> str:
    """``_op_name(Linear) == "linear"``: the tag of an op model's ``op: Literal[...]`` field."""
    return model.model_fields["op"].annotation.__args__[0]


def layer_union(ops: list[type[BaseModel]]) -> object:
    """The ``layers:`` entry type: these op models and ``repeat``, discriminated on ``op``.

    Plugin ops (:mod:`archcc.plugins`) join the builtins through this same function::

        layer_union([*_OPS, ChannelAttention])   # {op: channel_attention, ...} validates
    """
    tagged = [Annotated[m, Tag(_op_name(m))] for m in ops]
    return Annotated[
        functools.reduce(operator.or_, tagged[1:], tagged[0]) | Annotated[Repeat, Tag("repeat")],
        Discriminator(_layer_tag, custom_error_type="unknown_op",
                      custom_error_message="unknown op",
                      custom_error_context={"known": ", ".join(map(_op_name, ops))}),
    ]


Layer = layer_union(_OPS)

# -------------------------------------------------------------------------------- structure


class Input(_Strict):
    """A model input: a symbolic shape such as [B, T] and a dtype."""

    shape: list[Size]
    """Dims: input symbols (B, T, ...) or params/expressions (image_size)."""
    dtype: Literal["int64", "float32", "bool"] = "float32"
    high: Size | None = None
    """For int64 inputs: values in [0, high) in `example_inputs()`."""


class Block(_Strict):
    """A reusable block: its layers and how they are wired. Becomes one nn.Module class."""

    extends: Identifier | None = None
    """Another block under `blocks:` that this one changes (`{extends: Block, layers: {mlp:
    {hidden: 8 * n_embd}}}`), merged like a spec's `extends`; what it does not write,
    `forward` included, is the base's. Resolved before validation."""
    doc: DocText | None = None
    """One line for the class docstring."""
    inputs: list[Identifier] = ["x"]
    """Forward arguments. The first is threaded through a repeat; the rest are shared."""
    layers: dict[Identifier, Layer] = {}
    forward: str | None = None
    """Statements, one per line: `x = x + attn(ln_1(x))`, ending in `return ...`
    (or returning the last assigned name). Required, unless the block `extends` another."""

    _normal_forward = field_validator("forward")(
        lambda text: None if text is None else normal_forward(text))

    @model_validator(mode="after")
    def _wired(self) -> Block:
        # optional in the JSON Schema only so that editors accept a derived block's changes
        if self.forward is None:
            raise ValueError(f"missing required field 'forward'{HINT_MARK}a block says how its "
                             "layers are wired; a block that `extends` another inherits it")
        return self


class Model(_Strict):
    """The top-level module; its forward arguments are the spec's `inputs`."""

    doc: DocText | None = None
    layers: dict[Identifier, Layer] = {}
    forward: str

    _normal_forward = field_validator("forward")(lambda text: normal_forward(text))


class Layout(_Strict):
    """How one foreign checkpoint layout maps onto this spec's state_dict keys.

    Patterns are dotted key prefixes; `{i}` (any name in braces) matches one key segment."""

    rename: dict[KeyPattern, KeyPattern] = {}
    """Foreign prefix -> our prefix, e.g. `transformer.h.{i}.attn.c_attn: h.{i}.attn.qkv`."""
    transpose: list[KeyPattern] = []
    """Our keys (after renaming; `*` matches one segment) whose 2-D weight is transposed
    (HF GPT-2 Conv1D stores (in, out))."""
    concat: dict[KeyPattern, list[KeyPattern]] = {}
    """Our key <- foreign keys concatenated along dim 0 (separate q/k/v into one qkv)."""
    split: dict[KeyPattern, list[KeyPattern]] = {}
    """Foreign key -> our keys, cut into equal chunks along dim 0 (a fused in_proj_weight
    into separate q/k/v)."""
    drop: list[KeyPattern] = []
    """Foreign keys (before renaming) to ignore, e.g. buffers like `embeddings.position_ids`."""


class Generate(_Strict):
    """The generation facet: a KV cache threaded through the decoder and a `generate()`.

    `causal_lm`: `forward(ids, cache=None)`; `seq2seq`: `encode(...)` runs once and
    `decode(ids, memory, cache=None)` steps the decoder. Either way `generate(model, ids, n)`.
    """

    kind: Literal["causal_lm", "seq2seq"]
    """`causal_lm` (GPT-style decoder only) or `seq2seq` (encoder-decoder)."""
    input: Identifier | None = None
    """The int64 token input the decoder is stepped on; default: the last int64 input."""
    eos: int | None = None
    """Default `eos_token_id`: a sequence that emits it is finished."""
    pad: int | None = None
    """Default `pad_token_id` written after a sequence finished (default: `eos`)."""
    start: int = 0
    """seq2seq: the token the decoder starts from (`decoder_start_token_id`)."""


ParallelStyle = Literal["colwise", "rowwise"]


class Reference(_Strict):
    """The implementation `archcc bench` compares against, built from this spec's params
    (its names mirror the reference config) and given the same weights via `layout`.

    Only names from a fixed allow-list (archcc/parser/references.py) are accepted."""

    library: Literal["transformers"]
    """Where the class lives."""
    model: Identifier
    """The class, e.g. `GPT2LMHeadModel`; must be on archcc's allow-list."""
    layout: LayoutName
    """The checkpoint layout (a key of `checkpoint:`) that maps its state_dict onto ours."""

    @field_validator("model")
    @classmethod
    def _allowed(cls, name: str, info) -> str:
        from archcc.parser.references import REFERENCE_MODELS

        known = REFERENCE_MODELS.get(info.data.get("library", ""), {})
        if name not in known:
            raise ValueError(f"'{name}' is not an allowed reference model"
                             f"{HINT_MARK}allowed: {', '.join(known)}")
        return name


CountBound = Annotated[str | int, AfterValidator(canonical_bound("count")),
                      Field(title="a comparison and a count, e.g. `<= 125M` (K, M, G, T: "
                                  "powers of 1000)")]
ByteSize = Annotated[str | int, AfterValidator(canonical_size("bytes")),
                     Field(title="a byte size, e.g. `1GiB` (KiB, MiB, GiB: powers of 1024; "
                                 "KB, MB, GB: powers of 1000)")]


class KVCacheBudget(_Strict):
    """Bytes of the KV cache at sequence length `T` for batch 1: keys and values of every
    causal self-attention layer, 2 x layers x kv heads x head dim x T x bytes per element."""

    T: Size
    """Sequence length the cache holds (an integer or a param expression: `n_positions`)."""
    max: ByteSize
    """The most it may take: `1GiB`, `512MiB`, `2GB`."""
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    """Element type of the cached keys and values."""


class Budget(_Strict):
    """Invariants checked at build time (and by `archcc check`), measured on the meta
    device without allocating: a violation is an error at its line.

    Comparisons are `<=`, `<`, `>=`, `==` (quote `>=` in YAML: `">= 1M"`)."""

    params: CountBound | None = None
    """Parameters (tied weights once), e.g. `<= 125M`."""
    flops_per_token: CountBound | None = None
    """Forward FLOPs at batch 1 and the spec's `dims`, divided by the T tokens (needs an
    input symbol `T`), e.g. `<= 2G`."""
    kv_cache_at: KVCacheBudget | None = None
    """KV cache size at a sequence length: `{T: 8192, max: 1GiB}` (needs causal
    self-attention)."""


class Spec(_Strict):
    """One architecture: params, inputs, reusable blocks, the model and checkpoint layouts."""

    archcc: Literal[1]
    """Spec format version."""
    name: Identifier
    """Module name: `archcc build` writes `generated/<name>.py`."""
    extends: str | None = None
    """A spec this one starts from (relative path inside the project): mappings merge,
    lists and values replace, `null` deletes. Resolved before validation."""
    imports: list[str] = []
    """Block libraries (relative paths; files with only `archcc` and `blocks`) whose
    blocks this spec may use."""
    doc: DocText | None = None
    params: dict[Identifier, bool | int | FiniteFloat | str] = {}
    """Become the frozen `Config` dataclass; strings are expressions over earlier params."""
    dims: dict[Identifier, DimSize] = {}
    """Default sizes of input symbols for `example_inputs()` (B is the batch argument)."""
    inputs: dict[Identifier, Input]
    blocks: dict[Identifier, Block] = {}
    model: Model
    checkpoint: dict[LayoutName, Layout] = {}
    """Foreign layouts `convert_state_dict(sd, layout)` understands, by name (hf, timm, torch)."""
    generate: Generate | None = None
    """Incremental decoding: a KV cache, `cache=` arguments and a generated `generate()`."""
    reference: Reference | None = None
    """A reference implementation for `archcc bench` (same weights, same inputs by name)."""
    parallel: dict[KeyPattern, ParallelStyle] = {}
    """Tensor-parallel plan for the generated `parallelize(model, mesh)`: module path
    (`*` matches one segment, e.g. `h.*.mlp.up`) -> `colwise` or `rowwise` (a colwise layer
    feeds a rowwise one, with only elementwise work between)."""
    budget: Budget | None = None
    """Limits the build enforces: parameters, FLOPs per token, KV cache bytes."""


# ---------------------------------------------------------------------- plugin op models

_PLUGIN_OPS: list[type[BaseModel]] = []
_SPEC_MODELS: list[type[Spec]] = []  # the Spec model with the plugin ops, once rebuilt


def set_plugin_ops(models: list[type[BaseModel]]) -> None:
    """Make these plugin op models valid ``layers:`` entries (called by archcc.plugins).

    The builtin :class:`Spec` is never changed (its JSON Schema stays the committed one);
    with plugin ops, :func:`spec_model` returns subclasses of Block, Model and Spec whose
    ``layers`` union also holds them, so ``isinstance(spec, Spec)`` still holds.
    """
    _PLUGIN_OPS[:] = models
    _SPEC_MODELS[:] = [_spec_with(models)] if models else []


def _spec_with(models: list[type[BaseModel]]) -> type[Spec]:
    wrapped = Residual.model_fields["layer"]
    residual = create_model("Residual", __base__=Residual, __module__=__name__,
                            __doc__=Residual.__doc__,
                            layer=(simple_layer([*SIMPLE_OPS, *models]),
                                   Field(description=wrapped.description)))
    ops = [residual if m is Residual else m for m in _OPS]
    layers = dict[Identifier, layer_union([*ops, *models])]
    block = create_model("Block", __base__=Block, __module__=__name__, __doc__=Block.__doc__,
                         layers=(layers, {}))
    model = create_model("Model", __base__=Model, __module__=__name__, __doc__=Model.__doc__,
                         layers=(layers, {}))
    return create_model("Spec", __base__=Spec, __module__=__name__, __doc__=Spec.__doc__,
                        blocks=(dict[Identifier, block], {}), model=(model, ...))


def spec_model() -> type[Spec]:
    """The model specs validate against: :class:`Spec`, plus plugin ops when registered."""
    return _SPEC_MODELS[0] if _SPEC_MODELS else Spec


def op_models() -> dict[str, type[BaseModel]]:
    """Op name -> its pydantic model: the builtins in schema order, then plugin ops."""
    return {_op_name(m): m for m in (*_OPS, *_PLUGIN_OPS)}


def json_schema() -> str:
    """The JSON Schema editors use (``# yaml-language-server: $schema=...`` in specs).

    Registered plugin ops are included; with none it is the committed schema/ file."""
    import json

    schema = spec_model().model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "archcc spec"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
