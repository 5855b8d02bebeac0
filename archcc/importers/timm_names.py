"""``archcc import timm vit_base_patch16_224 num_classes=10 -o specs/my_vit.yaml``.

A fixed table of timm model names (the sizes their entrypoints pass, and the defaults of
their pretrained configs), so importing never builds or downloads a model. ``key=value``
arguments are timm's own ``create_model`` keyword arguments, restricted to those the family
spec can express::

    import_timm("mixer_b16_224", Path("mixer.yaml"), ["num_classes=10"])
    # = timm.create_model("mixer_b16_224", num_classes=10), layout "timm"

``tests/test_import.py`` checks every entry against timm (on the meta device).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from archcc.diagnostics import ArchccError, Diagnostic, SourceLoc
from archcc.importers.write import spec_name, write_spec

_VIT = {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12),
        "large": (1024, 24, 16)}
_SWIN = {"tiny": (96, (2, 2, 6, 2), (3, 6, 12, 24)), "small": (96, (2, 2, 18, 2), (3, 6, 12, 24)),
         "base": (128, (2, 2, 18, 2), (4, 8, 16, 32)),
         "large": (192, (2, 2, 18, 2), (6, 12, 24, 48))}
_MIXER = {"s": (512, 8), "b": (768, 12), "l": (1024, 24)}


def _models() -> dict[str, tuple[str, dict]]:
    """name -> (family spec, timm kwargs with the entrypoint's and pretrained cfg's values)."""
    models = {}
    for size, (dim, depth, heads) in _VIT.items():
        for patch in (16, 32) if size != "tiny" else (16,):
            for res in (224, 384):
                # timm's default weights for this one are in21k features: no head
                classes = 0 if (size, patch, res) == ("large", 32, 224) else 1000
                models[f"vit_{size}_patch{patch}_{res}"] = ("vit", dict(
                    img_size=res, patch_size=patch, in_chans=3, embed_dim=dim, depth=depth,
                    num_heads=heads, mlp_ratio=4.0, num_classes=classes))
    for size, (dim, depths, heads) in _SWIN.items():
        models[f"swin_{size}_patch4_window7_224"] = ("swin", dict(
            img_size=224, patch_size=4, in_chans=3, embed_dim=dim, depths=depths,
            num_heads=heads, window_size=7, mlp_ratio=4.0, num_classes=1000))
    for size, (dim, blocks) in _MIXER.items():
        for patch in (16, 32):
            models[f"mixer_{size}{patch}_224"] = ("mlp_mixer", dict(
                img_size=224, patch_size=patch, in_chans=3, embed_dim=dim, num_blocks=blocks,
                num_classes=1000))
    return models


MODELS = _models()
# kwargs each family's spec can take (swin: any number of stages, depths and num_heads alike)
KWARGS = {"vit": ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads",
                  "mlp_ratio", "num_classes"),
          "swin": ("img_size", "patch_size", "in_chans", "embed_dim", "depths", "num_heads",
                   "window_size", "mlp_ratio", "num_classes"),
          # timm's mixer entrypoints refuse patch_size / embed_dim / num_blocks overrides
          "mlp_mixer": ("img_size", "in_chans", "num_classes")}


@dataclass(frozen=True)
class _Args:
    name: str

    def loc(self, text: str = "") -> SourceLoc:
        return SourceLoc(f"archcc import timm {self.name}" + (f" {text}" if text else ""))

    def error(self, text: str, key: str, message: str, hint: str | None = None) -> ArchccError:
        return ArchccError(Diagnostic(self.loc(text), key, message, hint))


def _value(args: _Args, text: str, key: str, default: object) -> object:
    """``raw`` in the type of timm's default: int, float or a comma-separated int tuple
    (any length: a Swin's number of stages is its list's)."""
    raw = text.partition("=")[2].strip()
    try:
        if isinstance(default, tuple):
            value = tuple(int(part) for part in raw.split(","))
        else:
            value = float(raw) if isinstance(default, float) else int(raw)
        if min(value if isinstance(value, tuple) else (value,)) <= 0:
            raise ValueError
        return value
    except ValueError:
        kind = ("comma-separated integers" if isinstance(default, tuple)
                else type(default).__name__)
        raise args.error(text, key, f"expected {kind} > 0, got '{raw}'") from None


def timm_kwargs(name: str, assignments: list[str]) -> tuple[str, dict]:
    """(family, kwargs): the table's entry for ``name`` with ``key=value`` overrides."""
    from archcc.parser.expr import did_you_mean

    args = _Args(name)
    if name not in MODELS:
        raise args.error("", "", f"timm model '{name}' is not supported",
                         did_you_mean(name, set(MODELS)) or "supported: vit_{tiny,small,base,"
                         "large}_patch{16,32}_{224,384}, swin_{tiny,small,base,large}_patch4_"
                         "window7_224, mixer_{s,b,l}{16,32}_224")
    family, kwargs = MODELS[name]
    kwargs = dict(kwargs)
    for text in assignments:
        key = text.partition("=")[0].strip()
        if "=" not in text or key not in KWARGS[family]:
            raise args.error(text, key, f"'{text}' is not a kwarg specs/{family}.yaml can take",
                             f"supported: {', '.join(KWARGS[family])} (as key=value)")
        kwargs[key] = _value(args, text, key, kwargs[key])
    if family == "swin" and len(kwargs["depths"]) != len(kwargs["num_heads"]):
        raise args.error(" ".join(assignments), "depths", f"depths has {len(kwargs['depths'])} "
                         f"stages and num_heads {len(kwargs['num_heads'])}",
                         "one entry per stage in each: depths=2,2 num_heads=3,6")
    if kwargs["num_classes"] < 1:
        raise args.error("", "num_classes", f"{name} has no classifier (num_classes "
                                            f"{kwargs['num_classes']})",
                         f"specs/{family}.yaml ends in a classifier: pass num_classes=1000")
    return family, kwargs


def _params(family: str, kw: dict) -> dict:
    """timm kwargs -> the family spec's params."""
    if family == "vit":
        return {"image_size": kw["img_size"], "patch_size": kw["patch_size"],
                "num_channels": kw["in_chans"], "hidden_size": kw["embed_dim"],
                "num_hidden_layers": kw["depth"], "num_attention_heads": kw["num_heads"],
                "intermediate_size": int(kw["embed_dim"] * kw["mlp_ratio"]),
                "layer_norm_eps": 1e-6, "num_labels": kw["num_classes"]}
    if family == "swin":  # the spec's params are timm's names
        return {k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()}
    return {key: kw[key] for key in ("img_size", "patch_size", "in_chans", "embed_dim",
                                     "num_blocks", "num_classes")}


# timm's own initialisation where the family spec states another library's (specs/vit.yaml
# follows Hugging Face): timm/models/vision_transformer.py init_weights_vit_timm, and
# VisionTransformer.no_weight_decay()
SCHEMES = {
    "vit": {"init": {"embeddings.cls_token": "normal(1.0e-6)",
                     "embeddings.pos_embed": "truncated_normal(0.02)",
                     "linear": "truncated_normal(0.02)",  # biases zeros
                     "conv2d": "torch_default"},          # the patch embedding
            "no_decay": ["embeddings.pos_embed", "embeddings.cls_token"]},
}


def import_timm(model: str, out: Path, assignments: list[str] = (),
                name: str | None = None) -> Path:
    """Write the spec for timm ``model`` (with kwargs ``key=value``) to ``out``."""
    origin = _Args(model).loc()
    name = spec_name(Path(out), name, origin)
    family, kwargs = timm_kwargs(model, list(assignments))
    overlay = {"name": name, "params": _params(family, kwargs), **SCHEMES.get(family, {})}
    note = f"Sizes of timm {' '.join([model, *assignments])} (archcc import timm)."
    return write_spec(family, overlay, Path(out), origin, note)
