"""A decoder family's layers, their wiring and its checkpoint rules, from its parts.

    block_layers(cfg, PARTS["gemma2"], params, rope, "gelu_tanh")
    # {"input_layernorm": {op: rmsnorm, ..., unit_offset: true}, "self_attn": {...}, ...}
    block_forward(cfg, PARTS["gemma2"])
    # "x = x + post_attention_layernorm(self_attn(input_layernorm(x)))\\n..."
"""

from __future__ import annotations

from archcc.importers.config import ConfigFile
from archcc.importers.decoder_parts import Parts, default

# the layers of each wiring style, in order ("attn" is the family's attention name)
ORDER = {"pre": ("input_layernorm", "attn", "post_attention_layernorm", "mlp"),
         "sandwich": ("input_layernorm", "attn", "post_attention_layernorm",
                      "pre_feedforward_layernorm", "mlp", "post_feedforward_layernorm"),
         "post": ("attn", "post_attention_layernorm", "mlp", "post_feedforward_layernorm"),
         "neox": ("input_layernorm", "attn", "post_attention_layernorm", "mlp")}
FORWARD = {
    "pre": "x = x + {a}(input_layernorm(x){m})\nx = x + mlp(post_attention_layernorm(x))\n"
           "return x\n",
    "sandwich": "x = x + post_attention_layernorm({a}(input_layernorm(x){m}))\n"
                "x = x + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(x)))\n"
                "return x\n",
    "post": "x = x + post_attention_layernorm({a}(x{m}))\n"
            "x = x + post_feedforward_layernorm(mlp(x))\nreturn x\n",
    # Hugging Face's order of additions (it matters in bfloat16): mlp + attention + x
    "parallel": "return mlp(post_attention_layernorm(x)) + {a}(input_layernorm(x){m}) + x\n",
    "sequential": "x = {a}(input_layernorm(x){m}) + x\n"
                  "return mlp(post_attention_layernorm(x)) + x\n",
}


def norm_layer(parts: Parts, dim: str) -> dict:
    """One norm of the family over ``dim`` (a param expression)."""
    if parts.norm == "layernorm":
        return {"op": "layernorm", "dim": dim, "eps": "layer_norm_eps"}
    out = {"op": "rmsnorm", "dim": dim, "eps": "rms_norm_eps", "upcast": parts.upcast}
    return {**out, "unit_offset": True} if parts.unit_offset else out


def block_layers(cfg: ConfigFile, parts: Parts, params: dict, rope: dict, act: str) -> dict:
    """The layer entries of one decoder layer, named as the family's HF modules."""
    made = {"attn": _attention(cfg, parts, params, rope),
            "mlp": MLP_LAYERS[parts.mlp](cfg, parts, params, act)}
    return {parts.attn if name == "attn" else name: made.get(name) or
            norm_layer(parts, "hidden_size") for name in ORDER[parts.norms]}


def _dense_mlp(cfg: ConfigFile, parts: Parts, params: dict, act: str) -> dict:
    """gate/up/down (LLaMA; Phi-3 stores gate and up as one), or up/down with biases."""
    plain = parts.mlp == "plain"
    bias = cfg.require("mlp_bias", False, (True, False), "a true/false flag") \
        if parts.bias == "attention_bias" else False
    return {"op": "ffn", "dim": "hidden_size", "hidden": "intermediate_size", "act": act,
            "gated": not plain, "bias": True if plain else bias}


# parts.mlp -> the `mlp` layer entry; a mixture of experts adds its kind here and in
# MLP_RULES below
MLP_LAYERS = {"gated": _dense_mlp, "gated_fused": _dense_mlp, "plain": _dense_mlp}


def _attention(cfg: ConfigFile, parts: Parts, params: dict, rope: dict) -> dict:
    attn = {"op": "attention", "dim": "hidden_size", "heads": "num_attention_heads"}
    if parts.qkv != "per_head":
        attn["kv_heads"] = "num_key_value_heads"
    attn.update(head_dim="head_dim", causal=True,
                qkv="fused" if parts.qkv == "fused" else "separate")
    if parts.bias == "attention_bias":
        attn["bias"] = cfg.require("attention_bias", default(parts, "attention_bias"),
                                   (True, False), "a true/false flag")
    else:
        attn["bias"] = parts.bias == "qkv"
        if parts.bias == "qkv":
            attn["out_bias"] = False
    attn["rope"] = rope
    if parts.qk_norm != "none":
        attn.update(qk_norm=parts.qk_norm, qk_norm_eps="rms_norm_eps")
    if parts.softcap:
        cap = cfg.get("attn_logit_softcapping", default(parts, "attn_logit_softcapping"))
        if cap is not None:
            params["attn_logit_softcapping"] = cfg.number("attn_logit_softcapping", cap)
            attn["softcap"] = "attn_logit_softcapping"
        params["query_pre_attn_scalar"] = cfg.number(
            "query_pre_attn_scalar", default(parts, "query_pre_attn_scalar"))
        attn["score_scale"] = "query_pre_attn_scalar ** -0.5"
    return attn


def block_forward(cfg: ConfigFile, parts: Parts, mask: bool = False) -> str:
    """The layer's wiring; with ``mask`` its attention also takes the key-padding mask."""
    style = parts.norms
    if style == "neox":
        parallel = cfg.require("use_parallel_residual", True, (True, False),
                               "a true/false flag")
        style = "parallel" if parallel else "sequential"
    return FORWARD[style].format(a=parts.attn, m=", mask=mask" if mask else "")


def checkpoint(parts: Parts, params: dict) -> dict:
    """The ``hf`` layout: the projections inside attention and the MLP, then the prefix."""
    p, a = parts.prefix, f"layers.{{i}}.{parts.attn}"
    rename: dict[str, str] = {}
    split: dict = {}
    if parts.qkv == "separate":
        rename.update({f"{p}.{a}.{n}_proj": f"{a}.{n}" for n in "qkv"})
    elif parts.qkv == "fused":
        rename[f"{p}.{a}.qkv_proj"] = f"{a}.qkv"
    else:  # per head [q | k | v] rows: cut into separate q, k, v
        for tensor in ("weight", "bias"):
            split[f"{p}.{a}.query_key_value.{tensor}"] = {
                "into": [f"{a}.{n}.{tensor}" for n in "qkv"], "groups": "num_attention_heads"}
    rename[f"{p}.{a}.{'dense' if parts.qkv == 'per_head' else 'o_proj'}"] = f"{a}.proj"
    MLP_RULES[parts.mlp](p, "layers.{i}.mlp", rename, split)
    # each prefix named, not `model: ""`: export_state_dict then leaves lm_head at the top
    rename.update({f"{p}.{name}": name for name in ("layers", parts.embed, parts.final_norm)})
    out: dict = {"rename": rename}
    if split:
        out["split"] = split
    return out


def _gated_rules(p: str, m: str, rename: dict, split: dict) -> None:
    rename.update({f"{p}.{m}.{n}_proj": f"{m}.{n}" for n in ("gate", "up", "down")})


def _gated_fused_rules(p: str, m: str, rename: dict, split: dict) -> None:
    split[f"{p}.{m}.gate_up_proj.weight"] = [f"{m}.gate.weight", f"{m}.up.weight"]  # gate, up
    rename[f"{p}.{m}.down_proj"] = f"{m}.down"


def _plain_rules(p: str, m: str, rename: dict, split: dict) -> None:
    rename.update({f"{p}.{m}.dense_h_to_4h": f"{m}.up", f"{p}.{m}.dense_4h_to_h": f"{m}.down"})


# parts.mlp -> its checkpoint rules (HF prefix, our MLP's path, rename and split to fill)
MLP_RULES = {"gated": _gated_rules, "gated_fused": _gated_fused_rules, "plain": _plain_rules}
