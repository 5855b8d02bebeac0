"""What every pass takes and returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from archcc.ir.shapes import DimContext


@dataclass
class PassContext:
    """Per-module facts a pass may need (how to compare dims)."""

    dims: DimContext


@dataclass
class PassResult:
    """``changed`` drives re-verification; notes and near misses feed ``--explain``."""

    changed: bool
    notes: list[str] = field(default_factory=list)
    near_misses: list[str] = field(default_factory=list)
