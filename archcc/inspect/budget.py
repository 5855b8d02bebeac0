"""Check a spec's ``budget:`` at build time: parameters, FLOPs per token, KV cache bytes.

Figures come from the generated module itself, instantiated on the ``meta`` device (nothing
is allocated, so a 70B spec is checked in seconds) and measured by
:func:`archcc.inspect.measure.measure`, the same numbers ``archcc summary`` prints::

    budget:
      params: <= 125M                       # parameters, tied weights counted once
      flops_per_token: <= 2G                # forward FLOPs at B=1 and dims.T, / T
      kv_cache_at: {T: 8192, max: 1GiB}     # keys + values of causal self-attention

A violation is an error at the budget's line showing the computed figure::

    specs/x.yaml:40:11: error: budget.params: 163,037,184 parameters exceed the budget of
    125M (125,000,000)
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from types import ModuleType

import torch

from archcc.codegen.targets import DEFAULT_SIZE
from archcc.diagnostics import ArchccError, Diagnostic
from archcc.inspect.reduce import Scale, reduce_repeats, scaled_totals
from archcc.ir.graph import Program
from archcc.ir.params import ParamScope
from archcc.lazy import sympy
from archcc.parser import LoadedSpec
from archcc.parser.budget import Bound, parse_bound, parse_size
from archcc.parser.yaml_loader import SpecPath

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def check_budget(loaded: LoadedSpec, program: Program, source: str,
                 kv_shapes: dict[str, tuple[tuple, tuple]]) -> None:
    """Raise one located error per broken budget; a spec without ``budget:`` costs nothing.

    ``kv_shapes`` are the key/value shapes of the causal self-attention classes
    (:func:`archcc.ir.kv_cache.causal_kv_shapes`, taken before the passes fuse attention).
    """
    budget = loaded.spec.budget
    if budget is None or budget.model_dump(exclude_none=True) == {}:
        return
    from archcc.codegen.emit import generate
    from archcc.inspect.load import _import_source

    reduced, scale = reduce_repeats(program)  # one period per repeat: time independent of depth
    module = _import_source(generate(reduced) if scale else source, program.name)
    errors: list[Diagnostic] = []
    try:
        if budget.params is not None or budget.flops_per_token is not None:
            _check_measured(loaded, program, module, scale, errors)
        if budget.kv_cache_at is not None:
            _check_kv_cache(loaded, module, kv_shapes, scale, errors)
    except RuntimeError as exc:  # torch cannot even size the tensors (a dim near 2**31)
        if "overflow" not in str(exc):
            raise
        raise ArchccError(Diagnostic(loaded.where.key(("dims",)), "dims",
                                     "the model's tensors at these dims are too large for "
                                     "torch to size, so the budget cannot be measured",
                                     "measure at smaller dims (they only size the "
                                     "measurement)")) from None
    if errors:
        raise ArchccError(errors)


# ------------------------------------------------------------------------------ messages


def _commas(value: int | Fraction) -> str:
    return f"{round(value):,}"


def _verdict(figure: int | Fraction, noun: str, bound: Bound) -> str:
    """``163,037,184 parameters exceed the budget of 125M (125,000,000)``."""
    limit = f"{bound.size_text} ({bound.value:,})"
    shown = f"{_commas(figure)} {noun}"
    if bound.op == "<=":
        return f"{shown} exceed the budget of {limit}"
    if bound.op == "<":
        return f"{shown} are not below the budget of {limit}"
    if bound.op == ">=":
        return f"{shown} are below the minimum of {limit}"
    return f"{shown}, but the budget is exactly {limit}"


def _broken(loaded: LoadedSpec, path: SpecPath, message: str, hint: str) -> Diagnostic:
    return Diagnostic(loaded.where.text(path), ".".join(path), message, hint)


# ------------------------------------------------------------------- params and FLOPs


def _check_measured(loaded: LoadedSpec, program: Program, module: ModuleType, scale: Scale,
                    errors: list[Diagnostic]) -> None:
    from archcc.inspect.measure import measure

    budget = loaded.spec.budget
    has_t = _has_symbol(program, "T")
    if budget.flops_per_token is not None and not has_t:
        errors.append(_broken(loaded, ("budget", "flops_per_token"),
                              "flops_per_token needs an input symbol T (tokens per sequence)",
                              f"inputs of this spec: {_input_text(program)}; budget "
                              "params instead, or name the sequence dim T"))
    totals = scaled_totals(measure(module, batch=1, dims=program.dims), scale)
    if budget.params is not None:
        bound = parse_bound(budget.params, "count")
        if not bound.holds(totals.params):
            errors.append(_broken(loaded, ("budget", "params"),
                                  _verdict(totals.params, "parameters", bound),
                                  "largest layers: " + _largest(totals.params_by_layer)
                                  + "; shrink them (--set) or change the budget"))
    if budget.flops_per_token is not None and has_t:
        bound = parse_bound(budget.flops_per_token, "count")
        tokens = program.dims.get("T", DEFAULT_SIZE)
        per_token = Fraction(totals.flops, tokens)
        if not bound.holds(per_token):
            errors.append(_broken(loaded, ("budget", "flops_per_token"),
                                  _verdict(per_token, "FLOPs per token", bound),
                                  f"{totals.flops:,} forward FLOPs at B=1, T={tokens} "
                                  f"(dims) over {tokens} tokens"))


def _has_symbol(program: Program, name: str) -> bool:
    return any(str(s) == name for shape in program.input_shapes.values() for dim in shape
               for s in getattr(dim, "free_symbols", ()))


def _input_text(program: Program) -> str:
    return ", ".join(f"{n} {list(map(str, shape))}" for n, shape in program.input_shapes.items())


def _largest(params: dict[str, int], top: int = 3) -> str:
    layers = sorted(((n, p) for n, p in params.items() if n and "." not in n),
                    key=lambda item: -item[1])
    return ", ".join(f"{name} {count:,}" for name, count in layers[:top])


# ------------------------------------------------------------------------------ KV cache


@dataclass(frozen=True)
class CacheLayer:
    """One causal self-attention instance: where it is and its per-position K/V shape."""

    path: str
    heads: int
    head_dim: int
    bytes: int


def kv_cache_layers(module: ModuleType, kv_shapes: dict[str, tuple[tuple, tuple]],
                    length: int, dtype: str = "float32", scale: Scale | None = None,
                    ) -> list[CacheLayer]:
    """Every causal self-attention instance of ``module.Model`` (built on meta) with the bytes
    its keys and values take at ``length`` positions, batch 1.

    Classes and K/V shapes come from the IR; instances (repeats, cycles) from the model. A
    model whose repeats were cut (:func:`archcc.inspect.reduce.reduce_repeats`) stands for
    ``scale`` times as many: each instance is then listed with its multiplicity.
    """
    with torch.device("meta"):
        model = module.Model(module.Config())
    kinds = {path: type(sub).__name__ for path, sub in model.named_modules()}
    layers = []
    for path, sub in model.named_modules():
        shapes = kv_shapes.get(type(sub).__name__)
        if shapes is None:
            continue
        sizes = [_dims(shape, sub, length) for shape in shapes]
        numel = sum(int(sympy.prod(dims)) for dims in sizes)
        key = sizes[0]
        layer = CacheLayer(path, key[1], key[-1], numel * DTYPE_BYTES[dtype])
        layers += [layer] * _multiplicity(path, kinds, scale or {})
    return layers


def _multiplicity(path: str, kinds: dict[str, str], scale: Scale) -> int:
    """How many instances the one at ``path`` of a cut model stands for."""
    count, parts = Fraction(1), path.split(".")
    for i in range(len(parts)):
        parent = ".".join(parts[:i])
        count *= scale.get((kinds.get(parent, ""), parts[i]), 1)
    return int(count)


def _dims(shape: tuple, layer: torch.nn.Module, length: int) -> list[int]:
    """``(B, n_head, T, head_dim)`` of one instance: B = 1, T = length, the rest its
    attributes (``layer.n_head``)."""
    out = []
    for dim in shape:
        dim = sympy.sympify(dim)
        subs = {s: 1 if str(s) == "B" else length if str(s) == "T" else 0 if str(s) == "P"
                else getattr(layer, str(s)) for s in dim.free_symbols}
        out.append(int(dim.subs(subs)))
    return out


def _check_kv_cache(loaded: LoadedSpec, module: ModuleType,
                    kv_shapes: dict[str, tuple[tuple, tuple]], scale: Scale,
                    errors: list[Diagnostic]) -> None:
    spec = loaded.spec.budget.kv_cache_at
    path = ("budget", "kv_cache_at")
    if not kv_shapes:
        errors.append(Diagnostic(loaded.where.key(path), ".".join(path),
                                 "the model has no causal self-attention, so it keeps no KV "
                                 "cache", "kv_cache_at applies to `op: attention` layers with "
                                 "`causal: true`; remove it from the budget"))
        return
    scope = ParamScope.from_spec(loaded)
    length_expr = scope.size(spec.T, (*path, "T"), limit=10**9)
    scope.check()
    length = scope.value(length_expr)
    layers = kv_cache_layers(module, kv_shapes, length, spec.dtype, scale)
    total, limit = sum(layer.bytes for layer in layers), parse_size(spec.max, "bytes")
    if total > limit:
        bound = Bound("<=", limit, f"<= {spec.max}")
        message = _verdict(total, f"bytes of KV cache at T={length}", bound)
        errors.append(_broken(loaded, (*path, "max"), message,
                              _kv_hint(layers, length, spec.dtype)))


def _kv_hint(layers: list[CacheLayer], length: int, dtype: str) -> str:
    """``2 (keys, values) x 12 layers x 12 heads x 64 head dim x 8192 positions x 4 bytes``."""
    shapes = {(layer.heads, layer.head_dim, layer.bytes) for layer in layers}
    if len(shapes) == 1:
        heads, head_dim, _ = shapes.pop()
        return (f"2 (keys, values) x {len(layers)} causal self-attention layers x {heads} kv "
                f"heads x {head_dim} head dim x {length} positions x {DTYPE_BYTES[dtype]} "
                f"bytes ({dtype}); fewer kv heads, a shorter T or dtype: float16 shrink it")
    return (f"the sum over {len(layers)} causal self-attention layers "
            f"({', '.join(layer.path for layer in layers[:3])}, ...) at {dtype}")
