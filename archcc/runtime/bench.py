"""`archcc bench SPEC`: eager vs torch.compile vs TensorRT vs the spec's reference model.

    archcc bench specs/gpt2.yaml --set n_layer=2 --dims B=4 T=64 --runs 20
    archcc bench specs/bert.yaml --json > bert.json

Every backend gets the same weights (the reference's, through ``convert_state_dict``) and
the same inputs; each is warmed up, then timed ``runs`` times, and the median is reported
with its ratio to eager (> 1 = faster) and its largest difference from eager's output.
Peak memory is CUDA's allocator peak on a GPU; on CPU it is the process's peak RSS, which
only ever grows (so later backends show at least the earlier ones' figure).
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from archcc.diagnostics import ArchccError
from archcc.parser import load_spec
from archcc.runtime.backends import compile as compile_model
from archcc.runtime.commands import build_model, parse_dims
from archcc.runtime.inputs import model_inputs, runtime_error
from archcc.runtime.reference import first_tensor, reference_model

BACKENDS = ("eager", "inductor", "tensorrt", "reference")


@dataclass
class Result:
    backend: str
    status: str  # ok | skipped | failed
    median_ms: float | None = None
    min_ms: float | None = None
    speedup: float | None = None  # eager median / this median
    peak_mem_mb: float | None = None
    max_abs_diff: float | None = None  # vs eager's main output
    reason: str | None = None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def time_call(fn: Callable[[], object], device: torch.device, warmup: int,
              runs: int) -> tuple[list[float], object]:
    """Milliseconds of ``runs`` calls after ``warmup`` untimed ones, and the last output."""
    with torch.inference_mode():
        out = None
        for _ in range(warmup):
            out = fn()
        _sync(device)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            out = fn()
            _sync(device)
            times.append((time.perf_counter() - start) * 1e3)
    return times, out


def _runner(backend: str, model, ref, inputs, names, dtype, device):
    """A zero-argument callable for one backend, or raise ArchccError to skip it."""
    if backend == "reference":
        if ref is None:
            raise _skip("the spec names no reference (add `reference:`)")
        kwargs = dict(zip(names, inputs, strict=True))
        return lambda: ref(**kwargs)
    compiled = compile_model(model, backend, inputs=inputs, dtype=dtype)
    return lambda: compiled(*inputs)


def _skip(reason: str) -> ArchccError:
    return runtime_error("bench", reason)


def _measure(backend, model, ref, inputs, names, dtype, device, warmup, runs) -> tuple:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    try:
        fn = _runner(backend, model, ref, inputs, names, dtype, device)
        times, out = time_call(fn, device, warmup, runs)
    except ArchccError as exc:
        reason = "; ".join(d.message for d in exc.diagnostics)
        return Result(backend, "skipped", reason=reason), None
    except Exception as exc:  # a backend that cannot run this model: report, keep going
        return Result(backend, "failed", reason=f"{type(exc).__name__}: {exc}"[:300]), None
    return Result(backend, "ok", statistics.median(times), min(times),
                  peak_mem_mb=round(_peak_mb(device), 1)), first_tensor(out)


def bench(spec: str | Path, dims: Sequence[str] = (), sets: Sequence[str] = (),
          runs: int = 10, warmup: int = 3, device: str | None = None, dtype: str = "float32",
          backends: Sequence[str] = BACKENDS) -> dict:
    """Run every backend on one model; returns a JSON-ready report (``device`` defaults to
    cuda when available)."""
    torch_dtype = getattr(torch, dtype)
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    module, model = build_model(spec, sets)
    reference = load_spec(spec, sets).spec.reference
    ref = reference_model(reference, model, module) if reference and "reference" in backends \
        else None
    model = model.to(target, torch_dtype)
    ref = ref.to(target, torch_dtype) if ref is not None else None
    io = model_inputs(model, dims=parse_dims(list(dims)))
    inputs = tuple(x.to(target, torch_dtype) if x.is_floating_point() else x.to(target)
                   for x in io.example)
    results, outputs = [], {}
    for backend in backends:
        result, out = _measure(backend, model, ref, inputs, io.names, None, target,
                               warmup, runs)
        results.append(result)
        if out is not None:
            outputs[backend] = out
    _compare(results, outputs)
    shapes = {n: list(x.shape) for n, x in zip(io.names, inputs, strict=True)}
    return {"spec": str(spec), "model": type(model).__name__, "device": str(target),
            "threads": torch.get_num_threads(), "dtype": dtype, "torch": torch.__version__,
            "params": sum(p.numel() for p in model.parameters()), "inputs": shapes,
            "runs": runs, "warmup": warmup, "results": [asdict(r) for r in results]}


def _compare(results: list[Result], outputs: dict) -> None:
    """Speedups and output differences relative to eager (when eager ran)."""
    eager = next((r for r in results if r.backend == "eager" and r.status == "ok"), None)
    for result in results:
        if eager is None or result.status != "ok":
            continue
        result.speedup = round(eager.median_ms / result.median_ms, 3)
        ours, base = outputs[result.backend], outputs["eager"]
        if ours.shape == base.shape:
            result.max_abs_diff = float((ours.float() - base.float()).abs().max())


def format_report(report: dict) -> str:
    """The human-readable table ``archcc bench`` prints."""
    lines = [f"{report['model']} ({report['params']:,} params) on {report['device']}, "
             f"{report['threads']} threads, {report['dtype']}, inputs {report['inputs']}, "
             f"median of {report['runs']} after {report['warmup']} warm-up",
             f"{'backend':<10} {'median ms':>10} {'vs eager':>9} {'peak MB':>9} "
             f"{'max |diff|':>11}"]
    for r in report["results"]:
        if r["status"] != "ok":
            lines.append(f"{r['backend']:<10} {r['status']}: {r['reason']}")
            continue
        diff = "-" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.2e}"
        speed = "-" if r["speedup"] is None else f"{r['speedup']:.2f}x"
        lines.append(f"{r['backend']:<10} {r['median_ms']:>10.2f} {speed:>9} "
                     f"{r['peak_mem_mb']:>9.1f} {diff:>11}")
    return "\n".join(lines)

