"""Run a generated model once, on the ``meta`` device, and record per-module figures.

Nothing is allocated: parameters and activations are meta tensors (shape and dtype only),
so a 1000-layer, d=16384 spec is measured in seconds. Per module path (``h.0.attn``) we
record the output shapes, parameters, FLOPs (``torch.utils.flop_counter.FlopCounterMode``
itself, so the numbers agree with it by construction) and activation bytes::

    >>> m = measure(inspected.module, dims={"T": 1024})
    >>> m.flops[""], m.params["h"], m.shapes["h.0"]
    (..., 84934656, [[1, 1024, 768]])

Identical repeat instances (same class, parameter shapes, settings and input shapes) are
run once and their figures copied: each later ``h.i`` returns an empty output of the
recorded shape. Measured numbers are the same; only the wall time drops.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

aten = torch.ops.aten


def _cpu_sdpa_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_lstm_layer_flops(inputs, w_ih, w_hh, *args, out_shape=None, **kwargs) -> int:
    """Both gate matmuls at every step: 2 * T * B * (4H * in + 4H * H); input is (T, B, in)."""
    steps, batch = inputs[0], inputs[1]
    return 2 * steps * batch * (w_ih[0] * w_ih[1] + w_hh[0] * w_hh[1])


# torch counts the CUDA attention kernels but has no formula for the CPU flash kernel or the
# CPU LSTM kernel, so without these a real CPU run would report zero FLOPs for them (on meta
# both decompose into the matmuls that torch does count; the formulas give the same numbers).
EXTRA_FLOP_FORMULAS = {aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops,
                       aten.mkldnn_rnn_layer: _cpu_lstm_layer_flops}


def flop_counter() -> FlopCounterMode:
    """The FlopCounterMode archcc measures with (torch's formulas plus CPU attention)."""
    return FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS)


@dataclass
class Measured:
    """Per module path ('' is the whole model) figures of one forward pass."""

    model_class: str
    input_shapes: list[list[int]]
    kinds: dict[str, str] = field(default_factory=dict)  # path -> module class name
    shapes: dict[str, list[list[int]]] = field(default_factory=dict)
    params: dict[str, int] = field(default_factory=dict)  # each tensor counted once, first owner
    tied: dict[str, str] = field(default_factory=dict)  # "lm_head.weight" -> "wte.weight"
    flops: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    act_bytes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    state: dict[str, list[int]] = field(default_factory=dict)  # state_dict key -> shape
    replayed: int = 0  # repeat instances whose figures were copied, not re-run


def _ancestors(path: str) -> list[str]:
    """'h.0.attn' -> ['', 'h', 'h.0', 'h.0.attn']."""
    parts = path.split(".") if path else []
    return [""] + [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _shapes(value: Any) -> list[list[int]]:
    return [list(t.shape) for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]


class _ActivationBytes(TorchDispatchMode):
    """Adds the bytes of every new tensor an op produces to each module on the stack.

    Views and in-place ops (returns that alias an input) produce no new memory.
    """

    def __init__(self, stack: list[str], counts: dict[str, int]) -> None:
        super().__init__()
        self.stack, self.counts, self.paused = stack, counts, False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not self.paused and not any(r.alias_info for r in func._schema.returns):
            size = sum(t.numel() * t.element_size() for t in tree_flatten(out)[0]
                       if isinstance(t, torch.Tensor))
            for path in self.stack:
                self.counts[path] += size
        return out


def _signature(module: nn.Module) -> tuple:
    """What makes two repeat instances compute the same: classes, shapes, plain settings."""
    parts = []
    for name, sub in module.named_modules():
        settings = sorted((k, v) for k, v in vars(sub).items()
                          if not k.startswith("_") and isinstance(v, int | float | bool | str))
        tensors = [(n, tuple(t.shape), t.dtype) for n, t in
                   (*sub.named_parameters(recurse=False), *sub.named_buffers(recurse=False))]
        parts.append((name, type(sub).__name__, tuple(settings), tuple(tensors)))
    return tuple(parts)


def _takes_a_list(args: tuple, kwargs: dict) -> bool:
    return any(isinstance(a, list) for a in (*args, *kwargs.values()))


def _input_key(args: tuple, kwargs: dict) -> tuple:
    leaves = tree_flatten((args, kwargs))[0]
    return tuple((tuple(t.shape), t.dtype) if isinstance(t, torch.Tensor) else repr(t)
                 for t in leaves)


class _Recorder:
    """Forward hooks that keep the module stack, output shapes and repeat replays."""

    def __init__(self, model: nn.Module, measured: Measured, counter: _ActivationBytes):
        self.measured, self.counter = measured, counter
        self.stack: list[str] = counter.stack
        self.reference: dict[str, tuple] = {}  # first instance path -> (input key, output)
        self.replays: list[tuple[str, str]] = []  # (replayed path, reference path)
        self.handles = []
        for path, module in model.named_modules():
            self.handles.append(module.register_forward_pre_hook(self._enter(path)))
            self.handles.append(module.register_forward_hook(self._leave(path),
                                                             with_kwargs=True))
            if isinstance(module, nn.ModuleList) and len(module) > 1:
                self._replay_repeats(path, module)

    def _enter(self, path: str) -> Callable:
        def hook(module, args):
            self.stack.append(path)
        return hook

    def _leave(self, path: str) -> Callable:
        def hook(module, args, kwargs, output):
            self.stack.pop()
            self.measured.shapes[path] = _shapes(output)
            if path in self.reference and self.reference[path] is None:
                self.reference[path] = (_input_key(args, kwargs), output)
        return hook

    def _replay_repeats(self, path: str, blocks: nn.ModuleList) -> None:
        first = f"{path}.0" if path else "0"
        self.reference[first] = None
        signature = _signature(blocks[0])
        for i, block in enumerate(blocks):
            if i and _signature(block) == signature:
                block.forward = self._replay(f"{path}.{i}" if path else str(i), first,
                                             block.forward)

    def _replay(self, path: str, first: str, original: Callable) -> Callable:
        def forward(*args, **kwargs):
            ref = self.reference.get(first)
            if ref is None or ref[0] != _input_key(args, kwargs) or _takes_a_list(args, kwargs):
                # a skip stack (a list) is changed by the block: never replay one
                return original(*args, **kwargs)  # different inputs: measure for real
            self.replays.append((path, first))
            self.counter.paused = True
            try:
                return tree_map(lambda t: torch.empty_like(t) if isinstance(t, torch.Tensor)
                                else t, ref[1])
            finally:
                self.counter.paused = False
        return forward

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def _copy_replays(measured: Measured, replays: list[tuple[str, str]]) -> None:
    """Give each replayed instance the figures of its reference, and its called ancestors."""
    tables = (measured.shapes, measured.flops, measured.act_bytes)
    subtree: dict[str, list[str]] = {}
    for path, first in replays:
        if first not in subtree:
            subtree[first] = [k for k in measured.kinds if k == first or k.startswith(first + ".")]
        for key in subtree[first]:
            for table in tables:
                if key in table:
                    table[path + key[len(first):]] = table[key]
        for ancestor in _ancestors(path)[:-1]:
            if ancestor in measured.shapes:  # containers never called are summed later
                measured.flops[ancestor] += measured.flops[first]
                measured.act_bytes[ancestor] += measured.act_bytes[first]
    measured.replayed = len(replays)


def _sum_containers(measured: Measured) -> None:
    """A ModuleList is iterated, never called: its figures are its children's sums."""
    for path in sorted(measured.kinds, key=lambda p: -p.count(".") if p else 1):
        if path in measured.shapes or not path:
            continue
        children = [k for k in _children(measured.kinds, path)]
        measured.flops[path] = sum(measured.flops.get(c, 0) for c in children)
        measured.act_bytes[path] = sum(measured.act_bytes.get(c, 0) for c in children)


def _children(kinds: dict[str, str], path: str) -> list[str]:
    depth = path.count(".") + 1
    return [k for k in kinds if k.startswith(path + ".") and k.count(".") == depth]


def _flops_by_path(counter: FlopCounterMode, model_class: str) -> dict[str, int]:
    out = defaultdict(int)
    for name, per_op in counter.get_flop_counts().items():
        if name == model_class:
            out[""] = sum(per_op.values())
        elif name.startswith(model_class + "."):
            out[name[len(model_class) + 1:]] = sum(per_op.values())
    return out


def _static(model: nn.Module, measured: Measured) -> None:
    """Parameters per path (each tensor once, at its first name), ties, kinds, state_dict."""
    first: dict[int, str] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in first:
            measured.tied[name] = first[id(param)]
            continue
        first[id(param)] = name
        for path in _ancestors(name.rpartition(".")[0]):
            measured.params[path] = measured.params.get(path, 0) + param.numel()
    generated = type(model).__module__
    for path, module in model.named_modules():
        measured.kinds[path] = type(module).__name__
        measured.params.setdefault(path, 0)
        if type(module).__module__ != generated:
            continue  # a torch layer: its weight and bias are not rows of their own
        for name, param in module.named_parameters(recurse=False):
            key = f"{path}.{name}" if path else name
            measured.kinds[key] = "Parameter"
            measured.params[key] = param.numel()
            measured.shapes[key] = [list(param.shape)]
    measured.state = {k: list(v.shape) for k, v in model.state_dict().items()}


def example_inputs(module: ModuleType, config: Any, batch: int, dims: dict[str, int]) -> tuple:
    return module.example_inputs(batch, config, **dims)


def measure(module: ModuleType, batch: int = 1, dims: dict[str, int] | None = None,
            device: str = "meta") -> Measured:
    """Instantiate ``module.Model`` on ``device`` and measure one eval-mode forward."""
    config = module.Config()
    with torch.device(device):
        model = module.Model(config).eval()
        inputs = example_inputs(module, config, batch, dims or {})
    measured = Measured(type(model).__name__, _shapes(inputs))
    _static(model, measured)
    counter = _ActivationBytes([], measured.act_bytes)
    recorder = _Recorder(model, measured, counter)
    flops = flop_counter()
    try:
        with torch.no_grad(), flops, counter:
            model(*inputs)
    finally:
        recorder.close()
    measured.flops = _flops_by_path(flops, measured.model_class)
    for path in measured.kinds:
        measured.flops.setdefault(path, 0)
        measured.act_bytes.setdefault(path, 0)
    _copy_replays(measured, recorder.replays)
    _sum_containers(measured)
    measured.flops, measured.act_bytes = dict(measured.flops), dict(measured.act_bytes)
    return measured
