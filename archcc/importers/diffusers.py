"""``archcc import diffusers config.json -o specs/my_unet.yaml``: a spec from a diffusers
``UNet2DModel`` config (``archcc import hf`` routes such a config here too).

The committed ``specs/ddpm_unet.yaml`` takes diffusers' names as its params, so the sizes
copy over (``block_out_channels``, ``layers_per_block``, ``down_block_types``, ...); what
the spec builds in (SiLU, positional time embedding, conv up/down sampling) is checked, and
the two settings that choose a generated class (``flip_sin_to_cos``, ``downsample_padding``)
are written into the spec's layers::

    import_diffusers("unet/config.json", Path("specs/my_unet.yaml"))
    # archcc build specs/my_unet.yaml; then in Python:
    model.load_state_dict(convert_state_dict(UNet2DModel(**config).state_dict(), "diffusers"))
"""

from __future__ import annotations

import json
from pathlib import Path

from archcc.importers.config import ConfigFile, read_config
from archcc.importers.hf_families import EXTEND, copy, fixed
from archcc.importers.write import spec_name, write_spec

CLASS = "UNet2DModel"
DOWN = ("DownBlock2D", "AttnDownBlock2D")
UP = ("UpBlock2D", "AttnUpBlock2D")
# UNet2DModel.__init__ defaults (a config written by save_pretrained may leave them out)
DEFAULTS = {"in_channels": 3, "out_channels": 3, "layers_per_block": 2, "norm_num_groups": 32,
            "freq_shift": 0, "norm_eps": 1e-5, "mid_block_scale_factor": 1.0, "dropout": 0.0}
BUILT_IN = {"center_input_sample": False, "time_embedding_type": "positional",
            "time_embedding_dim": None, "mid_block_type": "UNetMidBlock2D",
            "downsample_type": "conv", "upsample_type": "conv", "act_fn": "silu",
            "attn_norm_num_groups": None, "resnet_time_scale_shift": "default",
            "add_attention": True, "class_embed_type": None, "num_class_embeds": None}


def is_unet(cfg: ConfigFile) -> bool:
    """A diffusers model config names its class (``"_class_name": "UNet2DModel"``)."""
    return cfg.get("_class_name") == CLASS


def _types(cfg: ConfigFile, key: str, default: tuple, allowed: tuple) -> list[str]:
    value = cfg.get(key, default)
    if not isinstance(value, list | tuple) or not value:
        raise cfg.error(key, f"expected a list of block types, got {json.dumps(value)}")
    for kind in value:
        if kind not in allowed:
            raise cfg.error(key, f"{kind!r} is not supported (supported: "
                                 f"{', '.join(allowed)})", f"for other blocks {EXTEND}")
    return list(value)


def _channels(cfg: ConfigFile) -> list[int]:
    value = cfg.get("block_out_channels", [224, 448, 672, 896])
    if not isinstance(value, list | tuple) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise cfg.error("block_out_channels", f"expected a list of channel counts, got "
                                              f"{json.dumps(value)}")
    return list(value)


def _sample_size(cfg: ConfigFile) -> int:
    value = cfg.get("sample_size")
    if isinstance(value, list | tuple) and len(set(value)) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise cfg.error("sample_size", f"expected the side of a square sample, got "
                                       f"{json.dumps(value)}",
                        "the spec's input is (B, in_channels, sample_size, sample_size)")
    return value


def unet(cfg: ConfigFile) -> dict:
    """The overlay of specs/ddpm_unet.yaml that is this UNet2DModel."""
    fixed(cfg, "ddpm_unet", BUILT_IN)
    channels = _channels(cfg)
    down = _types(cfg, "down_block_types", ("DownBlock2D", *("AttnDownBlock2D",) * 3), DOWN)
    up = _types(cfg, "up_block_types", (*("AttnUpBlock2D",) * 3, "UpBlock2D"), UP)
    for key, kinds in (("down_block_types", down), ("up_block_types", up)):
        if len(kinds) != len(channels):
            raise cfg.error(key, f"{len(kinds)} block types for {len(channels)} "
                                 "block_out_channels", "one block per resolution")
    head = cfg.get("attention_head_dim", 8)
    if head is not None and (isinstance(head, bool) or not isinstance(head, int) or head < 1):
        raise cfg.error("attention_head_dim", f"expected a channel count or null, got "
                                              f"{json.dumps(head)}")
    padding = cfg.require("downsample_padding", 1, (0, 1), "0 pads right and bottom first")
    flip = cfg.require("flip_sin_to_cos", True, (True, False), "a boolean")
    params = {**copy(cfg, DEFAULTS), "sample_size": _sample_size(cfg),
              "block_out_channels": channels, "down_block_types": down, "up_block_types": up,
              "attention_head_dim": head or 0,
              "num_train_timesteps": cfg.size("num_train_timesteps", 1000)
              if cfg.get("num_train_timesteps") is not None else 1000}
    return {"params": params,
            "blocks": {"DownBlock2D": {"layers": {"downsample": {"padding": padding}}}},
            "model": {"layers": {"time_proj": {"flip_sin_to_cos": flip}}}}


def import_diffusers(config: str | Path, out: Path, name: str | None = None,
                     cfg: ConfigFile | None = None) -> Path:
    """Write the spec for a diffusers ``UNet2DModel`` config.json to ``out``."""
    cfg = cfg or read_config(config)
    origin = cfg.loc("")
    name = spec_name(Path(out), name, origin)
    if not is_unet(cfg):
        raise cfg.error("_class_name", f"_class_name {cfg.get('_class_name')!r} is not "
                                       f"supported (supported: {CLASS})",
                        "a diffusers model's config.json, as written by save_pretrained()")
    overlay = unet(cfg)
    overlay["name"] = name
    note = f"Sizes from {Path(cfg.file).name} ({CLASS}; archcc import diffusers)."
    return write_spec("ddpm_unet", overlay, Path(out), origin, note)
