"""Run a generated model fast: eager, torch.compile (inductor) or Torch-TensorRT.

    from archcc.runtime import compile
    fast = compile(model, "inductor")                          # any machine
    trt = compile(model.cuda(), "tensorrt", dtype=torch.float16,
                  dims={"B": (1, 8, 32), "T": (1, 128, 1024)}, fallback="inductor")

TensorRT shapes come from the generated module's ``DYNAMIC_DIMS`` / ``DIM_RANGES`` tables,
so a spec input ``[B, T]`` becomes ``torch_tensorrt.Input(min_shape=(1, 1),
opt_shape=(8, 16), max_shape=(64, 128))`` without the user spelling shapes out. Without
torch-tensorrt or without a GPU the call says so in archcc's error format; with
``fallback="inductor"`` (or ``"eager"``) it warns and takes that path instead.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

import torch

from archcc.diagnostics import ArchccError, render
from archcc.runtime.inputs import ModelInputs, Range, model_inputs, runtime_error

BACKENDS = ("eager", "inductor", "tensorrt")
_HALF = (torch.float16, torch.bfloat16)


def compile(model: torch.nn.Module, backend: str = "inductor", *, inputs: tuple | None = None,
            dtype: torch.dtype | None = None, dims: dict[str, int | Range] | None = None,
            fallback: str | None = None) -> torch.nn.Module:
    """Return ``model`` ready to run on ``backend``; ``dtype`` casts its weights (in place).

    ``dims`` overrides a symbol's (min, opt, max), ``inputs`` are example tensors (their
    sizes become opt). ``fallback`` names the backend to use when TensorRT cannot run.
    """
    for name, value in (("backend", backend), ("fallback", fallback)):
        if value is not None and value not in BACKENDS:
            raise runtime_error(f"runtime.compile.{name}", f"unknown backend {value!r}",
                                f"one of: {', '.join(BACKENDS)}")
    if dtype is not None:
        model = model.to(dtype)
    if backend == "eager":
        return model
    if backend == "inductor":
        return torch.compile(model, backend="inductor")
    try:
        trt = tensorrt_module()
    except ArchccError as exc:
        if fallback is None:
            raise
        warnings.warn(f"{render(exc)}\nfalling back to {fallback}", RuntimeWarning, stacklevel=2)
        return compile(model, fallback, inputs=inputs, dims=dims)
    io = model_inputs(model, inputs, dims)
    return _tensorrt(trt, model, io, dtype or torch.float32)


def tensorrt_module() -> ModuleType:
    """``torch_tensorrt``, or an ArchccError that says what is missing and how to get it."""
    if not torch.cuda.is_available():
        raise runtime_error("runtime.compile", "TensorRT needs a CUDA GPU and none is visible",
                            "run on a machine with an NVIDIA GPU, or pass fallback='inductor'")
    try:
        return importlib.import_module("torch_tensorrt")
    except ImportError:
        raise runtime_error("runtime.compile", "torch-tensorrt is not installed",
                            "pip install 'archcc[tensorrt]' (or torch-tensorrt matching your "
                            "torch), or pass fallback='inductor'") from None


def tensorrt_inputs(trt: ModuleType, io: ModelInputs, dtype: torch.dtype) -> list:
    """One ``torch_tensorrt.Input`` per model input, dynamic over the spec's symbols; float
    inputs take the model's ``dtype`` (ids and masks keep theirs)."""
    specs = []
    for name, x in zip(io.names, io.example, strict=True):
        low, opt, high = io.shape_range(name)
        kind = dtype if x.is_floating_point() else x.dtype
        specs.append(trt.Input(min_shape=low, opt_shape=opt, max_shape=high, dtype=kind))
    return specs


def _tensorrt(trt: ModuleType, model: torch.nn.Module, io: ModelInputs,
              dtype: torch.dtype) -> torch.nn.Module:
    # TensorRT may pick any enabled precision per layer; fp32 stays enabled as the fallback
    precisions = {dtype, torch.float32} if dtype in _HALF else {torch.float32}
    return trt.compile(model.cuda().eval(), ir="dynamo", inputs=tensorrt_inputs(trt, io, dtype),
                       enabled_precisions=precisions)
