"""PyTorch spelling of the decoder-LLM primitives (shapes: archcc/ir/shapes_decoder.py).

    rope_angles    cos, sin = self.rotary(q, past_length(cache))
    rope           apply_rotary(q, cos, sin)
    repeat_kv      k.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
    sliding_mask   sliding_window_mask(q, k, self.window)
    softcap        torch.tanh(att / self.softcap) * self.softcap
"""

from __future__ import annotations

from archcc.parser.expr import PRECEDENCE, wrap

ATOM = PRECEDENCE["atom"]


def _atom(arg) -> str:
    return wrap(arg[0], arg[1], ATOM)


def _rope_angles(attrs, args, expr, dtypes):
    # with a KV cache the positions go on after the cached ones
    offset = f", past_length({args[1][0]}, self)" if len(args) == 2 else ""
    return f"self.{attrs['target']}({args[0][0]}{offset})", ATOM


def _rope(attrs, args, expr, dtypes):
    extra = ", interleaved=True" if attrs.get("interleaved") else ""
    return f"apply_rotary({', '.join(a[0] for a in args)}{extra})", ATOM


def _repeat_kv(attrs, args, expr, dtypes):
    return f"{_atom(args[0])}.repeat_interleave({expr(attrs['times'])}, dim=1)", ATOM


def _sliding_mask(attrs, args, expr, dtypes):
    return f"sliding_window_mask({args[0][0]}, {args[1][0]}, {expr(attrs['window'])})", ATOM


def _softcap(attrs, args, expr, dtypes):
    cap = expr(attrs["cap"])
    cap = f"({cap})" if " " in cap else cap  # an expression, not a name or number
    inner = wrap(args[0][0], args[0][1], PRECEDENCE["mul"])
    return f"torch.tanh({inner} / {cap}) * {cap}", PRECEDENCE["mul"]


DECODER_RENDERERS = {"rope_angles": _rope_angles, "rope": _rope, "repeat_kv": _repeat_kv,
                     "sliding_mask": _sliding_mask, "softcap": _softcap}
