"""What the runtime needs from a generated module: which input dims are dynamic, and how far.

Every generated file carries two small tables, so export, ONNX and TensorRT never have to
guess shapes from the spec again::

    DYNAMIC_DIMS = {"input_ids": ("B", "T")}           # a symbol is dynamic, None is fixed
    DIM_RANGES = {"B": (1, 8, 64), "T": (1, 16, 128)}   # (min, opt, max) per symbol

A symbol is an input dim that is an identifier and not a param (the same rule as
``example_inputs``). ``opt`` is the spec's ``dims:`` default (8 without one; 8 for B, the
batch TensorRT is usually tuned for); ``max`` is 8 x opt. Both are overridable at call time.
``archcc build --target tensorrt`` also emits a ``compile()`` helper that turns these tables
into ``torch_tensorrt.Input(min_shape=..., opt_shape=..., max_shape=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from archcc.codegen import safe_text

if TYPE_CHECKING:  # the CLI reads TARGETS at start-up: nothing heavy here
    from archcc.ir.graph import Program

TARGETS = ("torch", "tensorrt")
DEFAULT_BATCH = 8
DEFAULT_SIZE = 8  # example_inputs' default for a symbol the spec's dims do not size
MAX_FACTOR = 8


@dataclass
class InputTable:
    """Rendered Python literals for the template: one row per input, one range per symbol."""

    dynamic: list[tuple[str, str]]  # (input name, "("B", "T")")
    ranges: list[tuple[str, str]]  # (symbol, "(1, 16, 128)")
    tensorrt: bool
    repeats: list[str] = field(default_factory=list)  # the model's repeated-block lists
    parallel: list[tuple[str, str]] = field(default_factory=list)  # (path repr, style repr)


def symbols(program: Program, raw_shape: list) -> tuple[str | None, ...]:
    """Input dims as symbols (dynamic) or None (fixed by Config): [B, 3, image_size] ->
    ('B', None, None)."""
    out = []
    for raw in raw_shape:
        text = str(raw)
        out.append(text if text.isidentifier() and text not in program.params else None)
    return tuple(out)


def _literal(items: tuple) -> str:
    return safe_text.literal(tuple(items))


def input_table(program: Program, target: str = "torch") -> InputTable:
    """The DYNAMIC_DIMS / DIM_RANGES rows of ``program``, symbols in first-seen order."""
    dynamic, order = [], []
    for name, spec in program.inputs.items():
        dims = symbols(program, spec.shape)
        dynamic.append((name, _literal(dims)))
        order += [s for s in dims if s is not None and s not in order]
    ranges = []
    for symbol in order:
        opt = DEFAULT_BATCH if symbol == "B" else program.dims.get(symbol, DEFAULT_SIZE)
        ranges.append((symbol, _literal((1, opt, MAX_FACTOR * opt))))
    repeats = [s.name for s in program.model.submodules.values() if s.kind == "repeat"]
    plan = [(safe_text.literal(path), safe_text.literal(style))
            for path, style in program.parallel.items()]
    return InputTable(dynamic, ranges, target == "tensorrt", repeats, plan)
