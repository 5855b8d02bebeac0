"""The work behind `archcc export` and `archcc bench`: spec -> model -> file or report.

    archcc export specs/gpt2.yaml --onnx gpt2.onnx --dims T=1:128:1024 --set n_layer=6
    archcc export specs/vit.yaml --pt2 vit.pt2 --weights vit_hf.pt --layout hf

Command-line values are parsed here, never evaluated: ``--dims`` takes a symbol and ``opt``
or ``min:opt:max``; ``--set`` is the spec override every command shares (archcc.parser).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import torch

from archcc.api import load
from archcc.runtime.inputs import Range, runtime_error


def parse_dims(items: list[str] | None) -> dict[str, int | Range]:
    """``["T=1:128:1024", "B=8"]`` -> ``{"T": (1, 128, 1024), "B": 8}``."""
    out: dict[str, int | Range] = {}
    for item in items or []:
        name, _, value = item.partition("=")
        parts = value.split(":")
        if not name.isidentifier() or len(parts) not in (1, 3) or \
                not all(p.isdigit() for p in parts):
            raise runtime_error("--dims", f"cannot read {item!r}",
                                "write SYMBOL=OPT or SYMBOL=MIN:OPT:MAX, e.g. T=1:128:1024")
        sizes = tuple(int(p) for p in parts)
        out[name] = sizes[0] if len(sizes) == 1 else sizes
    return out


def build_model(spec: str | Path, sets: Sequence[str] = (),
                weights: str | Path | None = None,
                layout: str | None = None) -> tuple[ModuleType, torch.nn.Module]:
    """Compile ``spec`` with ``--set`` overrides (cached), instantiate it, load weights.

    ``weights`` is a ``state_dict`` file (loaded with ``weights_only=True``: no pickled
    code runs); ``layout`` converts a foreign one (``hf``) with ``convert_state_dict``.
    """
    module = load(spec, sets=sets)
    model = module.Model(module.Config()).eval()
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        if layout is not None:
            state = module.convert_state_dict(state, layout)
        model.load_state_dict(state)
    return module, model


def export_command(spec: str | Path, onnx: Path | None, pt2: Path | None,
                   dims: list[str] | None = None, sets: Sequence[str] = (),
                   weights: Path | None = None, layout: str | None = None) -> list[Path]:
    """Write the requested files; returns their paths (for the CLI to print)."""
    from archcc.runtime.export import export_onnx, export_program

    if onnx is None and pt2 is None:
        raise runtime_error("export", "nothing to write", "pass --onnx FILE and/or --pt2 FILE")
    ranges = parse_dims(dims)  # bad values fail before the (slower) build
    _, model = build_model(spec, sets, weights, layout)
    written = []
    if pt2 is not None:
        pt2.parent.mkdir(parents=True, exist_ok=True)
        torch.export.save(export_program(model, dims=ranges), str(pt2))
        written.append(pt2)
    if onnx is not None:
        written.append(export_onnx(model, onnx, dims=ranges))
    return written
