"""Compare a fresh generated model's initial weights with a fresh reference's, tensor by tensor.

Values never match (the two draw in a different order), so distributions are compared,
through the spec's own checkpoint mapping:

1. provenance: each reference tensor k is replaced by the constant k and the whole state dict
   is pushed through ``convert_state_dict``, so every element of every generated tensor is
   traced to the reference tensor it came from (renames, transposes, q|k|v concatenation);
2. a deterministic reference tensor (norms 1/0, zero biases, a constant) must be equal
   exactly; rows that are all zero in the reference (padding rows) must be zero here too;
3. a random one: mean and standard deviation within six standard errors of both samples,
   and for large tensors a two-sample Kolmogorov-Smirnov test (normal vs uniform vs
   truncated with the same std);
4. tensors the reference ties together must be one tensor here.
"""

from __future__ import annotations

import copy
import math

import torch


def ks_statistic(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sample Kolmogorov-Smirnov statistic sup |F_a - F_b| (no scipy needed)."""
    a, b = a.flatten().double().sort().values, b.flatten().double().sort().values
    grid = torch.cat([a, b]).sort().values
    fa = torch.searchsorted(a, grid, right=True).double() / a.numel()
    fb = torch.searchsorted(b, grid, right=True).double() / b.numel()
    return (fa - fb).abs().max().item()


def compare(name: str, ours: torch.Tensor, ref: torch.Tensor, z: float = 6.0) -> list[str]:
    """Problems found comparing one generated slice with its reference tensor ([] = ok)."""
    ours, ref = ours.detach().double().flatten(), ref.detach().double().flatten()
    n, m = ours.numel(), ref.numel()
    ref_std = ref.std().item() if m > 1 else 0.0
    ref_mean = ref.mean().item()
    if ref_std == 0.0:
        if not torch.all(ours == ref_mean):
            return [f"{name}: expected constant {ref_mean:.6g}, got mean "
                    f"{ours.mean().item():.6g} std {ours.std().item() if n > 1 else 0:.3g}"]
        return []
    problems = []
    our_std, our_mean = (ours.std().item() if n > 1 else 0.0), ours.mean().item()
    # the SE of a sample std is sigma * sqrt((kurtosis - 1) / 4n) <= sigma / sqrt(2n) for the
    # normal, uniform and truncated normal; both sides are samples
    std_tol = z * math.sqrt(1 / (2 * n) + 1 / (2 * m))
    if abs(our_std / ref_std - 1) > max(std_tol, 1e-3):
        problems.append(f"{name}: std {our_std:.4g} vs reference {ref_std:.4g} "
                        f"({our_std / ref_std - 1:+.1%}, tolerance {std_tol:.1%})")
    mean_tol = z * ref_std * math.sqrt(1 / n + 1 / m)
    if abs(our_mean - ref_mean) > mean_tol:
        problems.append(f"{name}: mean {our_mean:.4g} vs reference {ref_mean:.4g} "
                        f"(tolerance {mean_tol:.2g})")
    if min(n, m) >= 256:
        d, crit = ks_statistic(ours, ref), 1.95 * math.sqrt((n + m) / (n * m))  # alpha 1e-3
        if d > crit:
            problems.append(f"{name}: distribution shape differs (KS {d:.3f} > {crit:.3f})")
    return problems


def _zero_rows(t: torch.Tensor) -> set[int]:
    if t.dim() < 2:
        return set()
    flat = t.detach().reshape(t.shape[0], -1)
    return set((flat == 0).all(1).nonzero().flatten().tolist())


def _traced(ours: torch.nn.Module, state_dict: dict, convert, layout: str) -> dict:
    """``state_dict`` mapped onto ``ours``'s parameter names as loading would map it: through
    ``convert_state_dict``, then ``load_state_dict`` (whose hooks join -O2's fused q|k|v)."""
    probe = copy.deepcopy(ours).double()
    with torch.no_grad():
        for param in probe.parameters():
            param.fill_(float("nan"))  # what nothing maps onto stays NaN
    probe.load_state_dict(convert(state_dict, layout), strict=False)
    return dict(probe.named_parameters())


def check(ours: torch.nn.Module, ref: torch.nn.Module, convert, layout: str) -> list[str]:
    """Every problem found in ``ours`` against ``ref`` (see the module docstring)."""
    ref_sd = ref.state_dict(keep_vars=True)
    keys = sorted(k for k, v in ref_sd.items() if v.is_floating_point())
    rest = {k: v for k, v in ref_sd.items() if k not in keys}
    source = _traced(ours, {**rest, **{
        k: torch.full(ref_sd[k].shape, float(i + 1), dtype=torch.float64)
        for i, k in enumerate(keys)}}, convert, layout)
    where = _traced(ours, {**rest, **{
        k: torch.arange(ref_sd[k].numel(), dtype=torch.float64).reshape(ref_sd[k].shape)
        for k in keys}}, convert, layout)
    problems = []
    for name, param in ours.named_parameters():
        label = source[name].detach()
        if torch.isnan(label).any():
            problems.append(f"{name}: no reference tensor maps here")
            continue
        for index in label.unique().tolist():
            key = keys[int(index) - 1]
            mask = label == index
            ref_t = ref_sd[key].detach().flatten()[where[name].detach()[mask].long()]
            problems += compare(f"{name} <- {key}", param.detach()[mask], ref_t)
            if mask.all() and param.shape == ref_sd[key].shape and \
                    _zero_rows(ref_sd[key]) - _zero_rows(param):
                rows = sorted(_zero_rows(ref_sd[key]) - _zero_rows(param))
                problems.append(f"{name}: rows {rows} are zero in the reference, not here")
    ours_params = dict(ours.named_parameters(remove_duplicate=False))
    by_storage: dict[int, list[str]] = {}
    for key, value in ref.named_parameters(remove_duplicate=False):
        by_storage.setdefault(value.data_ptr(), []).append(key)
    for group in (g for g in by_storage.values() if len(g) > 1):
        names = [n for n in convert({g: torch.zeros(1) for g in group}, layout) if n in ours_params]
        if len({ours_params[n].data_ptr() for n in names}) > 1:
            problems.append(f"tying lost: the reference ties {group}")
    return problems
