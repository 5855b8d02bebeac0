"""PyTorch spelling of the sequence primitives (see archcc/ir/shapes_seq.py for shapes).

    port           out[1]
    pack_padded    nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True,
                                                     enforce_sorted=False)
    pad_packed     nn.utils.rnn.pad_packed_sequence(out, batch_first=True,
                                                    total_length=x.shape[1])[0]
    length_mask    (torch.arange(x.shape[1], device=x.device) < lengths[:, None]).unsqueeze(-1)
    cat            torch.cat([a, b], dim=-1)
"""

from __future__ import annotations

from archcc.parser.expr import PRECEDENCE, wrap

ATOM = PRECEDENCE["atom"]


def _atom(arg) -> str:
    return wrap(arg[0], arg[1], ATOM)


def _port(attrs, args, expr, dtypes):
    indices = attrs.get("element", (attrs["index"],))
    return _atom(args[0]) + "".join(f"[{i}]" for i in indices), ATOM


def _pack_padded(attrs, args, expr, dtypes):
    # lengths live on the CPU for packing; enforce_sorted=False keeps the batch order
    return (f"nn.utils.rnn.pack_padded_sequence({args[0][0]}, {_atom(args[1])}.cpu(), "
            f"batch_first={attrs['batch_first']}, enforce_sorted=False)"), ATOM


def _pad_packed(attrs, args, expr, dtypes):
    time = 1 if attrs["batch_first"] else 0
    return (f"nn.utils.rnn.pad_packed_sequence({args[0][0]}, batch_first="
            f"{attrs['batch_first']}, total_length={_atom(args[1])}.shape[{time}])[0]"), ATOM


def _length_mask(attrs, args, expr, dtypes):
    lengths, x = _atom(args[0]), _atom(args[1])
    if attrs["batch_first"]:  # (B, T): step t of row b is kept while t < lengths[b]
        steps = f"torch.arange({x}.shape[1], device={x}.device)"
        return f"({steps} < {lengths}[:, None]).unsqueeze(-1)", ATOM
    steps = f"torch.arange({x}.shape[0], device={x}.device)"  # (T, B)
    return f"({steps}[:, None] < {lengths}[None, :]).unsqueeze(-1)", ATOM


def _global_max_pool(attrs, args, expr, dtypes):
    return f"{_atom(args[0])}.amax(dim={attrs['dim']})", ATOM


def _global_avg_pool(attrs, args, expr, dtypes):
    return f"{_atom(args[0])}.mean(dim={attrs['dim']})", ATOM


def _cat(attrs, args, expr, dtypes):
    return f"torch.cat([{', '.join(a[0] for a in args)}], dim={attrs['dim']})", ATOM


def _sum(attrs, args, expr, dtypes):
    return f"{_atom(args[0])}.sum(dim={attrs['dim']})", ATOM


def _unsqueeze(attrs, args, expr, dtypes):
    return f"{_atom(args[0])}.unsqueeze({attrs['dim']})", ATOM


def _flip(attrs, args, expr, dtypes):
    return f"{_atom(args[0])}.flip({attrs['dim']})", ATOM


def _logsigmoid(attrs, args, expr, dtypes):
    return f"F.logsigmoid({args[0][0]})", ATOM


def _unflatten_as(attrs, args, expr, dtypes):
    return f"{_atom(args[0])}.unflatten(0, {_atom(args[1])}.shape[:2])", ATOM


RENDERERS = {"port": _port, "pack_padded": _pack_padded, "pad_packed": _pad_packed,
             "length_mask": _length_mask, "global_max_pool": _global_max_pool,
             "global_avg_pool": _global_avg_pool, "cat": _cat, "sum": _sum,
             "unsqueeze": _unsqueeze, "flip": _flip, "logsigmoid": _logsigmoid,
             "unflatten_as": _unflatten_as}
