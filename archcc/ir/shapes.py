"""Symbolic shape rules for primitive IR ops.

Dims are sympy expressions over input symbols (B, T) and param names (n_embd), so a
mismatch is found before any tensor exists and reported in the spec's own words::

    (B, T, n_embd) + (B, T, 4*n_embd)  ->  ShapeError("shapes (B, T, n_embd) and ...")

Two dims are equal when they agree after substituting concrete param values; input symbols
stay symbolic, so ``T`` and ``T + 1`` never match.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from archcc.ir import dtypes as types
from archcc.ir.params import to_sympy
from archcc.lazy import sympy

Shape = tuple  # of sympy dims: (B, T, n_embd); kept plain so importing this needs no sympy
FLOAT, INT, BOOL = "float32", "int64", "bool"


class ShapeError(ValueError):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint


@dataclass
class DimContext:
    """Substitutions that make dims comparable: param values, derived scalar definitions."""

    subs: dict[sympy.Symbol, sympy.Expr] = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def concrete(self, dim: sympy.Expr) -> sympy.Expr:
        value = sympy.sympify(dim)
        for _ in range(3):  # derived scalars may refer to each other
            used = {s: self.subs[s] for s in value.free_symbols if s in self.subs}
            if not used:  # only the symbols present: a stage loop's context is large
                break
            value = value.subs(used)
        return value

    def equal(self, a: sympy.Expr, b: sympy.Expr) -> bool:
        if a == b:
            return True
        key = (a, b)
        if key not in self._cache:
            self._cache[key] = self._equal(a, b)
        return self._cache[key]

    def _equal(self, a: sympy.Expr, b: sympy.Expr) -> bool:
        ca, cb = self.concrete(a), self.concrete(b)
        if ca.is_number and cb.is_number:  # the common case: plain numbers
            return bool(ca == cb)
        diff = sympy.expand(ca - cb)
        if diff == 0 or diff.is_number:
            return diff == 0
        # rational dims such as H/patch * W/patch: compare numerators (sympy.simplify is slow)
        numerator, _ = sympy.fraction(sympy.together(diff))
        return sympy.expand(numerator) == 0

    def is_one(self, a: sympy.Expr) -> bool:
        return self.equal(a, sympy.Integer(1))


def fmt(shape: Shape | None) -> str:
    """``(B, T, n_embd)``: how shapes appear in comments and messages."""
    if shape is None:
        return "(?)"
    return "(" + ", ".join(str(d).replace("**", "^") for d in shape) + ")"


def _norm_dim(dim: int, rank: int) -> int:
    if not -rank <= dim < rank:
        raise ShapeError(f"dim {dim} is out of range for a rank-{rank} tensor")
    return dim % rank


def broadcast(ctx: DimContext, a: Shape, b: Shape) -> Shape:
    """torch broadcasting, symbolically."""
    out = []
    for i in range(max(len(a), len(b))):
        da = a[len(a) - 1 - i] if i < len(a) else sympy.Integer(1)
        db = b[len(b) - 1 - i] if i < len(b) else sympy.Integer(1)
        if ctx.is_one(da):
            out.append(db)
        elif ctx.is_one(db) or ctx.equal(da, db):
            out.append(da)
        else:
            raise ShapeError(f"shapes {fmt(a)} and {fmt(b)} do not broadcast",
                             f"dim {-1 - i} differs: {da} vs {db}")
    return tuple(reversed(out))


def _operands(shapes, dtypes) -> list[tuple[str, bool]]:
    """(dtype, is a scalar) per input: params and literals have shape ()."""
    return [(d, s == ()) for s, d in zip(shapes, dtypes, strict=True)]


def elementwise(ctx, attrs, shapes, dtypes):
    shape = shapes[0]
    for other in shapes[1:]:
        shape = broadcast(ctx, shape, other)
    return shape, types.result(_operands(shapes, dtypes))


def division(ctx, attrs, shapes, dtypes):
    """``a / b``: true division, so integers give the default float."""
    shape, _ = elementwise(ctx, attrs, shapes, dtypes)
    return shape, types.division(_operands(shapes, dtypes))


def same(ctx, attrs, shapes, dtypes):
    """Shape and dtype unchanged (relu, identity, dropout keep int64 as torch does)."""
    return shapes[0], dtypes[0]


def float_only(name: str) -> Callable:
    """The rule of a function torch defines on floats only (gelu, softmax, ...)."""
    def rule(ctx, attrs, shapes, dtypes):
        if not types.is_float(dtypes[0]):
            raise ShapeError(f"{name} needs a floating-point tensor, got {dtypes[0]}",
                             "cast it first: to(x, float32)")
        return shapes[0], dtypes[0]
    return rule


def to_float(ctx, attrs, shapes, dtypes):
    """tanh, sigmoid, exp, log...: integers become the default float, floats stay."""
    return shapes[0], dtypes[0] if types.is_float(dtypes[0]) else types.DEFAULT_FLOAT


def logical(ctx, attrs, shapes, dtypes):
    shape = shapes[0]
    for other in shapes[1:]:
        shape = broadcast(ctx, shape, other)
    return shape, BOOL


def matmul(ctx, attrs, shapes, dtypes):
    a, b = shapes
    if len(a) < 2 or len(b) < 2:
        raise ShapeError(f"matmul needs rank >= 2, got {fmt(a)} @ {fmt(b)}")
    if not ctx.equal(a[-1], b[-2]):
        raise ShapeError(f"matmul inner dims differ: {fmt(a)} @ {fmt(b)}",
                         f"{a[-1]} (last of left) must equal {b[-2]} (second-last of right)")
    batch = broadcast(ctx, a[:-2], b[:-2])
    return (*batch, a[-2], b[-1]), types.result([(d, False) for d in dtypes])


def transpose(ctx, attrs, shapes, dtypes):
    shape = list(shapes[0])
    d0, d1 = (_norm_dim(d, len(shape)) for d in (attrs["dim0"], attrs["dim1"]))
    shape[d0], shape[d1] = shape[d1], shape[d0]
    return tuple(shape), dtypes[0]


def unflatten(ctx, attrs, shapes, dtypes):
    shape = shapes[0]
    d = _norm_dim(attrs["dim"], len(shape))
    sizes = tuple(to_sympy(s) for s in attrs["sizes"])
    if not ctx.equal(sympy.Mul(*sizes), shape[d]):
        raise ShapeError(f"cannot unflatten dim {shape[d]} into {fmt(sizes)}")
    return (*shape[:d], *sizes, *shape[d + 1:]), dtypes[0]


def flatten(ctx, attrs, shapes, dtypes):
    shape = shapes[0]
    start = _norm_dim(attrs["start"], len(shape))
    end = _norm_dim(attrs.get("end", -1), len(shape))
    return (*shape[:start], sympy.Mul(*shape[start:end + 1]), *shape[end + 1:]), dtypes[0]


def split(ctx, attrs, shapes, dtypes):
    shape = shapes[0]
    d = _norm_dim(attrs["dim"], len(shape))
    size = to_sympy(attrs["size"])
    parts = ctx.concrete(shape[d] / size)
    if not (parts.is_integer and parts.is_number):
        raise ShapeError(f"cannot split dim {shape[d]} into chunks of {size}")
    part = (*shape[:d], size, *shape[d + 1:])
    return tuple(part for _ in range(int(parts))), dtypes[0]


def getitem(ctx, attrs, shapes, dtypes):
    """One part of a tuple-valued node; ``attrs.dtype`` where parts differ (topk's int64
    indices)."""
    return shapes[0][attrs["index"]], attrs.get("dtype") or dtypes[0]


def subscript(ctx, attrs, shapes, dtypes):
    """``x[1:, ..., None, ::2, -1]`` as PyTorch reads it: integers drop a dim, slices keep
    it (negative bounds count from the end), ``...`` stands for the dims not named, ``None``
    adds one of size 1."""
    shape, index = list(shapes[0]), list(attrs["index"])
    if index.count("...") > 1:
        raise ShapeError("an index can have only one ...")
    named = sum(1 for i in index if i not in ("...", "None"))
    if named > len(shape):
        raise ShapeError(f"too many indices for a rank-{len(shape)} tensor {fmt(shapes[0])}")
    if "..." in index:
        at = index.index("...")
        index[at:at + 1] = [(None, None)] * (len(shape) - named)
    out, dims = [], iter(shape)
    for item in index:
        if item == "None":
            out.append(sympy.Integer(1))
        elif isinstance(item, tuple):
            out.append(_slice_length(ctx, next(dims), *item))
        else:
            _check_index(ctx, next(dims), item)
    return (*out, *dims), dtypes[0]


def _slice_length(ctx, dim, lower, upper, step=None):
    """Length of ``dim[lower:upper:step]``; symbolic dims are assumed longer than the
    bounds written (``x[:, -1:]`` has length 1 for any T)."""
    def bound(i, default):
        if i is None:
            return default
        return dim + i if i < 0 else sympy.Min(dim, i) if ctx.concrete(dim).is_number else i
    length = sympy.Max(bound(upper, dim) - bound(lower, 0), 0)
    if sympy.Max in {type(a) for a in sympy.preorder_traversal(length)} and \
            ctx.concrete(length - (bound(upper, dim) - bound(lower, 0))) == 0:
        length = bound(upper, dim) - bound(lower, 0)  # non-negative for these params
    if step not in (None, 1):
        exact = length / step  # the plain quotient where the params make it whole
        length = exact if ctx.concrete(exact).is_integer else sympy.ceiling(exact)
    return length


def _check_index(ctx, dim, index: int) -> None:
    size = ctx.concrete(dim)
    if size.is_number and not -size <= index < size:
        raise ShapeError(f"index {index} is out of range for a dim of size {size}")


def positions(ctx, attrs, shapes, dtypes):
    if len(shapes[0]) < 2:
        raise ShapeError(f"positions() needs a (B, T, ...) tensor, got {fmt(shapes[0])}")
    if "pad" in attrs:  # numbered per sequence, skipping pads: one row per batch element
        if dtypes[0] != INT or len(shapes[0]) != 2:
            raise ShapeError(f"positions(ids, pad=...) needs int64 ids (B, T), got "
                             f"{fmt(shapes[0])} {dtypes[0]}")
        return tuple(shapes[0]), INT
    return (shapes[0][1],), INT


def causal_mask(ctx, attrs, shapes, dtypes):
    q, k = shapes
    return (q[-2], k[-2]), BOOL


def key_padding_mask(ctx, attrs, shapes, dtypes):
    if len(shapes[0]) != 2:
        raise ShapeError(f"a key-padding mask is (B, S), got {fmt(shapes[0])}")
    b, s = shapes[0]
    return (b, sympy.Integer(1), sympy.Integer(1), s), BOOL


def masked_fill(ctx, attrs, shapes, dtypes):
    if dtypes[1] != BOOL:
        raise ShapeError(f"the mask of masked_fill/where must be bool, got {dtypes[1]}",
                         "compare it or make it a bool input; float masks are added instead")
    if broadcast(ctx, shapes[0], shapes[1]) != tuple(shapes[0]):
        raise ShapeError(f"mask {fmt(shapes[1])} would grow the values {fmt(shapes[0])}")
    return shapes[0], dtypes[0]


def sdpa(ctx, attrs, shapes, dtypes):
    q, k, v = shapes[:3]
    matmul(ctx, {}, [q, k[:-2] + (k[-1], k[-2])], dtypes)
    return (*q[:-1], v[-1]), FLOAT


def prepend(ctx, attrs, shapes, dtypes):
    token, x = shapes
    rank_one = len(token) == 1  # CLIP's class_embedding is (D,)
    if not rank_one and (len(token) != 3 or not ctx.is_one(token[0])
                         or not ctx.is_one(token[1])):
        raise ShapeError(f"prepend() needs a (1, 1, D) or (D,) token, got {fmt(token)}")
    if len(x) != 3:
        raise ShapeError(f"prepend() needs a (B, T, D) sequence, got {fmt(x)}")
    if not ctx.equal(token[-1], x[2]):
        raise ShapeError(f"token width {token[-1]} differs from sequence width {x[2]}")
    return (x[0], x[1] + 1, x[2]), dtypes[1]


def take_rows(ctx, attrs, shapes, dtypes):
    table, like = shapes[:2]  # a third input is a KV cache (the first row to take)
    return (like[1], *table[1:]), dtypes[0]


# ------------------------------------------------- integer index arithmetic (T5 buckets)


def keep(ctx, attrs, shapes, dtypes):
    """Shape and dtype unchanged (``x.abs()``, ``-x``, ``x.clamp(...)`` on int64 stay int64)."""
    return shapes[0], dtypes[0]


def compare(ctx, attrs, shapes, dtypes):
    return broadcast(ctx, shapes[0], shapes[1]), BOOL


def cast(ctx, attrs, shapes, dtypes):
    return shapes[0], attrs["dtype"]


def where(ctx, attrs, shapes, dtypes):
    shape = broadcast(ctx, broadcast(ctx, shapes[0], shapes[1]), shapes[2])
    return shape, types.result(_operands(shapes[1:], dtypes[1:]))


def permute(ctx, attrs, shapes, dtypes):
    shape = shapes[0]
    if sorted(attrs["dims"]) != list(range(len(shape))):
        raise ShapeError(f"permute{attrs['dims']} does not fit a rank-{len(shape)} tensor")
    return tuple(shape[d] for d in attrs["dims"]), dtypes[0]


def unsqueeze(ctx, attrs, shapes, dtypes):
    shape = list(shapes[0])
    shape.insert(attrs["dim"] % (len(shape) + 1), sympy.Integer(1))
    return tuple(shape), dtypes[0]


def relative_position(ctx, attrs, shapes, dtypes):
    """(B, T, ...) -> (T, T) int64 offsets: key position minus query position."""
    if len(shapes[0]) < 2:
        raise ShapeError(f"relative positions need a (B, T, ...) tensor, got {fmt(shapes[0])}")
    keys = shapes[0][1]
    if len(shapes) == 2:  # after a KV cache's P positions (ir/kv_cache.py)
        keys = keys + sympy.Symbol("P", integer=True, nonnegative=True)
    return (shapes[0][1], keys), INT


def kv_cache(ctx, attrs, shapes, dtypes):
    """(cache, k, v) -> (k, v) with the P cached positions in front (see ir/kv_cache.py)."""
    past = sympy.Symbol("P", integer=True, nonnegative=True)
    return tuple((*s[:-2], past + s[-2], s[-1]) for s in shapes[1:]), dtypes[1]


RULES: dict[str, Callable] = {
    "add": elementwise, "sub": elementwise, "mul": elementwise, "div": division,
    "pow": elementwise, "neg": keep, "relu": same, "gelu": float_only("gelu"),
    "gelu_tanh": float_only("gelu_tanh"), "silu": float_only("silu"), "tanh": to_float,
    "sigmoid": to_float, "identity": same, "softmax": float_only("softmax"),
    "dropout": same, "and": logical, "not": logical, "matmul": matmul,
    "transpose": transpose, "unflatten": unflatten, "flatten": flatten, "split": split,
    "getitem": getitem, "subscript": subscript, "positions": positions,
    "causal_mask": causal_mask, "key_padding_mask": key_padding_mask,
    "masked_fill": masked_fill, "sdpa": sdpa, "prepend": prepend, "take_rows": take_rows,
    "abs": keep, "clamp": keep, "gt": compare, "lt": compare, "ge": compare,
    "le": compare, "eq": compare, "ne": compare, "cast": cast, "log": to_float,
    "where": where, "permute": permute, "unsqueeze": unsqueeze,
    "relative_position": relative_position,
    "kv_cache": kv_cache,
}

# Sequence primitives (ports of tuple-valued calls, packing, pooling, cat) live beside.
from archcc.ir.shapes_seq import RULES as _SEQUENCE_RULES  # noqa: E402

RULES.update(_SEQUENCE_RULES)

# primitives of image and two-tower models (conv nets, UNets, CLIP): shapes_image.py
from archcc.ir.shapes_image import IMAGE_RULES  # noqa: E402 - it uses the helpers above

RULES.update(IMAGE_RULES)

from archcc.ir.shapes_vision import VISION_RULES  # noqa: E402 - needs the helpers above

RULES.update(VISION_RULES)


def register_rule(op: str) -> Callable[[Callable], Callable]:
    """Decorator: the shape rule of a primitive an op module defines for its own lowered
    class (``rnn_decode``: a decoder loop that codegen writes from facets)."""
    def decorate(rule: Callable) -> Callable:
        RULES[op] = rule
        return rule
    return decorate
