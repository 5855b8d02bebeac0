"""Forward wiring of recurrent calls and the sequence builtins (cat, global pooling).

A recurrent call becomes one tuple-valued ``call`` node and one ``port`` node per value it
returns; ``lengths=`` adds packing (or a mask) around it::

    out, (h, c) = lstm(x, lengths=n)   ->  %packed = pack_padded(%x, %n)
                                           %lstm   = call(%packed, target=lstm, ports=(out, h, c))
                                           %out    = port(%lstm, index=0)  ... h, c likewise
                                           %out_1  = pad_packed(%out, %x)

Used inside an expression (``head(lstm(x))``) a recurrent call gives its output sequence.
"""

from __future__ import annotations

from archcc.ir.layers_seq import RECURRENT, ports
from archcc.parser.expr import Call

# forward-language functions with a `dim=` keyword: name -> (IR op, arity (None: 2 or more),
# default dim)
SEQUENCE_BUILTINS = {"cat": ("cat", None, -1), "global_max_pool": ("global_max_pool", 1, -1),
                     "global_avg_pool": ("global_avg_pool", 1, -1), "sum": ("sum", 1, -1),
                     "unsqueeze": ("unsqueeze", 1, -1), "flip": ("flip", 1, 1),
                     "logsigmoid": ("logsigmoid", 1, None),
                     "unflatten_as": ("unflatten_as", 2, None)}


def is_recurrent_call(fwd, e) -> bool:
    layer = fwd.layers.get(e.func) if isinstance(e, Call) else None
    return layer is not None and layer.op in RECURRENT


def assign_ports(fwd, statement) -> None:
    """``out, (h, c) = lstm(x)``: bind each target to one port of the call."""
    e = statement.value
    if not is_recurrent_call(fwd, e):
        fwd._fail(statement.pos, "only an rnn, lstm or gru call returns several values",
                  "assign one name per line")
    layer = fwd.layers[e.func]
    names = ports(layer.op)
    if len(statement.targets) != len(names):
        shown = "out, (h, c)" if layer.op == "lstm" else "out, h"
        fwd._fail(statement.pos, f"{layer.name} returns {shown}: {len(names)} values, not "
                  f"{len(statement.targets)}", f"write `{shown} = {layer.name}(...)`, or one "
                  "name for the output sequence")
    nodes = recurrent_call(fwd, layer, e, states=True)
    for target, node in zip(statement.targets, nodes, strict=True):
        fwd._check_target(statement, target)
        fwd.g.nodes[node]["var"] = target
        fwd.vars[target] = node


def recurrent_call(fwd, layer, e: Call, states: bool = False) -> list[str]:
    """Nodes holding out, h (and c); with ``states=False`` only the output is meant."""
    spec = layer.spec
    unknown = sorted({k for k, _ in e.kwargs} - {"lengths"})
    if unknown:
        fwd._fail(e.pos, f"{layer.name}: unknown keyword(s) {unknown}",
                  "the only keyword is lengths= (int64 lengths of a padded batch)")
    if not e.args:
        fwd._fail(e.pos, f"{layer.name}() needs at least one input")
    args = [fwd._expr(a) for a in e.args]
    lengths = next((fwd._expr(v) for k, v in e.kwargs if k == "lengths"), None)
    packed = lengths is not None and spec.lengths == "packed"
    if lengths is not None and not packed and states:
        fwd._fail(e.pos, f"{layer.name} has lengths: mask, which gives no final states",
                  "use lengths: packed for exact h (and c), or take only the output")
    x = args[0]
    seq = fwd._node("pack_padded", [x, lengths], e.pos, var="packed",
                    batch_first=spec.batch_first) if packed else x
    call = fwd._node("call", [seq, *args[1:]], e.pos, var=layer.name, target=layer.name,
                     kwargs=(), repeat=False, ports=ports(layer.op),
                     state_pair=layer.op == "lstm" and len(args) > 1)
    outs = [fwd._node("port", [call], e.pos, var=name, index=i)
            for i, name in enumerate(ports(layer.op))]
    if packed:
        outs[0] = fwd._node("pad_packed", [outs[0], x], e.pos, var="out",
                            batch_first=spec.batch_first)
    elif lengths is not None:
        mask = fwd._node("length_mask", [lengths, x], e.pos, var="mask",
                         batch_first=spec.batch_first)
        outs[0] = fwd._node("mul", [outs[0], mask], e.pos)
    return outs


def call_builtin(fwd, e: Call) -> str:
    """``cat(a, b, c, dim=-1)``, ``global_max_pool(x)``, ``sum(x, dim=1)``, ``flip(x)``..."""
    op, arity, dim = SEQUENCE_BUILTINS[e.func]
    attrs = {} if dim is None else {"dim": dim}
    for key, value in e.kwargs:
        if key not in attrs:
            fwd._fail(e.pos, f"{e.func}() has no keyword '{key}'",
                      "the only keyword is dim=" if attrs else f"call it as {e.func}(x)")
        attrs["dim"] = fwd._static_int(value)
    if arity is None and len(e.args) < 2:
        fwd._fail(e.pos, f"{e.func}() joins two or more tensors, got {len(e.args)}")
    if arity is not None and len(e.args) != arity:
        fwd._fail(e.pos, f"{e.func}() takes {arity} argument(s), got {len(e.args)}",
                  "choose the axis with dim=" if attrs else None)
    return fwd._node(op, [fwd._expr(a) for a in e.args], e.pos, **attrs)
