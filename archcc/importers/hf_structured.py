"""Families built from stages and shared layers: Hugging Face ConvNeXt, ResNet and ALBERT
configs -> overlays of specs/convnext.yaml, resnet.yaml, albert.yaml.

The vision families are lists per stage (``hidden_sizes``, ``depths``), copied under their HF
names into the spec's list params, so any number of stages imports; ALBERT's sharing
(``num_hidden_groups`` groups of ``inner_group_num`` layers) is two params. What the specs
build in (an activation, a layer scale that exists, tied output embeddings) is checked, and
anything else is refused at its key::

    convnext(read_config("config.json"))
    # {"params": {"hidden_sizes": [8, 16, 32], "depths": [1, 2, 1], ...}}

Defaults are those of ``ConvNextConfig`` / ``ResNetConfig`` / ``AlbertConfig``
(``to_json_file`` leaves them out); ``tests/test_import_cnn.py`` checks them against the
installed transformers.
"""

from __future__ import annotations

import json

from archcc.importers.config import ConfigFile
from archcc.importers.hf_families import (
    EXTEND,
    INIT_RANGE,
    copy,
    fixed,
    labels,
    one_value,
    token,
)


def sizes(cfg: ConfigFile, key: str, default: list[int]) -> list[int]:
    """A list of positive integers (one per stage): ``hidden_sizes``, ``depths``."""
    value = cfg.get(key, default)
    if not isinstance(value, list) or not value or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
        raise cfg.error(key, f"expected a list of positive integers (one per stage), got "
                             f"{json.dumps(value)}")
    return list(value)


def stages(cfg: ConfigFile, family: str, default_sizes: list[int],
           default_depths: list[int]) -> dict:
    """``hidden_sizes`` and ``depths``, one entry per stage each."""
    hidden, depths = sizes(cfg, "hidden_sizes", default_sizes), sizes(cfg, "depths",
                                                                       default_depths)
    if len(hidden) != len(depths):
        raise cfg.error("depths", f"{len(depths)} depths for {len(hidden)} hidden_sizes",
                        f"specs/{family}.yaml builds one stage per entry of both lists")
    return {"hidden_sizes": hidden, "depths": depths}


def convnext(cfg: ConfigFile) -> dict:
    """ConvNextForImageClassification."""
    params = copy(cfg, {"num_channels": 3, "patch_size": 4, "layer_norm_eps": 1e-12,
                        "layer_scale_init_value": 1e-6, "drop_path_rate": 0.0,
                        **INIT_RANGE})
    params.update(stages(cfg, "convnext", [96, 192, 384, 768], [3, 3, 9, 3]))
    count = len(params["depths"])
    if cfg.size("num_stages", 4) != count:
        raise cfg.error("num_stages", f"num_stages ({cfg.get('num_stages', 4)}) is not the "
                                      f"number of depths and hidden_sizes ({count})",
                        "transformers would build only the first num_stages stages; make "
                        "the lists that long")
    if params["layer_scale_init_value"] <= 0:
        raise cfg.error("layer_scale_init_value", f"{params['layer_scale_init_value']} turns "
                        "the layer scale off", f"specs/convnext.yaml scales every block "
                        f"(layer_scale_parameter); for blocks without it {EXTEND}")
    fixed(cfg, "convnext", {"hidden_act": "gelu"})
    params["num_stages"] = count
    params["image_size"] = cfg.size("image_size", 224)
    params["num_labels"] = labels(cfg, "convnext")
    return {"params": params}


def resnet(cfg: ConfigFile) -> dict:
    """ResNetForImageClassification, basic or bottleneck layers."""
    params = copy(cfg, {"num_channels": 3, "embedding_size": 64})
    params.update(stages(cfg, "resnet", [256, 512, 1024, 2048], [3, 4, 6, 3]))
    layer_type = cfg.require("layer_type", "bottleneck", ("bottleneck", "basic"),
                             "specs/resnet.yaml builds basic and bottleneck layers")
    params["layer_type"] = json.dumps(layer_type)  # a string param is a quoted literal
    for key in ("downsample_in_first_stage", "downsample_in_bottleneck"):
        params[key] = cfg.require(key, False, (True, False), "a true/false flag")
    fixed(cfg, "resnet", {"hidden_act": "relu"})
    params["num_labels"] = labels(cfg, "resnet")
    return {"params": params}


def albert(cfg: ConfigFile) -> dict:
    """AlbertForMaskedLM: one or more shared layer groups, a tied MLM head."""
    params = copy(cfg, {"vocab_size": 30000, "embedding_size": 128, "hidden_size": 4096,
                        "num_hidden_layers": 12, "num_hidden_groups": 1,
                        "num_attention_heads": 64, "intermediate_size": 16384,
                        "inner_group_num": 1, "max_position_embeddings": 512,
                        "type_vocab_size": 2, "layer_norm_eps": 1e-12,
                        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
                        **INIT_RANGE})
    layers, groups = params["num_hidden_layers"], params["num_hidden_groups"]
    if not 1 <= groups <= layers:
        raise cfg.error("num_hidden_groups", f"{groups} groups for {layers} layers",
                        "each group serves one run of consecutive layers: 1 <= groups <= "
                        "num_hidden_layers")
    one_value(cfg, ("hidden_dropout_prob", "attention_probs_dropout_prob"), 0.0,
              "specs/albert.yaml's attention drops its weights and its output with one p "
              "(transformers uses hidden_dropout_prob for the output)")
    cfg.require("hidden_act", "gelu_new", ("gelu_new", "gelu_pytorch_tanh"),
                "specs/albert.yaml uses the tanh approximation of GELU (gelu_new)")
    fixed(cfg, "albert", {"tie_word_embeddings": True})
    pad = token(cfg, "pad_token_id", 0)
    overlay: dict = {"params": params}
    if pad != 0:  # the spec's word_embeddings has padding_idx 0 (None: no padding row)
        overlay["model"] = {"layers": {"word_embeddings": {"padding_idx": pad}}}
    return overlay
