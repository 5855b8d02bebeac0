"""PyTorch spelling of image and two-tower primitives, merged into :mod:`archcc.codegen.render`::

    token_at(x, argmax(ids))   ->  x[torch.arange(x.shape[0], device=x.device), ids.argmax(dim=-1)]
"""

from __future__ import annotations

from archcc.parser.expr import PRECEDENCE, wrap

ATOM, MUL = PRECEDENCE["atom"], PRECEDENCE["mul"]

# readers of these ops see a plain name, never an inlined expression: they use it twice
NAMED_INPUTS = {"quick_gelu", "token_at"}


def method(x: tuple[str, int], call: str) -> tuple[str, int]:
    """``x.call``, parenthesising ``x`` if needed (as ``render.method``; no import cycle)."""
    return f"{wrap(x[0], x[1], ATOM)}.{call}", ATOM


def _quick_gelu(attrs, args, expr, dtypes):
    x = wrap(args[0][0], args[0][1], ATOM)
    return f"{x} * torch.sigmoid(1.702 * {x})", MUL


def _call(name: str):
    return lambda attrs, args, expr, dtypes: (f"{name}({args[0][0]})", ATOM)


def _normalize(attrs, args, expr, dtypes):
    return f"F.normalize({args[0][0]}, dim={attrs['dim']})", ATOM


def _argmax(attrs, args, expr, dtypes):
    return method(args[0], f"argmax(dim={attrs['dim']})")


def _token_at(attrs, args, expr, dtypes):
    x = wrap(args[0][0], args[0][1], ATOM)
    return f"{x}[torch.arange({x}.shape[0], device={x}.device), {args[1][0]}]", ATOM


def _interpolate(attrs, args, expr, dtypes):
    return (f'F.interpolate({args[0][0]}, scale_factor={expr(attrs["scale"])}, '
            f'mode="nearest")'), ATOM


def _avg_pool(attrs, args, expr, dtypes):
    return f"F.avg_pool2d({args[0][0]}, {attrs['kernel']})", ATOM


def _pad(attrs, args, expr, dtypes):
    return f"F.pad({args[0][0]}, {tuple(attrs['pad'])})", ATOM


def _reshape_as(attrs, args, expr, dtypes):
    like = wrap(args[1][0], args[1][1], ATOM)
    return method(args[0], f"reshape({like}.shape)")


IMAGE_RENDERERS = {
    "quick_gelu": _quick_gelu, "exp": _call("torch.exp"), "sin": _call("torch.sin"),
    "cos": _call("torch.cos"), "normalize": _normalize, "argmax": _argmax,
    "token_at": _token_at,
    "interpolate": _interpolate, "avg_pool": _avg_pool, "reshape_as": _reshape_as, "pad": _pad,
}
