"""Measure a deep model by one period of each repeat: budget checks in time independent of
depth.

A ``{repeat: Block, times: 10000}`` has 10000 identical instances: building them all on the
meta device takes seconds and nested repeats (10000 x 10000) never finish. Instead the
program is copied with every plain repeat cut to one instance (a cycle to one turn), that
small model is measured, and each repeat's figures are scaled back by ``times / period``::

    reduced, scale = reduce_repeats(program)   # scale: {(class, submodule): times / period}
    totals = scaled_totals(measure(module_of(reduced)), scale)   # params, flops, per path

Figures are exact for identical instances, which plain repeats and whole cycles are; a
pattern (``AAFAAF``) is never cut.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from fractions import Fraction

from archcc.inspect.measure import Measured
from archcc.ir.graph import Program
from archcc.parser.expr import ExprError, Num, evaluate, names_in


def _names(exprs: dict) -> set[str]:
    return {n for e in exprs.values() for n in names_in(e)}

Scale = dict[tuple[str, str], Fraction]


def reduce_repeats(program: Program) -> tuple[Program, Scale]:
    """A copy of ``program`` whose repeats hold one period of blocks, and the factor by which
    each cut repeat's figures grow back (keyed by owning class and submodule name)."""
    reduced, scale = copy.deepcopy(program), {}
    for module in reduced.modules.values():
        for sub in module.submodules.values():
            a = sub.args
            if sub.kind != "repeat" or a.get("pattern") or a.get("steps") is not None \
                    or a.get("choose") is not None or "i" in _names(a.get("args", {})):
                continue  # instances that differ (a stage loop) or share: never cut
            try:
                times = evaluate(a["times"], program.params) \
                    if hasattr(a["times"], "pos") else a["times"]
            except ExprError:  # times is a block argument: per instance, not cut
                continue
            period = 1 + len(sub.args.get("cycle") or ())
            if times > period and times % period == 0:
                sub.args = {**sub.args, "times": Num(period)}
                scale[(module.name, sub.name)] = Fraction(times, period)
    return reduced, scale


@dataclass
class Totals:
    """Scaled figures of the whole model: total params/FLOPs and params per top layer."""

    params: int
    flops: int
    params_by_layer: dict[str, int]


def scaled_totals(measured: Measured, scale: Scale) -> Totals:
    """Grow each cut repeat's subtree back to its full count of instances."""
    children: dict[str, list[str]] = {}
    for path in measured.kinds:
        if path:
            children.setdefault(path.rpartition(".")[0], []).append(path)

    def grown(table: dict[str, int], path: str) -> Fraction:
        kids = [c for c in children.get(path, []) if measured.kinds[c] != "Parameter"]
        own = table.get(path, 0) - sum(table.get(c, 0) for c in kids)
        total = own + sum(grown(table, c) for c in kids)
        parent = path.rpartition(".")[0]
        name = path.rpartition(".")[2]
        factor = scale.get((measured.kinds.get(parent, ""), name), 1)
        return total * factor

    top = [c for c in children.get("", []) if measured.kinds[c] != "Parameter"]
    return Totals(int(grown(measured.params, "")), int(grown(measured.flops, "")),
                  {c: int(grown(measured.params, c)) for c in top})
