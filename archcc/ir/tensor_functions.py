"""Tensor functions of the wiring language, each in one place: how a call is read, its shape
rule and its PyTorch spelling.

They say what PyTorch says, so a forward reads like the model's own code::

    scores = einsum("bhtd,bhsd->bhts", q, k)
    keep = arange(x, dim=1) < lengths[:, None]
    picked = gather(probs, -1, index)
    values, indices = topk(logits, 5)
    a, b = chunk(x, 2, dim=-1)
    h = reshape(h, -1, n_embd)
    y = stack(a, b, dim=0)
    mask = to(x > 0, float32)

Arguments that are not tensors (dims, counts, sizes, the dtype, the equation) are fixed when
the spec is compiled: integers or param expressions, checked here with a located error. Rules
register into the IR's table (``shapes.register_rule``); spellings into :data:`RENDERERS`,
which the code generator reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from archcc.codegen import safe_text
from archcc.ir import dtypes as types
from archcc.ir.forward_attention import _param_value
from archcc.ir.params import to_sympy
from archcc.ir.shapes import ShapeError, _norm_dim, fmt, register_rule
from archcc.lazy import sympy
from archcc.parser.expr import PRECEDENCE, Call, Expr, Name, Neg, Num, Str, wrap

if TYPE_CHECKING:
    from archcc.ir.forward import ForwardInterpreter

ATOM = PRECEDENCE["atom"]
RENDERERS: dict[str, Callable] = {}
READERS: dict[str, Callable] = {}
MULTI = ("chunk", "split_sizes", "topk")  # assigned to several names: ``a, b = chunk(x, 2)``


def _function(name: str):
    """Register how ``name(...)`` is read; the reader returns the result node."""
    def decorate(reader: Callable) -> Callable:
        READERS[name] = reader
        return reader
    return decorate


def _renders(op: str):
    def decorate(fn: Callable) -> Callable:
        RENDERERS[op] = fn
        return fn
    return decorate


def _atom(arg) -> str:
    return wrap(arg[0], arg[1], ATOM)


# ------------------------------------------------------------------------- arguments


def _usage(fi: ForwardInterpreter, e: Call, positional: tuple[int, int], keywords: tuple,
           usage: str) -> dict[str, Expr]:
    low, high = positional
    unknown = [k for k, _ in e.kwargs if k not in keywords]
    if unknown or not low <= len(e.args) <= high:
        fi.fail(e.pos, f"{e.func}() takes {usage}" + (f", not keyword '{unknown[0]}'"
                                                      if unknown else f", got {len(e.args)} "
                                                      "argument(s)"), f"write {usage}")
    return dict(e.kwargs)


def _int(fi: ForwardInterpreter, e: Expr | None, default: int | None = None) -> int:
    if e is None:
        return default
    return fi._static_int(e)


def _size(fi: ForwardInterpreter, e: Expr) -> Expr:
    """A size argument: -1 or a param expression (kept symbolic, checked now)."""
    if isinstance(e, Neg) and isinstance(e.operand, Num) and e.operand.value == 1:
        return Num(-1, e.pos)
    if fi._static_int(e) < 1:
        fi.fail(e.pos, f"sizes must be positive (or one -1), got {fi._static_int(e)}")
    return e


def _tensors(fi: ForwardInterpreter, args) -> list[str]:
    nodes = [fi._expr(a) for a in args]
    for node, arg in zip(nodes, args, strict=True):
        if fi.g.nodes[node]["op"] == "const":
            fi.fail(arg.pos, "expected a tensor, got a number",
                    "numbers (dims, sizes) go where the function takes them")
    return nodes


# ------------------------------------------------------------------------------ casts


@_function("to")
def _to(fi: ForwardInterpreter, e: Call) -> str:
    """``to(x, float16)``: a cast; the dtype is one of float32, float16, bfloat16, int64,
    bool."""
    _usage(fi, e, (2, 2), (), "to(x, dtype)")
    dtype = e.args[1]
    if not (isinstance(dtype, Name) and dtype.id in types.DTYPES):
        fi.fail(getattr(dtype, "pos", e.pos), "to() casts to a dtype",
                f"dtypes: {', '.join(types.DTYPES)}")
    return fi.node("cast", _tensors(fi, e.args[:1]), e.pos, dtype=dtype.id)


# --------------------------------------------------------------------------- reshape


@_function("reshape")
@_function("view")
def _reshape(fi: ForwardInterpreter, e: Call) -> str:
    """``reshape(x, -1, n_head, head_dim)``: sizes are param expressions, one may be -1."""
    _usage(fi, e, (2, 16), (), f"{e.func}(x, size, ...)")
    sizes = tuple(_size(fi, a) for a in e.args[1:])
    if sum(1 for s in sizes if isinstance(s, Num) and s.value == -1) > 1:
        fi.fail(e.pos, "only one size may be -1")
    return fi.node("reshape", _tensors(fi, e.args[:1]), e.pos, sizes=sizes,
                   method=e.func)


@register_rule("reshape")
def _reshape_rule(ctx, attrs, shapes, dtypes):
    total = sympy.Mul(*shapes[0])
    known = [to_sympy(s) for s in attrs["sizes"] if not (isinstance(s, Num) and s.value == -1)]
    out = []
    for s in attrs["sizes"]:
        if isinstance(s, Num) and s.value == -1:
            rest = sympy.simplify(total / sympy.Mul(*known))
            value = ctx.concrete(rest)
            if value.is_number and not value.is_integer:
                raise ShapeError(f"cannot reshape {fmt(shapes[0])} into "
                                 f"{fmt(tuple(known))} with one -1")
            out.append(rest)
        else:
            out.append(to_sympy(s))
    if all(not (isinstance(s, Num) and s.value == -1) for s in attrs["sizes"]) and \
            not ctx.equal(sympy.Mul(*out), total):
        raise ShapeError(f"cannot reshape {fmt(shapes[0])} into {fmt(tuple(out))}",
                         "the element counts differ; use -1 for one size")
    return tuple(out), dtypes[0]


@_renders("reshape")
def _render_reshape(attrs, args, expr, dtypes):
    sizes = ", ".join(expr(s) for s in attrs["sizes"])
    return f"{_atom(args[0])}.{attrs.get('method', 'reshape')}({sizes})", ATOM


@_function("permute")
def _permute(fi: ForwardInterpreter, e: Call) -> str:
    """``permute(x, 0, 2, 1, 3)``."""
    _usage(fi, e, (2, 16), (), "permute(x, dim, ...)")
    return fi.node("permute", _tensors(fi, e.args[:1]), e.pos,
                   dims=tuple(_int(fi, a) for a in e.args[1:]))


# ----------------------------------------------------------------------------- einsum

_EQUATION = re.compile(r"^[a-zA-Z]+(,[a-zA-Z]+)*->[a-zA-Z]*$")


@_function("einsum")
def _einsum(fi: ForwardInterpreter, e: Call) -> str:
    """``einsum("bhtd,bhsd->bhts", q, k)``: explicit output, one letter per dim."""
    _usage(fi, e, (2, 8), (), 'einsum("ij,jk->ik", a, b)')
    equation = e.args[0]
    text = equation.value.replace(" ", "") if isinstance(equation, Str) else ""
    if not _EQUATION.match(text) or len(text.split("->")[0].split(",")) != len(e.args) - 1:
        fi.fail(getattr(equation, "pos", e.pos), "einsum needs an equation such as "
                '"bhtd,bhsd->bhts" with one term per tensor and an explicit output',
                "letters name dims; a letter in the output appears in some input")
    return fi.node("einsum", _tensors(fi, e.args[1:]), e.pos, equation=text)


@register_rule("einsum")
def _einsum_rule(ctx, attrs, shapes, dtypes):
    inputs, output = attrs["equation"].split("->")
    sizes: dict[str, sympy.Expr] = {}
    for term, shape in zip(inputs.split(","), shapes, strict=True):
        if len(term) != len(shape):
            raise ShapeError(f"einsum term '{term}' has {len(term)} letters for a "
                             f"rank-{len(shape)} tensor {fmt(shape)}")
        for letter, dim in zip(term, shape, strict=True):
            if letter in sizes and not (ctx.equal(sizes[letter], dim) or ctx.is_one(dim)):
                raise ShapeError(f"einsum dim '{letter}' is {sizes[letter]} in one tensor "
                                 f"and {dim} in another")
            sizes.setdefault(letter, dim)
    missing = [c for c in output if c not in sizes]
    if missing:
        raise ShapeError(f"einsum output letter '{missing[0]}' is in no input")
    return tuple(sizes[c] for c in output), types.result([(d, False) for d in dtypes])


@_renders("einsum")
def _render_einsum(attrs, args, expr, dtypes):
    return (f"torch.einsum({safe_text.string(attrs['equation'])}, "
            f"{', '.join(a[0] for a in args)})"), ATOM


# ------------------------------------------------------------------- gather, select


@_function("gather")
def _gather(fi: ForwardInterpreter, e: Call) -> str:
    """``gather(x, dim, index)``: torch.gather; index is int64 of x's rank."""
    _usage(fi, e, (3, 3), (), "gather(x, dim, index)")
    x, index = _tensors(fi, [e.args[0], e.args[2]])
    return fi.node("gather", [x, index], e.pos, dim=_int(fi, e.args[1]))


@register_rule("gather")
def _gather_rule(ctx, attrs, shapes, dtypes):
    x, index = shapes
    if dtypes[1] != types.INT or len(index) != len(x):
        raise ShapeError(f"gather needs int64 indices of the same rank as {fmt(x)}, got "
                         f"{dtypes[1]} {fmt(index)}")
    _norm_dim(attrs["dim"], len(x))
    return index, dtypes[0]


@_renders("gather")
def _render_gather(attrs, args, expr, dtypes):
    return f"torch.gather({args[0][0]}, {attrs['dim']}, {args[1][0]})", ATOM


@_function("index_select")
def _index_select(fi: ForwardInterpreter, e: Call) -> str:
    """``index_select(x, dim, index)``: rows of x along dim, index int64 (n,)."""
    _usage(fi, e, (3, 3), (), "index_select(x, dim, index)")
    x, index = _tensors(fi, [e.args[0], e.args[2]])
    return fi.node("index_select", [x, index], e.pos, dim=_int(fi, e.args[1]))


@register_rule("index_select")
def _index_select_rule(ctx, attrs, shapes, dtypes):
    x, index = shapes
    if dtypes[1] != types.INT or len(index) != 1:
        raise ShapeError(f"index_select needs a 1-D int64 index, got {dtypes[1]} {fmt(index)}")
    d = _norm_dim(attrs["dim"], len(x))
    return (*x[:d], index[0], *x[d + 1:]), dtypes[0]


@_renders("index_select")
def _render_index_select(attrs, args, expr, dtypes):
    return f"torch.index_select({args[0][0]}, {attrs['dim']}, {args[1][0]})", ATOM


# ------------------------------------------------------------------ reductions, scans


@_function("cumsum")
def _cumsum(fi: ForwardInterpreter, e: Call) -> str:
    """``cumsum(x, dim=-1)``."""
    keywords = _usage(fi, e, (1, 1), ("dim",), "cumsum(x, dim=d)")
    return fi.node("cumsum", _tensors(fi, e.args), e.pos, dim=_int(fi, keywords.get("dim"),
                                                                       -1))


@register_rule("cumsum")
def _cumsum_rule(ctx, attrs, shapes, dtypes):
    _norm_dim(attrs["dim"], len(shapes[0]))
    return shapes[0], types.INT if dtypes[0] == types.BOOL else dtypes[0]


@_renders("cumsum")
def _render_cumsum(attrs, args, expr, dtypes):
    return f"{_atom(args[0])}.cumsum({attrs['dim']})", ATOM


@_function("topk")
def _topk(fi: ForwardInterpreter, e: Call) -> str:
    """``values, indices = topk(x, k, dim=-1)``."""
    keywords = _usage(fi, e, (2, 2), ("dim",), "values, indices = topk(x, k, dim=d)")
    if fi._static_int(e.args[1]) < 1:
        fi.fail(e.args[1].pos, "topk's k must be at least 1")
    return fi.node("topk", _tensors(fi, e.args[:1]), e.pos, k=e.args[1],
                   dim=_int(fi, keywords.get("dim"), -1), outputs=2,
                   output_dtypes=(None, types.INT))


@register_rule("topk")
def _topk_rule(ctx, attrs, shapes, dtypes):
    x = shapes[0]
    d = _norm_dim(attrs["dim"], len(x))
    k = to_sympy(attrs["k"])
    size = ctx.concrete(x[d])
    if size.is_number and ctx.concrete(k) > size:
        raise ShapeError(f"topk's k ({ctx.concrete(k)}) exceeds the dim's size {size}")
    part = (*x[:d], k, *x[d + 1:])
    return (part, part), dtypes[0]


@_renders("topk")
def _render_topk(attrs, args, expr, dtypes):
    return f"{_atom(args[0])}.topk({expr(attrs['k'])}, dim={attrs['dim']})", ATOM


# ------------------------------------------------------------ chunk, split, stack


@_function("chunk")
def _chunk(fi: ForwardInterpreter, e: Call) -> str:
    """``a, b = chunk(x, 2, dim=-1)``: equal parts (the dim must divide)."""
    keywords = _usage(fi, e, (2, 2), ("dim",), "a, b = chunk(x, n, dim=d)")
    parts = fi._static_int(e.args[1])
    if parts < 1:
        fi.fail(e.args[1].pos, "chunk needs at least one part")
    return fi.node("chunk", _tensors(fi, e.args[:1]), e.pos, chunks=parts,
                   dim=_int(fi, keywords.get("dim"), -1), outputs=parts)


@register_rule("chunk")
def _chunk_rule(ctx, attrs, shapes, dtypes):
    x = shapes[0]
    d = _norm_dim(attrs["dim"], len(x))
    size = ctx.concrete(x[d] / attrs["chunks"])
    if size.is_number and not size.is_integer:
        raise ShapeError(f"chunk: dim {x[d]} ({ctx.concrete(x[d])}) does not split into "
                         f"{attrs['chunks']} equal parts")
    part = (*x[:d], x[d] / attrs["chunks"], *x[d + 1:])
    return tuple(part for _ in range(attrs["chunks"])), dtypes[0]


@_renders("chunk")
def _render_chunk(attrs, args, expr, dtypes):
    return f"{_atom(args[0])}.chunk({attrs['chunks']}, dim={attrs['dim']})", ATOM


@_function("stack")
def _stack(fi: ForwardInterpreter, e: Call) -> str:
    """``stack(a, b, dim=0)``: equal shapes, a new dim."""
    keywords = _usage(fi, e, (2, 16), ("dim",), "stack(a, b, ..., dim=d)")
    return fi.node("stack", _tensors(fi, e.args), e.pos, dim=_int(fi, keywords.get("dim"), 0))


@register_rule("stack")
def _stack_rule(ctx, attrs, shapes, dtypes):
    first = shapes[0]
    for other in shapes[1:]:
        if len(other) != len(first) or not all(ctx.equal(a, b) for a, b in
                                               zip(first, other, strict=True)):
            raise ShapeError(f"stack needs equal shapes, got {fmt(first)} and {fmt(other)}")
    d = attrs["dim"] % (len(first) + 1)
    return (*first[:d], sympy.Integer(len(shapes)), *first[d:]), \
        types.result([(t, False) for t in dtypes])


@_renders("stack")
def _render_stack(attrs, args, expr, dtypes):
    return f"torch.stack([{', '.join(a[0] for a in args)}], dim={attrs['dim']})", ATOM


# ------------------------------------------------------------- new tensors like x


def _like(fill: str):
    def read(fi: ForwardInterpreter, e: Call) -> str:
        arity = (2, 2) if fill == "full" else (1, 1)
        usage = f"{fill}_like(x{', value' if fill == 'full' else ''})"
        _usage(fi, e, arity, (), usage)
        value = e.args[1] if fill == "full" else None
        if value is not None:
            _param_value(fi, value, "full_like's value")
        return fi.node("like", _tensors(fi, e.args[:1]), e.pos, fill=fill, value=value)
    return read


for _fill in ("zeros", "ones", "full"):
    _function(f"{_fill}_like")(_like(_fill))


@register_rule("like")
def _like_rule(ctx, attrs, shapes, dtypes):
    return shapes[0], dtypes[0]


@_renders("like")
def _render_like(attrs, args, expr, dtypes):
    if attrs["fill"] == "full":
        return f"torch.full_like({args[0][0]}, {expr(attrs['value'])})", ATOM
    return f"torch.{attrs['fill']}_like({args[0][0]})", ATOM


@_function("arange")
def _arange(fi: ForwardInterpreter, e: Call) -> str:
    """``arange(x, dim=1)``: 0, 1, ... along a dim of x, on x's device (int64)."""
    keywords = _usage(fi, e, (1, 1), ("dim",), "arange(x, dim=d)")
    return fi.node("arange", _tensors(fi, e.args), e.pos, dim=_int(fi, keywords.get("dim"), -1))


@register_rule("arange")
def _arange_rule(ctx, attrs, shapes, dtypes):
    d = _norm_dim(attrs["dim"], len(shapes[0]))
    return (shapes[0][d],), types.INT


@_renders("arange")
def _render_arange(attrs, args, expr, dtypes):
    x = _atom(args[0])
    return f"torch.arange({x}.shape[{attrs['dim']}], device={x}.device)", ATOM


# ------------------------------------------------------------------------- where


def where3(fi: ForwardInterpreter, e: Call) -> str:
    """``where(cond, a, b)`` of tensors: torch.where (with a number as ``b`` the masking
    reading of :func:`archcc.ir.forward_attention.where` applies instead). A condition over
    params chooses one of two computations, ``a if config.flag else b``, so a Config value
    such as CLIP's ``eos_token_id`` is honoured rather than baked in."""
    cond, a, b = (fi._expr(x) for x in e.args)
    if fi.g.nodes[cond]["op"] == "const":
        return fi.node("choose", [a, b], e.pos, cond=e.args[0])
    return fi.node("where", [cond, a, b], e.pos)


@register_rule("choose")
def _choose_rule(ctx, attrs, shapes, dtypes):
    a, b = shapes
    if len(a) != len(b) or not all(ctx.equal(x, y) for x, y in zip(a, b, strict=True)):
        raise ShapeError(f"where(param condition, a, b) needs a and b of one shape, got "
                         f"{fmt(a)} and {fmt(b)}")
    if dtypes[0] != dtypes[1]:
        raise ShapeError(f"where(param condition, a, b) needs a and b of one dtype, got "
                         f"{dtypes[0]} and {dtypes[1]}")
    return a, dtypes[0]


@_renders("choose")
def _render_choose(attrs, args, expr, dtypes):
    low = PRECEDENCE["lt"] - 2  # a conditional binds looser than any operator
    a, b = (wrap(x[0], x[1], low + 1) for x in args)
    return f"{a} if {expr(attrs['cond'])} else {b}", low


def assign_parts(fi: ForwardInterpreter, statement) -> None:
    """``a, b = chunk(x, 2)``, ``values, indices = topk(x, k)``: one name per part."""
    e = statement.value
    node = READERS[e.func](fi, e)
    data = fi.g.nodes[node]["attrs"]
    if len(statement.targets) != data["outputs"]:
        fi.fail(statement.pos, f"{e.func}() gives {data['outputs']} values, not "
                f"{len(statement.targets)}", "write one name per value")
    dtypes = data.get("output_dtypes") or (None,) * data["outputs"]
    for i, target in enumerate(statement.targets):
        part = fi.node("getitem", [node], statement.pos, var=target, index=i,
                       **({"dtype": dtypes[i]} if dtypes[i] else {}))
        fi.bind_name(statement, target, part)
