"""``op: attention``: multi-head attention, self, causal or cross, or within windows (Swin).

Attention is not a template: it lowers to the linear / matmul / softmax primitives a user
could write by hand (:mod:`.lowering`, :mod:`.windows`), and the optimizer's
``fuse_attention`` pass is what turns them into ``F.scaled_dot_product_attention``::

    attn: {op: attention, dim: n_embd, heads: n_head, causal: true}
    ->  self.attn = CausalSelfAttention(config.n_embd, config.n_head)
    attn(x) with x (B, T, n_embd)  ->  (B, T, n_embd)

Calls: ``attn(x)``, ``attn(x, mask=m)`` (key padding, True = attend), ``attn(x, memory)``
(cross), ``attn(x, bias=b)`` (an additive score bias such as T5's relative positions).

Decoder LLMs add facets (:mod:`.facets`, lowered by :mod:`.decoder`): ``kv_heads``
(grouped-query), ``head_dim``, ``rope: {op: rotary, ...}``, ``sliding_window``, ``qk_norm``,
``softcap``, ``score_scale`` and ``out_bias``::

    attn: {op: attention, dim: hidden_size, heads: num_attention_heads,
           kv_heads: num_key_value_heads, causal: true, qkv: separate, bias: false,
           rope: {op: rotary, theta: rope_theta}}
"""

from __future__ import annotations

from typing import Literal

from archcc.ir.graph import Submodule
from archcc.ir.shapes import FLOAT, ShapeError, fmt
from archcc.lazy import sympy
from archcc.ops import Example, Op, op
from archcc.ops.attention import decoder, facets, lowering, windows
from archcc.ops.base import check_divides, diag, field_diag
from archcc.ops.linear import last_dim
from archcc.ops.rotary import Rotary
from archcc.parser.expr import Num
from archcc.parser.fields import Scalar, Size, Strict


class Attention(Strict):
    """Multi-head attention: self, causal or cross. Lowers to matmul/softmax primitives that
    the optimizer fuses into `F.scaled_dot_product_attention`.

    Call it as `attn(x)`, `attn(x, mask=m)` (key-padding mask, True = attend) or
    `attn(x, memory)` for cross attention; `bias=b` adds a float bias to the scores
    of any shape that broadcasts to (B, heads, T, S), as in PyTorch (T5's relative position
    bias and ALiBi are (1, heads, T, S); a padding bias (B, 1, 1, S); one for every head and
    row of the batch (T, S))."""

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
    tokens that wrapped around from attending across the seam. Needs `grid`. An expression
    (a block argument) may be 0 in some instances: those roll by 0 under a zero mask."""
    grid: Size | None = None
    """Side of the (square) token grid a shifted window attention sees; the shift mask is
    built once for it."""
    position: Literal["none", "relative_table"] = "none"
    """`relative_table`: a learned bias per head and relative offset inside a window (Swin)."""
    kv_heads: Size | None = None
    """Key/value heads, each shared by heads / kv_heads query heads: grouped-query attention
    (1: multi-query). Must divide heads; default: heads. The KV cache keeps only these."""
    head_dim: Size | None = None
    """Width of each head (Gemma, Qwen3 fix it apart from dim); default: dim // heads."""
    out_bias: bool | None = None
    """Bias in the output projection; default: `bias` (Qwen2: `bias: true, out_bias: false`,
    biases on q, k and v only)."""
    rope: Rotary | None = None
    """Rotary positions for q and k: `{op: rotary, theta: rope_theta}` plus the scaling and
    partial-rotary fields of `op: rotary`; under a KV cache positions go on after the
    cached ones."""
    sliding_window: Size | None = None
    """Causal attention to the last `sliding_window` keys: query i sees i - w < j <= i
    (Hugging Face's semantics; Mistral, Gemma 2's local layers). Stays fused (a boolean
    attn_mask); a model windowed in every layer keeps a KV cache no longer than this."""
    qk_norm: Literal["none", "head", "full"] = "none"
    """RMS-normalise q and k before rotary: `head` over each head's head_dim (Qwen3), `full`
    over the projected width before the head split (OLMo-2), in float32 as HF does."""
    qk_norm_eps: Scalar = 1e-6
    """Epsilon of the qk-norm."""
    softcap: Scalar | None = None
    """Attention logit soft-capping (Gemma 2): scores -> tanh(scores / softcap) * softcap,
    after the scale and before the masks. SDPA has no such step: it stays unfused."""
    score_scale: Scalar | None = None
    """Scores times this instead of head_dim ** -0.5 (Gemma 2:
    `query_pre_attn_scalar ** -0.5`)."""


@op
class AttentionOp(Op):
    name, schema, order = "attention", Attention, 70
    sizes, scalars, optional_sizes = ("dim", "heads"), ("dropout",), ("window", "grid")
    arity, keywords = (1, 2), ("mask", "bias")
    example = Example("attn: {op: attention, dim: n_embd, heads: n_head, causal: true}",
                      {"n_embd": 16, "n_head": 4})

    def declare(self, scope, layer):
        super().declare(scope, layer)
        if layer.spec.shift != 0:  # 0 is "no shift", not a size; an expression may give 0
            layer.sizes["shift"] = scope.size(layer.spec.shift, (*layer.path, "shift"),
                                              positive=not isinstance(layer.spec.shift, str))
        facets.declare(scope, layer)

    def check(self, scope, layer):
        if "head_dim" not in layer.sizes:  # an explicit head_dim need not divide dim
            check_divides(scope, layer, "heads", "dim")
        problems = windows.facet_problems(scope, layer)
        scope.errors += [diag(layer, message, hint) for message, hint in problems]
        located = facets.problems(scope, layer)
        scope.errors += [field_diag(scope, layer, key, message, hint)
                         for message, hint, key in located]
        layer.broken = bool(problems or located)  # no class can be built for these facets

    def submodules(self, layer):
        s, spec = layer.sizes, layer.spec
        if facets.uses_facets(spec):
            args = facets.constructor_args(layer)
        elif spec.window is not None:
            args = windows.constructor_args(layer)
        else:
            args = {"dim": s["dim"], "n_head": s["heads"], "bias": Num(spec.bias),
                    "dropout": s["dropout"]}
        return [Submodule(layer.name, "class", args, layer.loc)]  # cls: bound at the call

    def usage(self, layer):
        if layer.spec.cross:
            return f"cross attention is called as {layer.name}(x, memory), optionally with " \
                "mask= and bias="
        return f"self attention is called as {layer.name}(x), {layer.name}(x, mask=m) or " \
            f"{layer.name}(x, bias=b)"

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        if layer.spec.window is not None:
            return windows.call_shape(ctx, layer, shapes, kwargs)
        return _shape(ctx, layer, shapes, kwargs)

    def lower(self, layer, kwargs):
        spec = layer.spec
        if facets.uses_facets(spec):
            return decoder.lower(facets.facets(layer, kwargs), spec.rope)
        if spec.window is not None:
            return windows.window_attention(spec.shift != 0, spec.position == "relative_table")
        return lowering.attention(spec.causal, spec.cross, spec.qkv == "fused", "mask" in kwargs,
                                  spec.scale != "none", "bias" in kwargs)

    def alternatives(self, layer, kwargs):
        """A shift written as an expression (a block argument) may be 0 in some instances:
        there the layer is the plain ``WindowAttention`` (no roll, no mask), as timm's
        blocks skip both where they do not shift."""
        if layer.spec.window is None or not isinstance(layer.spec.shift, str):
            return []
        return [windows.unshifted(layer)]

    def params(self, values):
        dim, bias = values["dim"], values["bias"]
        inner, kv = _widths(values)
        out_bias = bias if values.get("out_bias") is None else values["out_bias"]
        count = dim * (inner + 2 * kv) + inner * dim
        count += (inner + 2 * kv if bias else 0) + (dim if out_bias else 0)
        if values.get("position") == "relative_table":
            count += (2 * values["window"] - 1) ** 2 * values["heads"]
        if values.get("qk_norm") == "head":
            count += 2 * (values.get("head_dim") or dim // values["heads"])
        elif values.get("qk_norm") == "full":
            count += inner + kv
        return count

    def flops(self, values, shapes):
        x = shapes[0]
        dim, tokens = values["dim"], _prod(x[:-1])
        inner, kv = _widths(values)
        if inner != dim or kv != dim:  # grouped-query or an explicit head_dim
            rows = x[1]
            attention = 4 * _prod(x[:-2]) * rows * rows * inner
            return 2 * tokens * dim * (2 * inner + 2 * kv) + attention
        keys = _prod(shapes[1][:-1]) if values["cross"] else tokens
        if values.get("window"):
            per_window = values["window"] ** 2
            return 2 * tokens * dim * 4 * dim + 4 * tokens * per_window * dim
        rows = x[1] if len(x) > 2 else 1
        keys_per_row = (shapes[1][1] if values["cross"] else rows)
        attention = 4 * _prod(x[:-2]) * rows * keys_per_row * dim
        return 2 * tokens * dim * 2 * dim + 2 * keys * dim * 2 * dim + attention

    def facet(self, fields):
        text = "attention " + ("cross" if fields.get("cross") else
                               "causal" if fields.get("causal") else "self")
        heads, kv = fields.get("heads"), fields.get("kv_heads")
        if kv is not None and kv != heads:
            text += " mqa" if kv == 1 else " gqa"
        if fields.get("sliding_window") is not None:
            text += " sliding"
        if fields.get("rope.op") or fields.get("rope"):
            text += " rotary"
        return text


def _widths(values) -> tuple[int, int]:
    """Widths of the query projection and of each of key and value: heads * head_dim."""
    heads = values["heads"]
    head_dim = values.get("head_dim") or values["dim"] // heads
    kv_heads = values.get("kv_heads") or heads
    return heads * head_dim, kv_heads * head_dim


def _prod(dims) -> int:
    out = 1
    for d in dims:
        out *= d
    return out


def _shape(ctx, layer, shapes, kwargs):
    spec, x = layer.spec, shapes[0]
    positional = len(shapes) - len(kwargs)
    want = 2 if spec.cross else 1
    if positional != want:
        raise ShapeError(f"{layer.name} takes {want} positional input(s), got {positional}",
                         "cross attention is called as attn(x, memory); self attention as "
                         "attn(x) or attn(x, mask=m)")
    if set(kwargs) - {"mask", "bias"}:
        raise ShapeError(f"{layer.name}: unknown keyword(s) "
                         f"{sorted(set(kwargs) - {'mask', 'bias'})}",
                         "the keywords are mask= and bias=")
    last_dim(ctx, layer, x, "dim", "queries")
    keys = shapes[1] if spec.cross else x
    if spec.cross:
        last_dim(ctx, layer, keys, "dim", "memory")
    named = dict(zip(kwargs, shapes[positional:], strict=True))
    mask = named.get("mask")
    if mask is not None and (len(mask) != 2 or not ctx.equal(mask[0], x[0])
                             or not ctx.equal(mask[1], keys[1])):
        raise ShapeError(f"{layer.name}: mask must be (batch, keys) = "
                         f"{fmt((x[0], keys[1]))}, got {fmt(mask)}")
    bias = named.get("bias")
    scores = (x[0], layer.dim("heads"), x[1], keys[1])
    if bias is not None and not _broadcasts(ctx, bias, scores):
        raise ShapeError(f"{layer.name}: bias must broadcast to (batch, heads, queries, keys) "
                         f"= {fmt(scores)}, got {fmt(bias)}",
                         "as in PyTorch: counted from the right, each dim is 1 or equal "
                         "(e.g. (1, heads, T, S), (B, 1, 1, S) or (T, S))")
    return x, FLOAT


def _broadcasts(ctx, shape: tuple, target: tuple) -> bool:
    """Whether a tensor of ``shape`` broadcasts to ``target`` without growing it."""
    if len(shape) > len(target):
        return False
    one = sympy.Integer(1)
    return all(ctx.equal(d, one) or ctx.equal(d, t)
               for d, t in zip(reversed(shape), reversed(target), strict=False))
