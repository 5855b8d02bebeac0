"""A Hugging Face decoder's ``config.json`` -> a whole spec, assembled from its parts.

The family row (:mod:`.decoder_parts`) says what the model is made of; the config gives the
sizes and the settings, copied into ``params`` under their HF names, so the generated
``Config(num_key_value_heads=1)`` works as the HF one does. The spec's layer names are the HF
module names, which keeps the checkpoint rules to the projections inside attention and the
MLP::

    data = decoder_spec(read_config("config.json"), "qwen3", "my_qwen")
    # {"archcc": 1, "name": "my_qwen", "params": {...}, "blocks": {"Block": ...}, ...}

Every config field that changes the computation is read here; a value the parts cannot
build (a rope type without a class, dropout the spec cannot place) is refused at its key.
"""

from __future__ import annotations

from archcc.importers.config import ConfigFile
from archcc.importers.decoder_experts import checkpoint_rules, mixture
from archcc.importers.decoder_parts import PARTS, Parts, default
from archcc.importers.decoder_rope import rope_facet
from archcc.importers.decoder_wiring import block_forward, block_layers, checkpoint, norm_layer

ACTIVATIONS = {"silu": "silu", "gelu": "gelu", "gelu_pytorch_tanh": "gelu_tanh",
               "gelu_new": "gelu_tanh"}


def decoder_spec(cfg: ConfigFile, model_type: str, name: str, mask: bool = False) -> dict:
    """The spec of ``model_type``'s CausalLM with this config's sizes and settings.

    ``mask``: the forward takes ``attention_mask`` (B, T), True (or 1) for real tokens, and
    hides padded keys (batches of unequal lengths, left or right padded), instead of the
    generation facet (a KV cache is stepped on the token ids alone)."""
    parts = PARTS[model_type]
    params = _sizes(cfg, parts)
    _refuse(cfg, parts)
    rope = rope_facet(cfg, parts, params)
    windows = _windows(cfg, parts, params)
    act = _activation(cfg, parts)
    layers = block_layers(cfg, parts, params, rope, act=act)
    blocks = {"Block": {"doc": f"One decoder layer of {parts.model}.", "layers": layers,
                        "forward": block_forward(cfg, parts, mask)}}
    if mask:
        blocks["Block"]["inputs"] = ["x", "mask"]
    repeat = {"repeat": "Block", "times": "num_hidden_layers"}
    if any(windows):
        repeat = _local_blocks(blocks, windows, params)
    if parts.experts is not None:  # experts in the MLP's place (importers/decoder_experts.py)
        repeat = mixture(cfg, parts, params, blocks, repeat, act)
    generate, note = _generate(cfg, parts)
    inputs = {"input_ids": {"shape": ["B", "T"], "dtype": "int64", "high": "vocab_size"}}
    if mask:
        inputs["attention_mask"] = {"shape": ["B", "T"], "dtype": "bool"}
    out = {
        "archcc": 1, "name": name,
        "doc": f"{parts.model} ({model_type}), assembled from its config by archcc import "
               f"hf.{note}",
        "params": params, "dims": {"T": 16}, "inputs": inputs,
        "blocks": blocks, "model": _model(cfg, parts, params, repeat, mask),
        "generate": generate,
        "checkpoint": {"hf": checkpoint(parts, params)},
    }
    if parts.experts is not None:
        hf = out["checkpoint"]["hf"]
        hf["rename"] = checkpoint_rules(parts, hf["rename"], blocks)
    out["init"] = _init(cfg, parts, params)
    if mask:
        del out["generate"]
    return out


def _init(cfg: ConfigFile, parts: Parts, params: dict) -> dict:
    """transformers ``PreTrainedModel._init_weights`` over ``initializer_range``: linears and
    embeddings normal (biases zeros, a padding row zero), the stacked experts too (Mixtral's
    and Qwen2-MoE's override); norms keep their kinds' ones (zeros for Gemma's ``1 + w``)."""
    params["initializer_range"] = cfg.number("initializer_range",
                                             default(parts, "initializer_range"))
    init = {"linear": "normal(initializer_range)", "embedding": "normal(initializer_range)"}
    if parts.experts is not None:
        init["expert_weights"] = "normal(initializer_range)"
    return init


def _value(cfg: ConfigFile, parts: Parts, key: str):
    return cfg.get(key, default(parts, key))


def _sizes(cfg: ConfigFile, parts: Parts) -> dict:
    """Sizes and epsilons under their HF names; head_dim derived when the config has none."""
    params = {key: cfg.size(key, default(parts, key)) for key in (
        "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
        "num_attention_heads")}
    heads = params["num_attention_heads"]
    kv = _value(cfg, parts, "num_key_value_heads") if parts.qkv != "per_head" else None
    params["num_key_value_heads"] = heads if kv is None else cfg.size("num_key_value_heads", kv)
    head_dim = _value(cfg, parts, "head_dim") if parts.head_dim_key else None
    params["head_dim"] = "hidden_size // num_attention_heads" if head_dim is None else \
        cfg.size("head_dim", head_dim)
    eps = "layer_norm_eps" if parts.norm == "layernorm" else "rms_norm_eps"
    params[eps] = cfg.number(eps, default(parts, eps))
    return params


def _activation(cfg: ConfigFile, parts: Parts) -> str:
    act = cfg.require(parts.act_key, default(parts, parts.act_key), tuple(ACTIVATIONS),
                      "the MLP activations archcc builds: silu, gelu, gelu_pytorch_tanh")
    if parts.unit_offset and not parts.softcap and act == "gelu":
        return "gelu_tanh"  # GemmaConfig rewrites "gelu" to the tanh approximation
    return ACTIVATIONS[act]


def _refuse(cfg: ConfigFile, parts: Parts) -> None:
    """Settings that change the model and that these parts do not build."""
    if cfg.has("quantization_config"):
        raise cfg.error("quantization_config", "a quantized checkpoint is not a float model",
                        "import the unquantized model's config")
    for key in ("attention_dropout", "hidden_dropout", "resid_pdrop"):
        if cfg.number(key, 0.0) != 0.0:
            raise cfg.error(key, f"{key} = {cfg.number(key, 0.0)}: the spec has no dropout "
                                 "at that place", "set it to 0.0 (inference and fine-tuning "
                                                  "without it are unaffected)")
    if cfg.get("use_bidirectional_attention"):
        raise cfg.error("use_bidirectional_attention", "bidirectional attention is not a "
                        "causal language model", "import a causal (decoder) config")


def _windows(cfg: ConfigFile, parts: Parts, params: dict) -> list[bool]:
    """Which layers slide (HF's rules per family); the window joins ``params``."""
    layers = params["num_hidden_layers"]
    window = _value(cfg, parts, "sliding_window") if parts.window != "none" else None
    if parts.window == "layer_types" and cfg.has("layer_types"):
        kinds = cfg.get("layer_types")
        if not isinstance(kinds, list) or len(kinds) != layers or \
                not set(kinds) <= {"sliding_attention", "full_attention"}:
            raise cfg.error("layer_types", f"expected {layers} of sliding_attention / "
                                           "full_attention", None)
        slides = [kind == "sliding_attention" for kind in kinds]
    elif parts.window == "layer_types" and parts.softcap:  # Gemma 2: even layers slide
        slides = [i % 2 == 0 for i in range(layers)]
    elif parts.window == "layer_types":  # Qwen2/3: from max_window_layers on, if enabled
        on = cfg.require("use_sliding_window", False, (True, False), "a true/false flag")
        first = cfg.size("max_window_layers", default(parts, "max_window_layers"))
        slides = [bool(on) and i >= first for i in range(layers)]
    else:
        slides = [parts.window == "all" and window is not None] * layers
    if any(slides):
        params["sliding_window"] = cfg.size("sliding_window", window)
        if params["sliding_window"] < 1:
            raise cfg.error("sliding_window", "a sliding window holds at least one key", None)
    return slides


def _local_blocks(blocks: dict, slides: list[bool], params: dict) -> dict:
    """Windowed layers: every one (the block itself), alternating (``cycle``) or by letter
    (``pattern``); the local block changes only the attention's window."""
    block = blocks["Block"]
    attn = next(k for k, v in block["layers"].items() if v.get("op") == "attention")
    if all(slides):
        block["layers"][attn]["sliding_window"] = "sliding_window"
        return {"repeat": "Block", "times": "num_hidden_layers"}
    blocks["Local"] = {"extends": "Block", "doc": "The same layer, attending to a sliding "
                       "window.", "layers": {attn: {"sliding_window": "sliding_window"}}}
    if slides == [i % 2 == 0 for i in range(len(slides))]:
        return {"repeat": "Local", "cycle": ["Block"], "times": "num_hidden_layers"}
    if slides == [i % 2 == 1 for i in range(len(slides))]:
        return {"repeat": "Block", "cycle": ["Local"], "times": "num_hidden_layers"}
    return {"pattern": "".join("L" if s else "G" for s in slides),
            "blocks": {"G": "Block", "L": "Local"}}


def _model(cfg: ConfigFile, parts: Parts, params: dict, repeat: dict, mask: bool) -> dict:
    embed = {"op": "embedding", "num": "vocab_size", "dim": "hidden_size"}
    pad = _value(cfg, parts, "pad_token_id") if parts.qkv != "per_head" else None
    if isinstance(pad, int) and 0 <= pad < params["vocab_size"]:
        embed["padding_idx"] = pad
    if parts.embed_scale:
        embed["scale"] = "hidden_size ** 0.5"
    tied = cfg.require("tie_word_embeddings", default(parts, "tie_word_embeddings"),
                       (True, False), "a true/false flag")
    head = {"op": "linear", "in": "hidden_size", "out": "vocab_size", "bias": False}
    if tied:
        head["tie"] = parts.embed
    logits = f"lm_head({parts.final_norm}(x))"
    cap = cfg.get("final_logit_softcapping", default(parts, "final_logit_softcapping")) \
        if parts.softcap else None
    if cap is not None:
        params["final_logit_softcapping"] = cfg.number("final_logit_softcapping", cap)
        logits = f"softcap({logits}, final_logit_softcapping)"
    norm = norm_layer(parts, "hidden_size")
    return {"layers": {parts.embed: embed, "layers": repeat, parts.final_norm: norm,
                       "lm_head": head},
            "forward": f"x = {parts.embed}(input_ids)\n"
                       f"x = layers(x{', attention_mask' if mask else ''})\nreturn {logits}\n"}


def _generate(cfg: ConfigFile, parts: Parts) -> tuple[dict, str]:
    """The generation facet and a note for the doc when the config lists several stops."""
    eos, note = _value(cfg, parts, "eos_token_id"), ""
    if isinstance(eos, list):  # several stop tokens (instruct models): generate() takes one
        note = (f" eos_token_id lists {len(eos)} tokens: generate() stops at the first by "
                "default, pass eos_token_id= for another.")
        eos = next((e for e in eos if isinstance(e, int)), None)
    out = {"kind": "causal_lm"}
    if isinstance(eos, int) and not isinstance(eos, bool):
        out["eos"] = eos
    return out, note


def supported() -> list[str]:
    return list(PARTS)
