"""Shapes of a generated model's inputs, read from the tables its module carries.

Every generated file defines ``DYNAMIC_DIMS`` (which input dims are symbols) and
``DIM_RANGES`` ((min, opt, max) per symbol). Compile, export and bench all start here::

    io = model_inputs(model, dims={"T": (1, 32, 256)})
    io.example            # tensors at the opt sizes, built by the module's example_inputs()
    io.shape_range("input_ids")   # ([1, 1], [8, 32], [64, 256])
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import ModuleType

import torch

from archcc.diagnostics import ArchccError, Diagnostic

Range = tuple[int, int, int]


def runtime_error(path: str, message: str, hint: str | None = None) -> ArchccError:
    """Errors of the runtime stage share the spec-error format (no location: no spec line)."""
    return ArchccError(Diagnostic(None, path, message, hint))


def generated_module(model: torch.nn.Module) -> ModuleType:
    """The generated module that defines ``model``'s class (it holds the input tables)."""
    module = sys.modules.get(type(model).__module__)
    if module is None or not hasattr(module, "DYNAMIC_DIMS"):
        raise runtime_error("runtime", f"{type(model).__name__} is not an archcc-generated model "
                            "(its module has no DYNAMIC_DIMS table)",
                            "rebuild the spec with this archcc version: archcc build SPEC")
    return module


@dataclass
class ModelInputs:
    """Input names, their dynamic dims, the (min, opt, max) ranges and example tensors."""

    names: list[str]
    dynamic: dict[str, tuple[str | None, ...]]
    ranges: dict[str, Range]
    example: tuple[torch.Tensor, ...]

    def shape_range(self, name: str) -> tuple[list[int], list[int], list[int]]:
        """(min, opt, max) shapes of one input: symbols take their range, fixed dims stay."""
        x = self.example[self.names.index(name)]
        pairs = list(zip(self.dynamic[name], x.shape, strict=True))
        low, opt, high = ([self.ranges[s][i] if s else n for s, n in pairs] for i in range(3))
        return low, opt, high


def _ranges(defaults: dict[str, Range], dims: dict[str, int | Range] | None) -> dict[str, Range]:
    """Merge user overrides: an int sets opt (and widens min/max to include it)."""
    ranges = dict(defaults)
    for name, value in (dims or {}).items():
        if name not in ranges:
            raise runtime_error("runtime.dims", f"unknown dim {name!r}",
                                f"this model's dynamic dims: {', '.join(ranges) or 'none'}")
        if isinstance(value, int):
            low, _, high = ranges[name]
            value = (min(low, value), value, max(high, value))
        low, opt, high = value
        if not 1 <= low <= opt <= high:
            raise runtime_error("runtime.dims", f"{name}: need 1 <= min <= opt <= max, "
                                f"got {tuple(value)}")
        ranges[name] = (low, opt, high)
    return ranges


def model_inputs(model: torch.nn.Module, inputs: tuple | None = None,
                 dims: dict[str, int | Range] | None = None) -> ModelInputs:
    """Everything compile/export need about ``model``'s inputs; ``inputs`` override the
    example tensors (their sizes then become the opt sizes)."""
    module = generated_module(model)
    ranges = _ranges(module.DIM_RANGES, dims)
    if inputs is None:
        sizes = {name: r[1] for name, r in ranges.items() if name != "B"}
        batch = ranges["B"][1] if "B" in ranges else 1
        inputs = module.example_inputs(batch, getattr(model, "config", None), **sizes)
    names = list(module.DYNAMIC_DIMS)
    if len(inputs) != len(names):
        raise runtime_error("runtime.inputs", f"expected {len(names)} inputs "
                            f"({', '.join(names)}), got {len(inputs)}")
    for name, x in zip(names, inputs, strict=True):  # given tensors set the opt sizes
        for symbol, size in zip(module.DYNAMIC_DIMS[name], x.shape, strict=True):
            if symbol is not None:
                ranges[symbol] = _ranges(ranges, {symbol: int(size)})[symbol]
    return ModelInputs(names, dict(module.DYNAMIC_DIMS), ranges, tuple(inputs))
