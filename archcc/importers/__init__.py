"""Start from what users have: specs from a Hugging Face config.json or a timm model name.

    archcc import hf config.json -o specs/my_model.yaml
    archcc import timm vit_base_patch16_224 num_classes=10 -o specs/my_vit.yaml
    archcc import diffusers unet/config.json -o specs/my_unet.yaml

Both write one standalone spec (the committed family spec with the sizes filled in, its
checkpoint layouts included), compiled before it is written.
"""

from archcc.importers.diffusers import import_diffusers
from archcc.importers.hf import import_hf
from archcc.importers.timm_names import import_timm

__all__ = ["import_diffusers", "import_hf", "import_timm"]
