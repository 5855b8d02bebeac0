"""Export a generated model with torch.export and to ONNX, dynamic over the spec's symbols.

    from archcc.runtime.export import export_program, export_onnx
    program = export_program(model)                 # torch.export.ExportedProgram
    export_onnx(model, "gpt2.onnx", dims={"T": (1, 128, 1024)})

A spec input ``input_ids: {shape: [B, T]}`` becomes ``torch.export.Dim("B")`` and
``Dim("T")`` (shared by every input that names them, so BERT's ids, token types and mask
must agree on T), ranged by the module's ``DIM_RANGES``; in the ONNX file the same axes are
named ``B`` and ``T``. Fixed dims (``num_channels``) stay static.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from archcc.runtime.inputs import ModelInputs, Range, model_inputs, runtime_error


def dynamic_shapes(io: ModelInputs) -> dict[str, dict[int, torch.export.Dim]]:
    """``{"input_ids": {0: Dim("B"), 1: Dim("T")}}``: one Dim object per spec symbol."""
    dims = {name: torch.export.Dim(name, min=low, max=high)
            for name, (low, _, high) in io.ranges.items()}
    return {name: {axis: dims[s] for axis, s in enumerate(io.dynamic[name]) if s is not None}
            for name in io.names}


def export_program(model: torch.nn.Module, inputs: tuple | None = None,
                   dims: dict[str, int | Range] | None = None
                   ) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``model`` (put in eval mode) with the spec's dynamic dims."""
    io = model_inputs(model, inputs, dims)
    model.eval()
    try:
        return torch.export.export(model, io.example, dynamic_shapes=dynamic_shapes(io))
    except torch._dynamo.exc.UserError as exc:  # a range the model cannot take
        first = str(exc).strip().splitlines()[0]
        raise runtime_error("runtime.export", f"torch.export refused the dims "
                            f"{io.ranges}: {first}",
                            "narrow the ranges, e.g. dims={'T': (1, 16, 512)}") from None


def output_names(model: torch.nn.Module, io: ModelInputs) -> list[str]:
    """``output`` for one tensor, ``output_0, output_1, ...`` for a tuple."""
    with torch.no_grad():
        out = model(*io.example)
    count = len(out) if isinstance(out, tuple | list) else 1
    return ["output"] if count == 1 else [f"output_{i}" for i in range(count)]


def export_onnx(model: torch.nn.Module, path: str | Path, inputs: tuple | None = None,
                dims: dict[str, int | Range] | None = None, optimize: bool = True) -> Path:
    """Write ``model`` as ONNX (torch's dynamo exporter); inputs keep the spec's names and
    their dynamic axes its symbols. ``optimize`` runs onnxscript's graph optimizer (slower
    export, smaller graph). Returns the path written."""
    io = model_inputs(model, inputs, dims)
    program = export_program(model, io.example, dict(io.ranges))
    onnx_program = torch.onnx.export(program, io.example, input_names=io.names,
                                     output_names=output_names(model, io), dynamo=True,
                                     optimize=optimize, verbose=False)
    name_axes(onnx_program.model.graph, io)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx_program.save(str(path))
    return path


def name_axes(graph, io: ModelInputs) -> None:
    """Rename the exporter's symbols (``s18``) to the spec's (``B``) on every value.

    An ExportedProgram reaches the ONNX exporter without its Dim names; the input axes
    tell which exporter symbol is which spec symbol. Derived sizes (``s41 + 1``) are
    rewritten token by token.
    """
    import onnx_ir as ir  # ships with onnxscript, which torch's ONNX exporter needs

    renames = {}
    for value, name in zip(graph.inputs, io.names, strict=False):
        for dim, symbol in zip(value.shape or (), io.dynamic[name], strict=True):
            if symbol is not None and isinstance(dim, ir.SymbolicDim) and dim.value:
                renames[dim.value] = symbol
    if not renames:
        return
    token = re.compile(r"\b(" + "|".join(map(re.escape, renames)) + r")\b")
    values = [*graph.inputs, *graph.outputs, *(v for node in graph for v in node.outputs)]
    for value in values:
        if value.shape is None:
            continue
        value.shape = ir.Shape([
            ir.SymbolicDim(token.sub(lambda m: renames[m.group(1)], dim.value))
            if isinstance(dim, ir.SymbolicDim) and dim.value else dim for dim in value.shape])
