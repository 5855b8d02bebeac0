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
from dataclasses import dataclass
from pathlib import Path

from archcc.importers import hf_families as fam
from archcc.importers.config import ConfigFile, read_config
from archcc.importers.write import spec_name, write_spec


@dataclass(frozen=True)
class Family:
    """One supported ``model_type``: its spec and the transformers class it loads from."""

    spec: str
    loads: str
    overlay: Callable[[ConfigFile], dict]


FAMILIES = {
    "gpt2": Family("gpt2", "GPT2LMHeadModel", fam.gpt2),
    "bert": Family("bert", "BertModel", fam.bert),
    "roberta": Family("roberta", "RobertaModel", fam.roberta),
    "distilbert": Family("distilbert", "DistilBertModel", fam.distilbert),
    "t5": Family("t5", "T5ForConditionalGeneration", fam.t5),
    "bart": Family("bart", "BartModel", fam.bart),
    "vit": Family("vit", "ViTForImageClassification", fam.vit),
    "clip": Family("clip", "CLIPModel", fam.clip),
}


def family_of(cfg: ConfigFile) -> tuple[str, Family]:
    """The family ``model_type`` names; missing or unknown ones list what is supported."""
    supported = ", ".join(FAMILIES)
    if not cfg.has("model_type"):
        raise cfg.error("", "no model_type: is this a Hugging Face config.json?",
                        f"supported model_type values: {supported}")
    model_type = cfg.get("model_type")
    if model_type not in FAMILIES:
        raise cfg.error("model_type", f"model_type {model_type!r} is not supported",
                        f"supported: {supported}")
    return model_type, FAMILIES[model_type]


def import_hf(config: str | Path, out: Path, name: str | None = None) -> Path:
    """Write the spec for a Hugging Face ``config.json`` to ``out`` (.yaml or .arch)."""
    cfg = read_config(config)
    origin = cfg.loc("")
    name = spec_name(Path(out), name, origin)
    model_type, family = family_of(cfg)
    overlay = family.overlay(cfg)
    overlay["name"] = name
    overlay["doc"] = (f"{family.loads} from {Path(cfg.file).name} (model_type {model_type}), "
                      f"imported over specs/{family.spec}.yaml by `archcc import hf`; "
                      f"convert_state_dict(sd, 'hf') loads its state_dict.")
    return write_spec(family.spec, overlay, Path(out), origin)
