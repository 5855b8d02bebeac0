"""``archcc import hf config.json -o specs/my_model.yaml``: a spec from a Hugging Face config.

``model_type`` picks the family; its committed spec (whose params use the HF names) plus
the config's sizes is written out as one standalone spec, so the generated module loads that
family's checkpoints::

    import_hf("config.json", Path("specs/tiny_gpt2.yaml"))
    # archcc build specs/tiny_gpt2.yaml; then in Python:
    model.load_state_dict(convert_state_dict(GPT2LMHeadModel(config).state_dict(), "hf"))

A config the family spec cannot express (another activation, an untied head, ...) is a
located error at its key in config.json, never a silently different model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from archcc.importers import hf_families as fam
from archcc.importers import hf_structured as stages
from archcc.importers.config import ConfigFile, read_config
from archcc.importers.diffusers import import_diffusers
from archcc.importers.diffusers import is_unet as unet_config
from archcc.importers.write import spec_name, write_spec

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
    supported = ", ".join(FAMILIES)
    if not cfg.has("model_type"):
        raise cfg.error("", "no model_type: is this a Hugging Face config.json?",
                        f"supported model_type values: {supported}")
    model_type = cfg.get("model_type")
    if model_type not in FAMILIES:
        raise cfg.error("model_type", f"model_type {model_type!r} is not supported",
                        f"supported: {supported}")
    return model_type


def import_hf(config: str | Path, out: Path, name: str | None = None) -> Path:
    """Write the spec for a Hugging Face ``config.json`` to ``out`` (.yaml or .arch)."""
    cfg = read_config(config)
    if unet_config(cfg):  # a diffusers UNet2DModel: no model_type, a _class_name
        return import_diffusers(config, out, name, cfg)
    origin = cfg.loc("")
    name = spec_name(Path(out), name, origin)
    model_type = family_of(cfg)
    overlay = FAMILIES[model_type](cfg)
    overlay["name"] = name
    note = f"Sizes from {Path(cfg.file).name} ({model_type}; archcc import hf)."
    return write_spec(model_type, overlay, Path(out), origin, note)
