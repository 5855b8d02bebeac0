"""The parameters a generated model holds, listed from the spec, before any torch runs.

:func:`parameters` walks the program from the model down (repeats, lowered classes) and asks
each submodule's kind for its tensors (:attr:`archcc.ops.Kind.init_params`), giving a path
template per parameter (a repeat's index is ``*``) and the kind's arguments as expressions
over params; ``init:`` rules (:mod:`archcc.ir.init`) and ``param_groups()`` work on these::

    [p.path for p in parameters(program)][:3]   # ['wte.weight', 'wpe.weight', 'h.*.ln_1.weight']
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass, replace

from archcc import ops
from archcc.ir.graph import ModuleIR, Program, Submodule
from archcc.parser.expr import (
    BinOp,
    BoolOp,
    Call,
    Expr,
    ExprError,
    IfElse,
    ListExpr,
    Name,
    Neg,
    Not,
    Num,
    Subscript,
    evaluate,
)


@dataclass
class Param:
    """One parameter of the generated model, as ``init:`` sees it."""

    path: str                  # h.*.attn.qkv.weight (a repeat's index is *)
    kind: str                  # the submodule's kind: linear
    name: str                  # the kind's parameter: weight ("" for op: parameter)
    sub: Submodule
    env: dict[str, Expr]       # the submodule's argument names -> expressions over params
    parts: list[tuple[str, Expr]] = field(default_factory=list)  # (part path, rows)
    tied: bool = False         # another layer's weight: drawn there, listed for `init:` keys

    @property
    def role(self) -> str:
        return "bias" if self.name.startswith("bias") else "weight"


def substitute(expr, env: dict[str, Expr]):
    """``expr`` with every name bound in ``env`` replaced by its expression."""
    if isinstance(expr, Name):
        return env.get(expr.id, expr)
    if isinstance(expr, tuple):
        return tuple(substitute(e, env) for e in expr)
    if is_dataclass(expr) and hasattr(expr, "pos"):
        return replace(expr, **{f.name: substitute(getattr(expr, f.name), env)
                                for f in fields(expr) if f.name != "pos"})
    return expr


def _is_expr(value) -> bool:
    return isinstance(value, Num | Name | BinOp | Neg | Call | Subscript | ListExpr | BoolOp
                      | Not | IfElse)


def _instance_args(module: ModuleIR) -> dict[str, Expr]:
    """A block's arguments differ per instance (a stage's width): bound to names no param
    has, so a scheme over them is seen as not expressible over params (archcc.ir.init)."""
    return {name: Name(f"<{name}>") for name in module.args}


def parameters(program: Program, tied: bool = False) -> list[Param]:
    """Every parameter of the model, in ``named_parameters()`` order; a tied weight only
    with ``tied`` (``named_parameters()`` yields it once, under the layer it is tied to)."""
    out: list[Param] = []
    _visit(program, program.model, "", {}, out)
    return [p for p in out if tied or not p.tied]


def _visit(program: Program, module: ModuleIR, prefix: str, env: dict, out: list) -> None:
    for sub in module.submodules.values():
        path = prefix + sub.name
        if sub.kind in ("repeat", "block"):
            inner = f"{path}.*." if sub.kind == "repeat" else path + "."
            for cls in _repeated(sub):
                block = program.modules[cls]
                _visit(program, block, inner, _instance_args(block), out)
        elif sub.kind == "class":
            for cls in (sub.cls, *(alt for _, _, alt in sub.alternatives)):
                child = program.modules[cls]
                _visit(program, child, path + ".", _class_env(child, sub, env), out)
        elif (kind := ops.get_kind(sub.kind)) is not None:
            _leaf(program, kind, sub, prefix, env, out)


def _repeated(sub: Submodule) -> list[str]:
    if sub.args.get("pattern"):
        return list(dict.fromkeys(sub.args["letters"].values()))
    return [sub.cls, *sub.args.get("cycle", ())]


def _class_env(child: ModuleIR, sub: Submodule, env: dict) -> dict[str, Expr]:
    """A lowered class's constructor arguments (and derived scalars) over params."""
    inner: dict[str, Expr] = {}
    for name, default in child.ctor_args:
        value = sub.args.get(name)
        if value is None and isinstance(default, int | float | bool):
            value = Num(default)
        if _is_expr(value):
            inner[name] = substitute(value, env)
    for name, expr in child.scalars.items():
        if _is_expr(expr):
            inner.setdefault(name, substitute(expr, inner))
    return inner


def _leaf(program: Program, kind, sub: Submodule, prefix: str, env: dict, out: list) -> None:
    local = {k: Num(v) for k, v in kind.arg_defaults.items()}
    local.update({k: substitute(v, env) for k, v in sub.args.items() if _is_expr(v)})

    def flag(key: str):
        try:
            return evaluate(local[key], program.params) if key in local else True
        except ExprError:
            return True

    for name in kind.parameters(sub, flag):
        path = prefix + sub.name + (f".{name}" if name else "")
        parts = [(f"{prefix}{part}.{name}" if name else prefix + part, substitute(rows, env))
                 for part, rows in sub.parts]
        out.append(Param(path, sub.kind, name, sub, local, parts,
                         tied=name == "weight" and sub.tie is not None))
