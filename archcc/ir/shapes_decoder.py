"""Shape rules of the decoder-LLM primitives: rotary angles, grouped-query repeats, sliding
windows, soft-capping.

    rope_angles(x (B, nh, T, hs), dim=rot)   -> ((T, rot), (T, rot))    cos, sin
    rope(x, cos, sin)                        -> x's shape              apply_rotary
    repeat_kv(k (B, nkv, S, hs), times=r)    -> (B, nkv * r, S, hs)
    sliding_mask(q (.., T, hs), k (.., S, hs), window=w) -> (T, S) bool, i - w < j <= i
    softcap(x, cap=c)                        -> x's shape              tanh(x / c) * c
"""

from __future__ import annotations

from archcc.ir import shapes as s
from archcc.ir.params import to_sympy


def rope_angles(ctx, attrs, shapes, dtypes):
    x = shapes[0]
    if len(x) < 2:
        raise s.ShapeError(f"rotary angles need a (..., T, head_dim) tensor, got {s.fmt(x)}")
    angles = (x[-2], to_sympy(attrs["dim"]))
    return (angles, angles), dtypes[0]


def rope(ctx, attrs, shapes, dtypes):
    x, cos = shapes[0], shapes[1]
    if not ctx.equal(x[-2], cos[0]):
        raise s.ShapeError(f"rotary angles for {cos[0]} positions, got {s.fmt(x)}")
    return x, dtypes[0]


def repeat_kv(ctx, attrs, shapes, dtypes):
    x = shapes[0]
    return (x[0], x[1] * to_sympy(attrs["times"]), *x[2:]), dtypes[0]


def sliding_mask(ctx, attrs, shapes, dtypes):
    q, k = shapes
    return (q[-2], k[-2]), s.BOOL


def softcap(ctx, attrs, shapes, dtypes):
    return shapes[0], dtypes[0]


DECODER_RULES = {"rope_angles": rope_angles, "rope": rope, "repeat_kv": repeat_kv,
                 "sliding_mask": sliding_mask, "softcap": softcap}
