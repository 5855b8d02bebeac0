"""How each IR op reads as PyTorch: one small function per op, returning (text, precedence).

Inputs arrive already rendered, so inlining is just string composition with the right
parentheses. Every name in the output comes from a validated identifier or a fixed string
here; spec text never reaches generated code except as such identifiers and numbers.
"""

from __future__ import annotations

from collections.abc import Callable

from archcc.codegen import safe_text
from archcc.ir.kv_cache import CACHE
from archcc.parser.expr import PRECEDENCE, render, render_binary, wrap

Rendered = tuple[str, int]
ATOM = PRECEDENCE["atom"]
_CALL = {"relu": "F.relu", "gelu": "F.gelu", "silu": "F.silu", "tanh": "torch.tanh",
         "sigmoid": "torch.sigmoid"}


def method(x: Rendered, call: str) -> Rendered:
    """``x.call`` with ``x`` parenthesised if needed: ``(a + b).transpose(1, 2)``."""
    return f"{wrap(x[0], x[1], ATOM)}.{call}", ATOM


def render_op(op: str, attrs: dict, args: list[Rendered], expr: Callable,
              dtypes: list[str]) -> Rendered:
    """Python for one node; ``expr`` renders an attribute expression in this class's scope."""
    if op in ("add", "sub", "mul", "div", "pow", "matmul"):
        return render_binary(op, args[0], args[1])
    if op == "neg":
        return "-" + wrap(args[0][0], args[0][1], PRECEDENCE["neg"]), PRECEDENCE["neg"]
    if op in _CALL:
        return f"{_CALL[op]}({args[0][0]})", ATOM
    if op == "gelu_tanh":
        return f'F.gelu({args[0][0]}, approximate="tanh")', ATOM
    if op == "identity":
        return args[0]
    return _RENDERERS[op](attrs, args, expr, dtypes)


def _softmax(attrs, args, expr, dtypes):
    return f"F.softmax({args[0][0]}, dim={attrs['dim']})", ATOM


def _dropout(attrs, args, expr, dtypes):
    return f"F.dropout({args[0][0]}, {expr(attrs['p'])}, self.training)", ATOM


def _transpose(attrs, args, expr, dtypes):
    return method(args[0], f"transpose({attrs['dim0']}, {attrs['dim1']})")


def _unflatten(attrs, args, expr, dtypes):
    sizes = ", ".join(expr(s) for s in attrs["sizes"])
    return method(args[0], f"unflatten({attrs['dim']}, ({sizes}))")


def _flatten(attrs, args, expr, dtypes):
    end = attrs.get("end", -1)
    return method(args[0], f"flatten({attrs['start']}{'' if end == -1 else f', {end}'})")


def _split(attrs, args, expr, dtypes):
    return method(args[0], f"split({expr(attrs['size'])}, dim={attrs['dim']})")


def _subscript(attrs, args, expr, dtypes):
    parts = []
    for index in attrs["index"]:
        if isinstance(index, tuple):  # (lower, upper) or (lower, upper, step); None = open
            bounds = ["" if i is None else str(i) for i in index]
            parts.append(":".join(bounds) if len(bounds) == 2 or bounds[2] else
                         ":".join(bounds[:2]))
        else:  # an integer, "..." or None (a new axis)
            parts.append(str(index))
    return f"{wrap(args[0][0], args[0][1], ATOM)}[{', '.join(parts)}]", ATOM


def _positions(attrs, args, expr, dtypes):
    x = wrap(args[0][0], args[0][1], ATOM)
    if "pad" in attrs:  # RoBERTa: 1, 2, ... after the pad id over real tokens; pads get pad
        pad = expr(attrs["pad"])
        real = f"({x} != {pad})"
        return f"{real}.cumsum(1) * {real} + {pad}", PRECEDENCE["add"]  # bool cumsum: int64
    text, prec = f"torch.arange({x}.shape[1], device={x}.device)", ATOM
    if "offset" in attrs:  # BART: learned positions start at row `offset`
        text, prec = f"{text} + {expr(attrs['offset'])}", PRECEDENCE["add"]
    if len(args) == 2:  # generation facet: positions continue after the cached ones
        text, prec = f"past_length({args[1][0]}) + {text}", PRECEDENCE["add"]
    return text, prec


def _causal_mask(attrs, args, expr, dtypes):
    q, k = (wrap(a[0], a[1], ATOM) for a in args)
    # the size as one tuple: torch.fx cannot trace torch.ones(proxy, proxy, ...)
    # with a KV cache the queries are the last of the keys: the diagonal moves right
    diagonal = f"{k}.shape[-2] - {q}.shape[-2]" if attrs.get("from_end") else ""
    return (f"torch.ones(({q}.shape[-2], {k}.shape[-2]), dtype=torch.bool, "
            f"device={q}.device).tril({diagonal})"), ATOM


def _kv_cache(attrs, args, expr, dtypes):
    cache, k, v = (a[0] for a in args)
    return f"extend_kv({cache}, self, {k}, {v})", ATOM


def _key_padding_mask(attrs, args, expr, dtypes):
    # .bool() accepts the 1/0 integer masks Hugging Face users pass (a no-op on bool)
    return f"{wrap(args[0][0], args[0][1], ATOM)}[:, None, None, :].bool()", ATOM


def _masked_fill(attrs, args, expr, dtypes):
    value = attrs.get("value", "-inf")
    value = 'float("-inf")' if value == "-inf" else expr(value)
    if attrs.get("keep", True) is False:  # written as torch's masked_fill: fill where True
        return method(args[0], f"masked_fill({args[1][0]}, {value})")
    keep = wrap(args[1][0], args[1][1], PRECEDENCE["neg"])
    return method(args[0], f"masked_fill(~{keep}, {value})")


def _not(attrs, args, expr, dtypes):
    return "~" + wrap(args[0][0], args[0][1], PRECEDENCE["neg"]), PRECEDENCE["neg"]


def _and(attrs, args, expr, dtypes):
    return f"{args[0][0]} & {args[1][0]}", PRECEDENCE["add"] - 2


def _sdpa(attrs, args, expr, dtypes):
    parts = [a[0] for a in args[:3]]
    fold, q = attrs.get("fold"), wrap(args[0][0], args[0][1], ATOM)
    if fold:  # (B, nW, nh, N, hs) -> (B * nW, nh, N, hs): SDPA's fused kernels are 4-D
        parts = [f"{wrap(a[0], a[1], ATOM)}.flatten(0, 1)" for a in args[:3]]
    if len(args) > 3:
        mask = args[3][0]
        if fold == "mask":  # e.g. one (nW, nh, N, N) mask, the same for every image
            # indexed, not *q.shape[:2]: torch.fx cannot unpack a traced shape
            mask = (f"{wrap(args[3][0], args[3][1], ATOM)}.expand({q}.shape[0], {q}.shape[1], "
                    "-1, -1, -1).flatten(0, 1)")
        parts.append(f"attn_mask={mask}")
    if attrs.get("dropout") is not None:
        p = expr(attrs["dropout"])
        parts.append(f"dropout_p={p} if self.training else 0.0")
    if attrs.get("is_causal") == "from_end":
        # one cached step attends to every key; the test on the cache comes first so that
        # without one (torch.export, torch.fx) is_causal is a plain True, not a SymBool
        parts.append(f"is_causal=not isinstance({CACHE}, KVCache) or {q}.shape[-2] > 1")
    elif attrs.get("is_causal"):
        parts.append("is_causal=True")
    if attrs.get("scale") is not None:
        parts.append(f"scale={expr(attrs['scale'])}")
    call = f"F.scaled_dot_product_attention({', '.join(parts)})"
    if fold:
        return f"{call}.unflatten(0, {q}.shape[:2])", ATOM
    return call, ATOM


def _prepend(attrs, args, expr, dtypes):
    token, x = args[0][0], wrap(args[1][0], args[1][1], ATOM)
    return f"torch.cat([{token}.expand({x}.shape[0], 1, -1), {x}], dim=1)", ATOM


def _take_rows(attrs, args, expr, dtypes):
    table, like = (wrap(a[0], a[1], ATOM) for a in args[:2])
    start = f"past_length({args[2][0]})" if len(args) == 3 else "0"  # after cached positions
    return f"{table}.narrow(0, {start}, {like}.shape[1])", ATOM  # narrow: traceable by torch.fx


# ------------------------------------------------- integer index arithmetic (T5 buckets)
_COMPARE = PRECEDENCE["add"] - 4  # looser than arithmetic: `a + 1 > b` needs no parentheses
_CASTS = {"int64": "long", "float32": "float", "float16": "half", "bfloat16": "bfloat16",
          "bool": "bool"}


def _compare(symbol):
    def render_compare(attrs, args, expr, dtypes):
        a, b = (wrap(x[0], x[1], _COMPARE + 1) for x in args)
        return f"{a} {symbol} {b}", _COMPARE
    return render_compare


def _cast(attrs, args, expr, dtypes):
    return method(args[0], f"{_CASTS[attrs['dtype']]}()")


def _clamp(attrs, args, expr, dtypes):
    bounds = [f"{k}={expr(attrs[k])}" for k in ("min", "max") if attrs.get(k) is not None]
    return method(args[0], f"clamp({', '.join(bounds)})")


def _where(attrs, args, expr, dtypes):
    return f"torch.where({', '.join(a[0] for a in args)})", ATOM


def _relative_position(attrs, args, expr, dtypes):
    x = wrap(args[0][0], args[0][1], ATOM)
    at = f"torch.arange({x}.shape[1], device={x}.device)"
    if len(args) == 2:  # generation facet: queries are the last T of P + T keys
        past = f"past_length({args[1][0]})"
        keys = f"torch.arange({past} + {x}.shape[1], device={x}.device)"
        return f"{keys}[None, :] - ({past} + {at})[:, None]", PRECEDENCE["add"]
    return f"{at}[None, :] - {at}[:, None]", PRECEDENCE["add"]


_RENDERERS = {
    "softmax": _softmax, "dropout": _dropout, "transpose": _transpose,
    "unflatten": _unflatten, "flatten": _flatten, "split": _split, "subscript": _subscript,
    "positions": _positions, "causal_mask": _causal_mask, "key_padding_mask": _key_padding_mask,
    "masked_fill": _masked_fill, "and": _and, "sdpa": _sdpa, "prepend": _prepend,
    "take_rows": _take_rows, "not": _not,
    "gt": _compare(">"), "lt": _compare("<"), "ge": _compare(">="), "le": _compare("<="),
    "eq": _compare("=="), "ne": _compare("!="), "cast": _cast, "clamp": _clamp, "where": _where,
    "abs": lambda attrs, args, expr, dtypes: method(args[0], "abs()"),
    "log": lambda attrs, args, expr, dtypes: (f"torch.log({args[0][0]})", ATOM),
    "permute": lambda attrs, args, expr, dtypes: method(
        args[0], f"permute({', '.join(map(str, attrs['dims']))})"),
    "unsqueeze": lambda attrs, args, expr, dtypes: method(args[0], f"unsqueeze({attrs['dim']})"),
    "relative_position": _relative_position,
    "kv_cache": _kv_cache,
}

# primitives of image and two-tower models (conv nets, UNets, CLIP): render_image.py
from archcc.codegen.render_image import IMAGE_RENDERERS  # noqa: E402 - uses the helpers above

_RENDERERS.update(IMAGE_RENDERERS)


def render_expr(value, resolve: Callable[[str], str]) -> str:
    """Render an attribute expression (or plain literal) with names mapped by ``resolve``."""
    if hasattr(value, "pos"):
        return render(value, resolve)
    return safe_text.literal(value)

# Sequence primitives (ports of tuple-valued calls, packing, pooling, cat) live beside.
from archcc.codegen.render_seq import RENDERERS as _SEQUENCE_RENDERERS  # noqa: E402

_RENDERERS.update(_SEQUENCE_RENDERERS)

from archcc.codegen.render_vision import VISION_RENDERERS  # noqa: E402 - needs method above

_RENDERERS.update(VISION_RENDERERS)

# The wiring language's tensor functions (einsum, gather, topk, ...) define their spelling
# beside their reading and shape rule.
from archcc.ir.tensor_functions import RENDERERS as _TENSOR_RENDERERS  # noqa: E402

_RENDERERS.update(_TENSOR_RENDERERS)
