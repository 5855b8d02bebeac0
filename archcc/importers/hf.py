"""``archcc import hf config.json -o specs/my_model.yaml``: a spec from a Hugging Face config.

``model_type`` picks the family; its committed spec (whose params use the HF names) plus
the config's sizes is written out as one standalone spec, so the generated module loads that
family's checkpoints::

    import_hf("config.json", Path("specs/tiny_gpt2.yaml"))
    # archcc build specs/tiny_gpt2.yaml; then in Python:
    model.load_state_dict(convert_state_dict(GPT2LMHeadModel(config).state_dict(), "hf"))

A config the family spec cannot express (another activation, an untied head, ...) is a
located error at its key in config.json, never a silently different model.

Decoder LLMs (llama, mistral, qwen2, qwen3, gemma, gemma2, phi3, gpt_neox, olmo2, and the
mixtures of experts mixtral, qwen2_moe) have no committed family spec: their spec is
assembled from the family's parts (:mod:`archcc.importers.decoder`), so a new decoder of the
same parts is a table row.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from archcc.diagnostics import SourceLoc
from archcc.importers import hf_families as fam
from archcc.importers import hf_structured as stages
from archcc.importers.config import ConfigFile, read_config
from archcc.importers.decoder import decoder_spec
from archcc.importers.decoder_parts import PARTS
from archcc.importers.diffusers import import_diffusers
from archcc.importers.diffusers import is_unet as unet_config
from archcc.importers.write import spec_name, write_data, write_spec

# model_type -> mapper onto specs/<model_type>.yaml, whose hf layout loads the state_dict of
FAMILIES: dict[str, Callable[[ConfigFile], dict]] = {
    "gpt2": fam.gpt2,              # GPT2LMHeadModel
    "bert": fam.bert,              # BertModel
    "roberta": fam.roberta,        # RobertaModel
    "distilbert": fam.distilbert,  # DistilBertModel
    "t5": fam.t5,                  # T5ForConditionalGeneration (T5 and T5 v1.1)
    "bart": fam.bart,              # BartModel
    "vit": fam.vit,                # ViTForImageClassification
    "clip": fam.clip,              # CLIPModel
    "convnext": stages.convnext,   # ConvNextForImageClassification
    "resnet": stages.resnet,       # ResNetForImageClassification (basic or bottleneck)
    "albert": stages.albert,       # AlbertForMaskedLM
}


def family_of(cfg: ConfigFile) -> str:
    """The family ``model_type`` names; missing or unknown ones list what is supported."""
    supported = ", ".join([*FAMILIES, *PARTS])
    if not cfg.has("model_type"):
        raise cfg.error("", "no model_type: is this a Hugging Face config.json?",
                        f"supported model_type values: {supported}")
    model_type = cfg.get("model_type")
    if not isinstance(model_type, str) or (model_type not in FAMILIES
                                           and model_type not in PARTS):
        raise cfg.error("model_type", f"model_type {model_type!r} is not supported",
                        f"supported: {supported}")
    return model_type


def import_hf(config: str | Path, out: Path, name: str | None = None,
              mask: bool = False) -> Path:
    """Write the spec for a Hugging Face ``config.json`` to ``out`` (.yaml or .arch).

    ``mask`` (decoder LLMs): a forward that takes ``attention_mask`` for padded batches,
    instead of the generation facet."""
    cfg = read_config(config)
    if unet_config(cfg):  # a diffusers UNet2DModel: no model_type, a _class_name
        return import_diffusers(config, out, name, cfg)
    origin = cfg.loc("")
    name = spec_name(Path(out), name, origin)
    model_type = family_of(cfg)
    if model_type in PARTS:  # a decoder LLM: assembled from its parts (importers/decoder.py)
        data = decoder_spec(cfg, model_type, name, mask)
        return write_data(data, Path(out), origin, locate=lambda path: config_key(cfg, path))
    overlay = FAMILIES[model_type](cfg)
    overlay["name"] = name
    note = f"Sizes from {Path(cfg.file).name} ({model_type}; archcc import hf)."
    return write_spec(model_type, overlay, Path(out), origin, note,
                      locate=lambda path: config_key(cfg, path))


def config_key(cfg: ConfigFile, path: str) -> SourceLoc:
    """Where in config.json a problem of the imported spec comes from: a param is the config
    key of its name (CLIP's ``text_hidden_size`` is ``text_config.hidden_size``); anything
    else is the config as a whole."""
    parts = path.split(".")
    if len(parts) < 2 or parts[0] != "params":
        return cfg.loc("")
    param = parts[1]
    for key in (param, *(f"{tower}_config.{param.removeprefix(tower + '_')}"
                         for tower in ("text", "vision") if param.startswith(tower + "_"))):
        if cfg.has(key):
            return cfg.loc(key)
    return cfg.loc("")
