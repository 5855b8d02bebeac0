"""Build the reference implementation a spec names, with the generated model's weights.

    ref = reference_model(spec.reference, model, module)   # e.g. a transformers.GPT2LMHeadModel
    ref(**dict(zip(module.DYNAMIC_DIMS, inputs)))          # called by the spec's input names

The class comes from the allow-list in archcc/parser/references.py (looked up, never built
from spec text); its config takes the generated Config's fields by name, since spec params
mirror the reference config. Weights flow reference -> ours: the reference's random
initialisation is converted with ``convert_state_dict(sd, layout)`` and loaded into our
model, so both compute with identical numbers.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType

import torch

from archcc.parser.references import REFERENCE_MODELS
from archcc.runtime.inputs import runtime_error


def reference_model(reference, model: torch.nn.Module, module: ModuleType) -> torch.nn.Module:
    """An eval-mode reference model sharing ``model``'s weights (``model`` is updated)."""
    try:
        ref = build_reference(reference, model.config).eval()
    except ImportError:
        raise runtime_error("reference", f"{reference.library} is not installed",
                            f"pip install {reference.library}") from None
    if reference.layout not in module.CHECKPOINT_LAYOUTS:
        raise runtime_error("reference.layout", f"no checkpoint layout {reference.layout!r}",
                            f"layouts in this spec: {', '.join(module.CHECKPOINT_LAYOUTS)}")
    state = module.convert_state_dict(ref.state_dict(), reference.layout)
    model.load_state_dict(state, strict=True)
    return ref


def build_reference(reference, config) -> torch.nn.Module:
    """The reference model built from our ``Config`` (its fields by name), randomly
    initialised on the current default device (``with torch.device("meta")``: no memory).

    ``archcc bench`` and the check of ``reference:`` (archcc/inspect/reference_keys.py) both
    build it here, so the model the check proves is the model bench compares against. Raises
    ImportError when the library (or the class, in an older version) is missing."""
    classes = REFERENCE_MODELS[reference.library]
    library = importlib.import_module(reference.library)
    try:
        config_cls = getattr(library, classes[reference.model])
        model_cls = getattr(library, reference.model)
    except AttributeError as exc:  # an older release without the class
        raise ImportError(str(exc)) from None
    return model_cls(config_cls(**dataclasses.asdict(config)))


def first_tensor(out) -> torch.Tensor:
    """The main output: ours may be a tuple, Hugging Face's a ModelOutput (logits or hidden)."""
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "to_tuple"):
        out = out.to_tuple()
    return first_tensor(out[0])
