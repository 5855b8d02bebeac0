"""What the decoder-LLM facets of ``op: attention`` are, and how a layer's are resolved and
checked: grouped-query heads, head_dim, rotary, sliding window, qk-norm, soft-capping, a
score scale, q/k/v-only biases (the lowering is in :mod:`.decoder`).

    facets(layer, kwargs) -> Facets(causal=True, kv_heads=True, rope=("llama3", ...), ...)

Equal facets make one generated class; each problem found is located at its field.
"""

from __future__ import annotations

from dataclasses import dataclass

from archcc.ops import rotary
from archcc.parser.expr import Num

NEW_FIELDS = ("kv_heads", "head_dim", "out_bias", "rope", "sliding_window", "softcap",
              "score_scale")


def uses_facets(spec) -> bool:
    """Does this attention layer need the decoder lowering (any facet beyond plain MHA)?"""
    return any(getattr(spec, f) is not None for f in NEW_FIELDS) or spec.qk_norm != "none"


@dataclass(frozen=True)
class Facets:
    """What shapes one generated class; equal facets share the class."""

    causal: bool
    fused: bool
    masked: bool
    scaled: bool
    biased: bool
    kv_heads: bool
    head_dim: bool
    out_bias: bool
    rope: tuple | None  # (scaling, partial, interleaved, truncate)
    window: bool
    qk_norm: str
    softcap: bool
    score_scale: bool


def facets(layer, kwargs: tuple) -> Facets:
    spec, sizes = layer.spec, layer.sizes
    rope = spec.rope
    return Facets(
        causal=spec.causal, fused=spec.qkv == "fused", masked="mask" in kwargs,
        scaled=spec.scale != "none", biased="bias" in kwargs,
        kv_heads="kv_heads" in sizes, head_dim="head_dim" in sizes,
        out_bias=spec.out_bias is not None and spec.out_bias != spec.bias,
        rope=None if rope is None else (rope.scaling, rope.dim is not None,
                                        rope.layout == "interleaved", rope.truncate),
        window="sliding_window" in sizes, qk_norm=spec.qk_norm,
        softcap="softcap" in sizes, score_scale="score_scale" in sizes)


# ---------------------------------------------------------------------- declaration


def declare(scope, layer) -> None:
    """Resolve the facets' sizes and settings onto ``layer.sizes`` (rope's onto facets)."""
    spec, path = layer.spec, layer.path
    for key in ("kv_heads", "head_dim", "sliding_window"):
        if getattr(spec, key) is not None:
            layer.sizes[key] = scope.size(getattr(spec, key), (*path, key))
    for key in ("softcap", "score_scale"):
        if getattr(spec, key) is not None:
            layer.sizes[key] = scope.scalar(getattr(spec, key), (*path, key))
    if spec.qk_norm != "none":
        layer.sizes["qk_norm_eps"] = scope.scalar(spec.qk_norm_eps, (*path, "qk_norm_eps"))
    if spec.rope is not None:
        fields = rotary.declare_fields(scope, spec.rope, (*path, "rope"))
        layer.facets["rope"] = fields
        layer.broken = layer.broken or any(v is None for v in fields.values())


def problems(scope, layer) -> list[tuple[str, str | None, str | None]]:
    """Facet values that cannot build, as (message, hint, the field to point at)."""
    spec, s = layer.spec, layer.sizes
    value = scope.value
    out = []
    heads = value(s["heads"])
    if "kv_heads" in s and heads % value(s["kv_heads"]):
        kv = value(s["kv_heads"])
        divisors = [d for d in range(1, heads + 1) if heads % d == 0]
        out.append((f"kv_heads ({kv}) must divide heads ({heads}): each key/value head "
                    "serves an equal group of query heads",
                    f"divisors of {heads}: {', '.join(map(str, divisors))} (1: multi-query)",
                    "kv_heads"))
    if spec.cross and uses_facets(spec):
        out.append(("kv_heads, head_dim, rope, sliding_window, qk_norm, softcap and "
                    "score_scale are facets of self-attention", "drop cross: true", "cross"))
    if "sliding_window" in s and not spec.causal:
        out.append(("a sliding window is causal: query i sees keys i - window < j <= i",
                    "add causal: true", "sliding_window"))
    if spec.softcap is not None and value(s["softcap"]) <= 0:
        out.append((f"softcap ({value(s['softcap'])}) must be positive", None, "softcap"))
    if spec.rope is not None:
        head_dim = value(s["head_dim"]) if "head_dim" in s else value(s["dim"]) // heads
        out += [(*problem, "rope") for problem in rotary.check_fields(
            scope, layer.loc, spec.rope, layer.facets["rope"], head_dim)]
    return out


def constructor_args(layer) -> dict:
    """The class's arguments as expressions over the owner's scope (its ``Config``)."""
    spec, s = layer.spec, layer.sizes
    args = {"dim": s["dim"], "n_head": s["heads"]}
    if "kv_heads" in s:
        args["n_kv_head"] = s["kv_heads"]
    if "head_dim" in s:
        args["head_dim"] = s["head_dim"]
    for key, value in (layer.facets.get("rope") or {}).items():
        args[f"rope_{key}"] = value
    for key, name in (("sliding_window", "window"), ("softcap", "softcap"),
                      ("score_scale", "score_scale"), ("qk_norm_eps", "qk_norm_eps")):
        if key in s:
            args[name] = s[key]
    args["bias"] = Num(spec.bias)
    if spec.out_bias is not None and spec.out_bias != spec.bias:
        args["out_bias"] = Num(spec.out_bias)
    args["dropout"] = s["dropout"]
    return args
