"""The facets of decoder-LLM attention: grouped-query heads, explicit head_dim, rotary
positions, sliding windows, qk-norm, soft-capping, a score scale, q/k/v-only biases.

    attn: {op: attention, dim: hidden_size, heads: num_attention_heads,
           kv_heads: num_key_value_heads, head_dim: head_dim, causal: true, qkv: separate,
           bias: false, rope: {op: rotary, theta: rope_theta}, sliding_window: 4096}
    ->  self.attn = SlidingWindowAttention(config.hidden_size, config.num_attention_heads,
                                           config.num_key_value_heads, config.head_dim,
                                           config.rope_theta, 4096, bias=False)

It lowers to the same primitives as plain attention plus ``rope_angles``/``rope``
(``apply_rotary``), ``repeat_kv`` (grouped-query keys repeated per query head, which
``fuse_attention`` turns into SDPA's ``enable_gqa``) and ``sliding_mask`` (a boolean
``attn_mask``); soft-capped scores (``softcap``) stay unfused, with a near-miss note.
Heads are always a dim of the tensors, never unrolled: ``Config(num_key_value_heads=1)``
makes the same class multi-query.
"""

from __future__ import annotations

from archcc.ir.builder import Builder, E
from archcc.ir.graph import ModuleIR, Submodule
from archcc.ir.shapes import BOOL
from archcc.ops import dropout, register_helper, rotary
from archcc.ops.attention.facets import Facets
from archcc.ops.linear import submodule as linear

# --------------------------------------------------------------------------- lowering


def lower(f: Facets, rope_spec) -> ModuleIR:
    """The class of these facets as primitives (see the module docstring)."""
    name = "SlidingWindowAttention" if f.window else \
        "CausalSelfAttention" if f.causal else "SelfAttention"
    b = Builder(name)
    hd = "head_dim" if f.head_dim else "dim // n_head"
    q_width = f"n_head * {_paren(hd)}" if f.head_dim else "dim"
    kv_width = f"n_kv_head * {_paren(hd)}" if f.kv_heads else q_width
    x = b.input("x", "B, T, dim")
    mask = b.input("mask", "B, T", BOOL) if f.masked else None
    bias = b.input("bias", "1, n_head, T, T") if f.biased else None
    subs: dict[str, Submodule] = {}
    kv_heads = "n_kv_head" if f.kv_heads else "n_head"
    widths = (("q", "n_head", q_width), ("k", kv_heads, kv_width), ("v", kv_heads, None))
    parts = _project(b, subs, f, x, q_width, kv_width)
    q, k, v = (_heads(b, subs, f, node, n, heads, width)
               for node, (n, heads, width) in zip(parts, widths, strict=True))
    if f.rope is not None:
        q, k = _rotate(b, subs, f, rope_spec, q, k, hd)
    keep = _causal(b, f, q, k)  # before any repeat: masks read the kv heads' keys
    att, v = _scores(b, f, q, k, v, bias)
    att = _masks(b, f, att, keep, mask)
    att = b.line().op("softmax", att, var="att", dim=-1)
    att = b.line().op("dropout", att, var="att", p=E("dropout"))
    y = b.line().op("matmul", att, v, var="y")
    y = b.line().op("transpose", y, var="y", dim0=1, dim1=2)
    y = b.op("flatten", y, var="y", start=2)
    subs["proj"] = linear("proj", E(q_width), E("dim"), E("out_bias" if f.out_bias else "bias"))
    subs["drop"] = dropout.submodule("drop", E("dropout"))
    y = b.line().call("proj", y, var="y")
    b.ret(b.op("call", y, var="y", target="drop", kwargs=()))
    return ModuleIR(name, "lowered", b.g, subs, ctor_args=_ctor(f, rope_spec),
                    scalars=_scalars(f), doc=_doc(f, rope_spec),
                    signature=("attention", "decoder", *f.__dict__.values()),
                    display=_display(f))


def _scores(b: Builder, f: Facets, q: str, k: str, v: str, bias: str | None):
    """(scores, values): kv heads repeated per query head, scaled, soft-capped, biased."""
    if f.kv_heads:  # each kv head serves n_head // n_kv_head query heads
        k = b.line().op("repeat_kv", k, var="k", times=E("n_head // n_kv_head"))
        v = b.line().op("repeat_kv", v, var="v", times=E("n_head // n_kv_head"))
    att = b.line().op("matmul", q, b.op("transpose", k, var="att", dim0=-2, dim1=-1),
                      var="att")
    if f.scaled:
        scale = E("score_scale") if f.score_scale else E("head_dim ** -0.5")
        att = b.op("mul", att, b.op("const", var="scale", value=scale), var="att")
    if f.softcap:  # Gemma 2: tanh(scores / cap) * cap, after the scale, before the masks
        att = b.line().op("softcap", att, var="att", cap=E("softcap"))
    if bias is not None:
        att = b.line().op("add", att, bias, var="att")
    return att, v


def _paren(text: str) -> str:
    return f"({text})" if " " in text else text


def _project(b: Builder, subs: dict, f: Facets, x: str, q_width: str, kv_width: str):
    """q, k, v (B, T, heads * hs): from one projection, rows [q | k | v] (Phi-3's qkv_proj),
    or None each, for :func:`_heads` to call the separate ones on their own lines."""
    if f.fused:
        subs["qkv"] = linear("qkv", E("dim"), E(f"{q_width} + 2 * {_paren(kv_width)}"),
                             E("bias"))
        qkv = b.line().call("qkv", x, var="qkv")
        sizes = (E(q_width), E(kv_width), E(kv_width))
        parts = b.op("split", qkv, var="qkv", sizes=sizes, dim=-1)
        return tuple(b.op("getitem", parts, var=n, index=i) for i, n in enumerate("qkv"))
    for n, width in (("q", q_width), ("k", kv_width), ("v", kv_width)):
        subs[n] = linear(n, E("dim"), E(width), E("bias"))
    return tuple((x, n) for n in "qkv")


def _heads(b: Builder, subs: dict, f: Facets, node, var: str, heads: str,
           width: str | None) -> str:
    """(B, T, heads * hs) -> (B, heads, T, hs) on one line, with q and k normalised where
    asked; ``node`` is a part of a fused projection or (input, linear) to call."""
    b.line()
    if isinstance(node, tuple):
        node = b.call(node[1], node[0], var=var)
    normed = f.qk_norm != "none" and width is not None
    if normed and f.qk_norm == "full":  # OLMo-2: over the projected width, before the split
        subs[f"{var}_norm"] = _norm(f"{var}_norm", width, "all")
        node = b.call(f"{var}_norm", node, var=var)
    hd = "head_dim" if f.head_dim else "dim // n_head"
    node = b.op("unflatten", node, var=var, dim=-1, sizes=(E(heads), E(hd)))
    if normed and f.qk_norm == "head":  # Qwen3: each head over its head_dim
        subs[f"{var}_norm"] = _norm(f"{var}_norm", hd, "norm")
        node = b.call(f"{var}_norm", node, var=var)
    return b.op("transpose", node, var=var, dim0=1, dim1=2)


def _norm(name: str, width: str, upcast: str) -> Submodule:
    return Submodule(name, "rmsnorm", {"dim": E(width), "eps": E("qk_norm_eps"),
                                       "upcast": upcast, "unit_offset": False})


def _rotate(b: Builder, subs: dict, f: Facets, spec, q: str, k: str, hd: str):
    """cos, sin = self.rotary(q); q and k turned by them (positions go on under a cache)."""
    fields = {key: E(f"rope_{key}") for key in ("theta", *rotary.NEEDS[spec.scaling])}
    rot = "rope_dim" if f.rope[1] else hd
    subs["rotary"] = rotary.submodule("rotary", spec, {"dim": E(rot), **fields})
    angles = b.line().op("rope_angles", q, var="cos", target="rotary", dim=E(rot))
    cos = b.op("getitem", angles, var="cos", index=0)
    sin = b.op("getitem", angles, var="sin", index=1)
    interleaved = f.rope[2]
    q = b.line().op("rope", q, cos, sin, var="q", interleaved=interleaved)
    k = b.line().op("rope", k, cos, sin, var="k", interleaved=interleaved)
    return q, k


def _causal(b: Builder, f: Facets, q: str, k: str) -> str | None:
    """The causal or sliding-window keep mask (T, S), None for bidirectional attention."""
    if f.window:  # query i sees keys i - window < j <= i (Hugging Face's sliding window)
        return b.line().op("sliding_mask", q, k, var="keep", window=E("window"))
    if f.causal:
        return b.line().op("causal_mask", q, k, var="causal")
    return None


def _masks(b: Builder, f: Facets, att: str, keep: str | None, mask: str | None) -> str:
    if keep is not None:
        att = b.line().op("masked_fill", att, keep, var="att", value="-inf")
    if mask is not None:
        padding = b.line().op("key_padding_mask", mask, var="padding")
        # a left-padded query row sees no key: the lowest finite value keeps it finite
        att = b.line().op("masked_fill", att, padding, var="att",
                          value="min" if f.causal else "-inf")
    return att


def _ctor(f: Facets, spec) -> list[tuple[str, object]]:
    args = [("dim", None), ("n_head", None)]
    args += [("n_kv_head", None)] if f.kv_heads else []
    args += [("head_dim", None)] if f.head_dim else []
    if f.rope is not None:
        args += [("rope_dim", None)] if f.rope[1] else []
        args += [(f"rope_{key}", None) for key in ("theta", *rotary.NEEDS[spec.scaling])]
    for on, name in ((f.window, "window"), (f.softcap, "softcap"),
                     (f.score_scale, "score_scale"), (f.qk_norm != "none", "qk_norm_eps")):
        args += [(name, None)] if on else []
    args.append(("bias", True))
    args += [("out_bias", True)] if f.out_bias else []
    return [*args, ("dropout", 0.0)]


def _scalars(f: Facets) -> dict:
    out = {"dim": E("dim"), "n_head": E("n_head")}
    if f.kv_heads:
        out["n_kv_head"] = E("n_kv_head")
    out["head_dim"] = E("head_dim") if f.head_dim else E("dim // n_head")
    for on, name in ((f.window, "window"), (f.softcap, "softcap"),
                     (f.score_scale, "score_scale")):
        if on:
            out[name] = E(name)
    out["dropout"] = E("dropout")
    return out


def _display(f: Facets) -> dict[str, str]:
    shown = {"dim": "C", "n_head": "nh"}
    if f.kv_heads:
        shown["n_kv_head"] = "nkv"
    shown["head_dim"] = "hs"
    if f.rope is not None and f.rope[1]:
        shown["rope_dim"] = "rot"
    return shown


def _doc(f: Facets, spec) -> str:
    """One short line: ``Causal self-attention: grouped-query, rotary (llama3), sliding
    window.`` (the class's shapes are listed below it)."""
    parts = ["grouped-query"] if f.kv_heads else []
    if f.rope is not None:
        scaling = "" if spec.scaling == "none" else f" ({spec.scaling})"
        parts.append(f"{'partial ' if f.rope[1] else ''}rotary{scaling}")
    parts += [text for on, text in ((f.window, "sliding window"),
                                    (f.qk_norm != "none", f"qk-norm ({f.qk_norm})"),
                                    (f.softcap, "soft-capped"), (f.masked, "padding mask"))
              if on]
    kind = "Causal self-attention" if f.causal else "Self-attention"
    return f"{kind}: {', '.join(parts)}." if parts else f"{kind}."


SLIDING = '''
def sliding_window_mask(q: torch.Tensor, k: torch.Tensor, window: int) -> torch.Tensor:
    """(T, S) True where query i may see key j: i - window < j <= i (Hugging Face's sliding
    window: each query sees itself and the window - 1 keys before it). The queries are the
    last T of the S keys, so it also holds after a KV cache's positions."""
    offset = k.shape[-2] - q.shape[-2]
    keep = torch.ones((q.shape[-2], k.shape[-2]), dtype=torch.bool, device=q.device)
    return keep.tril(offset).triu(offset - window + 1)
'''

register_helper("sliding_window_mask", SLIDING)
