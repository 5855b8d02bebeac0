"""Per family: Hugging Face config fields -> the overlay of its committed spec.

Each function reads one ``model_type``'s config and returns the overlay (``params`` and the
odd field) that makes ``specs/<family>.yaml`` that model. Sizes are copied under their HF
names (the family specs use them); everything the spec fixes (activation, tied head, norm
placement, ...) is checked, and a value it cannot express is refused at its key::

    gpt2(read_config("config.json"))   # {"params": {"n_embd": 64, ...}, "generate": {...}}

Defaults are those of the transformers config classes (``to_json_file`` leaves them out);
``tests/test_import.py`` checks them against the installed transformers.
"""

from __future__ import annotations

import json

from archcc.importers.config import ConfigFile

# The reference's initialisation is the family spec's `init:`, over these params (HF names):
# a family whose scheme reads other config fields adds them to its params the same way.
INIT_RANGE = {"initializer_range": 0.02}
EXTEND = ("write a spec that `extends:` the family spec and changes it "
          "(docs/language.md: Composing specs)")


def copy(cfg: ConfigFile, defaults: dict[str, int | float], prefix: str = "") -> dict:
    """``{param: value}`` for params named like their config key (``prefix`` nests them)."""
    return {param: cfg.size(prefix + param, default) if isinstance(default, int)
            else cfg.number(prefix + param, default) for param, default in defaults.items()}


def fixed(cfg: ConfigFile, family: str, values: dict[str, object]) -> None:
    """Keys whose value the family spec builds in; any other value is refused."""
    for key, value in values.items():
        cfg.require(key, value, (value,), f"specs/{family}.yaml is built with {key} = "
                                          f"{json.dumps(value)}; for another value {EXTEND}")


def one_value(cfg: ConfigFile, keys: tuple[str, ...], default: float, why: str) -> float:
    """Several config numbers the spec holds in one param: they must agree."""
    first = cfg.number(keys[0], default)
    for key in keys[1:]:
        if cfg.number(key, default) != first:
            raise cfg.error(key, f"{cfg.number(key, default)} differs from {keys[0]} ({first})",
                            why)
    return first


def token(cfg: ConfigFile, key: str, default: int | None) -> int | None:
    """A token id, or None for ``null``. Anything else is refused: a list of end tokens
    (newer configs) or a string would otherwise silently become "no token"."""
    value = cfg.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        hint = ("the generated generate() stops at one end token; keep the one it should use"
                if isinstance(value, list) else None)
        raise cfg.error(key, f"expected a token id (an integer) or null, got "
                             f"{json.dumps(value)[:60]}", hint)
    return value


def padding(layers: tuple[str, ...], pad: int | None, spec_pad: int) -> dict:
    """Embedding ``padding_idx`` fields where the config's pad token differs from the spec's."""
    if pad is None or pad == spec_pad:
        return {}
    return {"model": {"layers": {name: {"padding_idx": pad} for name in layers}}}


# --------------------------------------------------------------------------------- decoders


def gpt2(cfg: ConfigFile) -> dict:
    params = copy(cfg, {"vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_head": 12,
                        "n_layer": 12, "layer_norm_epsilon": 1e-5, **INIT_RANGE})
    params["dropout"] = one_value(cfg, ("resid_pdrop", "embd_pdrop", "attn_pdrop"), 0.1,
                                  "specs/gpt2.yaml has one dropout for embeddings, attention "
                                  "and MLP")
    cfg.require("activation_function", "gelu_new", ("gelu_new", "gelu_pytorch_tanh"),
                "specs/gpt2.yaml's MLP uses the tanh approximation of GELU (act: gelu_tanh)")
    if cfg.get("n_inner") is not None and cfg.size("n_inner", 0) != 4 * params["n_embd"]:
        raise cfg.error("n_inner", f"{cfg.get('n_inner')} is not 4 * n_embd "
                                   f"({4 * params['n_embd']})",
                        f"specs/gpt2.yaml's MLP is 4 * n_embd wide; for another width {EXTEND}")
    fixed(cfg, "gpt2", {"scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
                        "reorder_and_upcast_attn": False, "add_cross_attention": False,
                        "tie_word_embeddings": True})
    overlay: dict = {"params": params}
    eos, pad = token(cfg, "eos_token_id", 50256), token(cfg, "pad_token_id", None)
    overlay["generate"] = {"eos": eos, **({"pad": pad} if pad is not None else {})}
    return overlay


# --------------------------------------------------------------------------------- encoders

BERT_SIZES = {"vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
              "num_attention_heads": 12, "intermediate_size": 3072,
              "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
              "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, **INIT_RANGE}


def _bert_like(cfg: ConfigFile, family: str) -> None:
    fixed(cfg, family, {"hidden_act": "gelu", "position_embedding_type": "absolute",
                        "is_decoder": False, "add_cross_attention": False})


def bert(cfg: ConfigFile) -> dict:
    _bert_like(cfg, "bert")
    return {"params": copy(cfg, BERT_SIZES),
            **padding(("word_embeddings",), token(cfg, "pad_token_id", 0), 0)}


def roberta(cfg: ConfigFile) -> dict:
    _bert_like(cfg, "roberta")
    params = copy(cfg, {**BERT_SIZES, "vocab_size": 50265})
    params["pad_token_id"] = cfg.size("pad_token_id", 1)  # positions count from pad + 1
    return {"params": params, **padding(("word_embeddings", "position_embeddings"),
                                        params["pad_token_id"], 1)}


def distilbert(cfg: ConfigFile) -> dict:
    # sinusoidal_pos_embds only fills the same learned table at init: it loads unchanged
    fixed(cfg, "distilbert", {"activation": "gelu"})
    params = copy(cfg, {"vocab_size": 30522, "dim": 768, "n_layers": 6, "n_heads": 12,
                        "hidden_dim": 3072, "max_position_embeddings": 512, "dropout": 0.1,
                        "attention_dropout": 0.1, **INIT_RANGE})
    return {"params": params, **padding(("word_embeddings",), token(cfg, "pad_token_id", 0), 0)}


def vit(cfg: ConfigFile) -> dict:
    fixed(cfg, "vit", {"hidden_act": "gelu", "qkv_bias": True})
    params = copy(cfg, {"image_size": 224, "patch_size": 16, "num_channels": 3,
                        "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                        "intermediate_size": 3072, "layer_norm_eps": 1e-12,
                        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
                        **INIT_RANGE})
    params["num_labels"] = labels(cfg, "vit")
    return {"params": params}


def labels(cfg: ConfigFile, family: str) -> int:
    """The classifier's width: id2label's size (what ``num_labels`` reads), else 2."""
    table = cfg.get("id2label")
    if table is not None and not isinstance(table, dict):
        raise cfg.error("id2label", "expected an object of label names by id",
                        'e.g. {"0": "cat", "1": "dog"}')
    key = "id2label" if isinstance(table, dict) else "num_labels"
    count = len(table) if key == "id2label" else cfg.size("num_labels", 2)
    if count < 1:
        raise cfg.error(key, "no labels: the model would have no classifier",
                        f"specs/{family}.yaml ends in a classifier; give the config its labels")
    return count


def clip(cfg: ConfigFile) -> dict:
    """CLIPModel: nested text_config / vision_config flattened to text_* / vision_* params."""
    text = copy(cfg, {"vocab_size": 49408, "max_position_embeddings": 77}, "text_config.")
    vision = copy(cfg, {"image_size": 224, "patch_size": 32, "num_channels": 3},
                  "vision_config.")
    towers = {"text": (512, 2048, 12, 8), "vision": (768, 3072, 12, 12)}
    for tower, sizes in towers.items():
        keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
        for key, default in zip(keys, sizes, strict=True):
            text[f"{tower}_{key}"] = cfg.size(f"{tower}_config.{key}", default)
        fixed(cfg, "clip", {f"{tower}_config.hidden_act": "quick_gelu"})
    shared = ("text_config.layer_norm_eps", "vision_config.layer_norm_eps")
    text["layer_norm_eps"] = one_value(cfg, shared, 1e-5, "specs/clip.yaml's towers share "
                                                          "one layer_norm_eps")
    shared = ("text_config.attention_dropout", "vision_config.attention_dropout")
    text["attention_dropout"] = one_value(cfg, shared, 0.0, "specs/clip.yaml's towers share "
                                                            "one attention_dropout")
    text["projection_dim"] = cfg.size("projection_dim", 512)
    text["logit_scale_init_value"] = cfg.number("logit_scale_init_value", 2.6592)
    text["eos_token_id"] = cfg.size("text_config.eos_token_id", 2)  # pooling honours it
    text["initializer_factor"] = cfg.number("initializer_factor", 1.0)
    text["initializer_range"] = cfg.number("vision_config.initializer_range", 0.02)
    return {"params": {**text, **vision}}


# ------------------------------------------------------------------------ encoder-decoders

# T5 v1.1 (gated-GELU FFN, untied head, no output rescale) over specs/t5.yaml: the same
# overlay as tests/specs/compose/t5_v1_1.yaml, whose parity test checks it against HF
_GATED = {"layers": {"ff": {"layer": {"act": "gelu_tanh", "gated": True}}}}
T5_V1_1 = {
    "blocks": {"EncoderBlock": _GATED, "DecoderBlock": _GATED},
    "model": {"layers": {"lm_head": {"tie": None}}, "forward": (
        "x = dropout(shared(input_ids))\n"
        "memory = encoder(x, encoder_bias(x), mask=attention_mask)\n"
        "memory = dropout(encoder_norm(memory))\n"
        "y = dropout(shared(decoder_input_ids))\n"
        "y = decoder(y, memory, decoder_bias(y), memory_mask=attention_mask)\n"
        "return lm_head(dropout(decoder_norm(y)))\n")},
    "checkpoint": {"hf": {"rename": {
        "{part}.block.{i}.layer.{j}.DenseReluDense.wi_0": "{part}.{i}.ff.gate",
        "{part}.block.{i}.layer.{j}.DenseReluDense.wi_1": "{part}.{i}.ff.up"}}},
}


def _t5_variant(cfg: ConfigFile) -> dict:
    """``relu`` + rescaled tied head (T5) or ``gated-gelu`` + neither (T5 v1.1)."""
    proj = cfg.require("feed_forward_proj", "relu", ("relu", "gated-gelu"),
                       "specs/t5.yaml builds T5 (relu) and T5 v1.1 (gated-gelu) feed-forwards")
    # transformers 5 writes scale_decoder_outputs; older configs say tie_word_embeddings
    key = "scale_decoder_outputs" if cfg.has("scale_decoder_outputs") else "tie_word_embeddings"
    scaled = cfg.require(key, True, (True, False), "a true/false flag")
    if scaled != (proj == "relu"):
        raise cfg.error(key, f"{key} = {json.dumps(scaled)} with feed_forward_proj "
                             f"{json.dumps(proj)} matches neither T5 nor T5 v1.1",
                        "T5 rescales a tied head (relu); v1.1 has an untied, unscaled head "
                        "(gated-gelu)")
    return {} if proj == "relu" else T5_V1_1


def t5(cfg: ConfigFile) -> dict:
    params = copy(cfg, {"vocab_size": 32128, "d_model": 512, "d_ff": 2048, "num_layers": 6,
                        "num_heads": 8, "relative_attention_num_buckets": 32,
                        "relative_attention_max_distance": 128, "dropout_rate": 0.1,
                        "layer_norm_epsilon": 1e-6, "initializer_factor": 1.0})
    params["num_decoder_layers"] = (cfg.size("num_decoder_layers", 0)
                                    if cfg.get("num_decoder_layers") is not None
                                    else params["num_layers"])
    d_kv = cfg.size("d_kv", 64)
    if d_kv * params["num_heads"] != params["d_model"]:
        raise cfg.error("d_kv", f"d_kv ({d_kv}) * num_heads ({params['num_heads']}) is not "
                                f"d_model ({params['d_model']})",
                        "specs/t5.yaml splits d_model into num_heads heads")
    fixed(cfg, "t5", {"is_encoder_decoder": True})
    pad = token(cfg, "pad_token_id", 0)
    start = token(cfg, "decoder_start_token_id", pad)
    generate = {"eos": token(cfg, "eos_token_id", 1), "pad": pad, "start": start or 0}
    return {"params": params, "generate": generate, **_t5_variant(cfg)}


def bart(cfg: ConfigFile) -> dict:
    fixed(cfg, "bart", {"activation_function": "gelu"})
    params = copy(cfg, {"vocab_size": 50265, "max_position_embeddings": 1024, "d_model": 1024,
                        "encoder_layers": 12, "decoder_layers": 12,
                        "encoder_attention_heads": 16, "decoder_attention_heads": 16,
                        "encoder_ffn_dim": 4096, "decoder_ffn_dim": 4096, "dropout": 0.1,
                        "attention_dropout": 0.0, "activation_dropout": 0.0, "init_std": 0.02})
    if params["max_position_embeddings"] < 1:  # the table's 2 offset rows hold no position
        raise cfg.error("max_position_embeddings", "no positions: BART's table would hold "
                        "only its 2 offset rows", "give the longest sequence it reads")
    scaled = cfg.require("scale_embedding", False, (True, False), "a true/false flag")
    params["embed_scale"] = params["d_model"] ** 0.5 if scaled else 1.0
    return {"params": params, **padding(("shared",), token(cfg, "pad_token_id", 1), 1)}
