"""The optimization pipeline: one ordered list of named rewrites, verified at entry and exit.

Each pass is ``(module, ctx) -> PassResult`` and runs over every module of the program. The
log (``Program.passes_log``) is what ``archcc build --explain`` prints.
"""

from __future__ import annotations

from collections.abc import Callable

from archcc.ir.graph import ModuleIR, Program
from archcc.ir.infer import param_context
from archcc.ir.params import symbol, to_sympy
from archcc.ir.passes.base import PassContext, PassResult
from archcc.ir.passes.cse import eliminate_common_subexpressions
from archcc.ir.passes.dead_code import eliminate_dead_code
from archcc.ir.passes.fold_constants import fold_constants
from archcc.ir.passes.fuse_attention import fuse_attention
from archcc.ir.passes.fuse_projections import fuse_projections
from archcc.ir.passes.remove_noops import remove_noops
from archcc.ir.shapes import DimContext
from archcc.ir.verify import verify
from archcc.lazy import sympy

Pass = Callable[[ModuleIR, PassContext], PassResult]

# (name, pass, lowest opt level that runs it)
PIPELINE: list[tuple[str, Pass, int]] = [
    # literal arithmetic in expressions, chains of constant factors, x * 1 and x + 0
    ("fold_constants", fold_constants, 1),
    # identity, dropout(p=0), transpose of transpose, reshape of reshape, not(not(x))
    ("remove_noops", remove_noops, 1),
    # the same op on the same inputs computes one value: keep the first
    ("cse", eliminate_common_subexpressions, 1),
    # matmul -> scale -> mask -> softmax -> dropout -> matmul  =>  one SDPA call
    ("fuse_attention", fuse_attention, 1),
    # linears reading one input (q, k, v) => one wide linear + split; renames parameters
    ("fuse_projections", fuse_projections, 2),
    # the rewrites above leave transposes and masks nobody reads
    ("dead_code", eliminate_dead_code, 1),
]
PASS_NAMES = [name for name, _, _ in PIPELINE]


def _context(program: Program, module: ModuleIR) -> PassContext:
    """Dims compare by param values; in lowered classes also by their scalar definitions."""
    dims = param_context(program)
    if module.kind == "lowered":
        local = {symbol(k): to_sympy(v) for k, v in module.scalars.items()}
        dims = DimContext({k: v for k, v in local.items() if k != v and not isinstance(
            v, sympy.Float)})
    return PassContext(dims)


def optimize(program: Program, opt_level: int = 2, stop_after: str | None = None) -> Program:
    """Run the pipeline up to ``opt_level`` (0 = nothing), optionally stopping after a pass."""
    verify(program, where="pipeline entry")
    for name, run, level in PIPELINE:
        if opt_level < level:
            continue
        for module in program.modules.values():
            if module.facets.get("template"):  # codegen writes its body: no graph to rewrite
                continue
            result = run(module, _context(program, module))
            program.passes_log += [f"{name}: {note}" for note in result.notes]
            program.passes_log += [f"{name}: {miss}" for miss in result.near_misses]
        if stop_after == name:
            break
    verify(program, where="pipeline exit")
    return program
