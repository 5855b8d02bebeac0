"""QKV (and K/V) fusion: linears reading the same input become one wider linear and a split.

    before:  %q = call(%x, target='q')            after:  %qkv = call(%x, target='qkv')
             %k = call(%x, target='k')                    %parts = split(%qkv, size=dim)
             %v = call(%x, target='v')                    %q = getitem(%parts, 0)  ...
    sub q, k, v: linear(dim -> dim)                sub qkv: linear(dim -> 3 * dim)

One matmul with a 3x wider weight beats three (one weight read, one kernel launch). In
cross-attention only keys and values read the memory, so they fuse into ``kv`` and ``q``
stays. Only -O2 runs this: it renames parameters. Checkpoints with the unfused names still
load, because each class with fused linears registers a ``load_state_dict`` pre-hook that
concatenates ``q.weight, k.weight, v.weight`` into ``qkv.weight`` (``module.load_fusions``).

Fused: linears called once each, on the same value, with equal ``in``, ``bias`` and ``out``
(split takes one chunk size), not weight-tied.
"""

from __future__ import annotations

import os

from archcc.ir.graph import ModuleIR, Submodule, add_node, replace_all_uses
from archcc.ir.passes.base import PassContext, PassResult, move_before
from archcc.parser.expr import BinOp, Name, Num, names_in


def _linear_calls(module: ModuleIR) -> dict[str, list[str]]:
    """input node -> plain calls of untied linears called exactly once in this forward."""
    g = module.graph
    calls: dict[str, list[str]] = {}
    for node, data in g.nodes(data=True):
        if data["op"] == "call" and not data["attrs"].get("repeat"):
            calls.setdefault(data["attrs"]["target"], []).append(node)
    groups: dict[str, list[str]] = {}
    for target, nodes in calls.items():
        sub = module.submodules.get(target)
        if sub is None or sub.kind != "linear" or sub.tie or len(nodes) != 1:
            continue
        data = g.nodes[nodes[0]]
        if len(data["inputs"]) == 1 and not data["attrs"]["kwargs"]:
            groups.setdefault(data["inputs"][0], []).append(nodes[0])
    return groups


def _fused_name(module: ModuleIR, names: list[str]) -> str:
    """q, k, v -> qkv; wq, wk, wv -> wqkv; query, key, value -> query_key_value."""
    prefix = os.path.commonprefix(names)
    rests = [n[len(prefix):] for n in names]
    name = prefix + "".join(rests) if all(len(r) == 1 for r in rests) else "_".join(names)
    taken = set(module.submodules) | {d["var"] for _, d in module.graph.nodes(data=True)
                                      if d["op"] != "kv_cache"}  # unpacked: never a name
    while name in taken and name not in names:
        name += "_fused"
    return name


def _compatible(module: ModuleIR, nodes: list[str]) -> list[str]:
    """The largest set of linears (by first call) that agree on in, out and bias."""
    g = module.graph
    subs = [module.submodules[g.nodes[n]["attrs"]["target"]] for n in nodes]
    key = [(s.args["in"], s.args["out"], s.args["bias"], sorted(s.args)) for s in subs]
    best = max(key, key=key.count)
    return [n for n, k in zip(nodes, key, strict=True) if k == best]


def _fuse(module: ModuleIR, source: str, nodes: list[str]) -> str:
    g = module.graph
    order = list(g.nodes)
    nodes = sorted(nodes, key=order.index)  # the split hands parts back in program order
    targets = [g.nodes[n]["attrs"]["target"] for n in nodes]
    first = module.submodules[targets[0]]
    name = _fused_name(module, targets)
    out = BinOp("mul", Num(len(nodes)), first.args["out"])
    fused = Submodule(name, "linear", {**first.args, "out": out}, first.loc, fused=True,
                      parts=tuple((t, module.submodules[t].args["out"]) for t in targets))
    module.submodules = {(name if k == targets[0] else k): (fused if k == targets[0] else v)
                         for k, v in module.submodules.items() if k not in targets[1:]}
    head = g.nodes[nodes[0]]
    call = add_node(g, "call", [source], var=name, stmt=head["stmt"], loc=head["loc"],
                    target=name, kwargs=())
    width = head["shape"][-1]
    g.nodes[call].update(shape=(*head["shape"][:-1], width * len(nodes)), dtype=head["dtype"],
                         note="fused by fuse_projections")
    split = add_node(g, "split", [call], var=name, stmt=head["stmt"], loc=head["loc"],
                     size=first.args["out"], dim=-1, outputs=len(nodes))  # a dead part: _
    g.nodes[split].update(shape=None, dtype=head["dtype"])
    parts = []
    for index, node in enumerate(nodes):
        part = add_node(g, "getitem", [split], var=g.nodes[node]["var"], stmt=head["stmt"],
                        loc=g.nodes[node]["loc"], index=index)
        g.nodes[part].update(shape=g.nodes[node]["shape"], dtype=g.nodes[node]["dtype"])
        parts.append(part)
    for new in (call, split, *parts):  # the fused call takes the first call's place
        move_before(g, new, nodes[0])
    for node, part in zip(nodes, parts, strict=True):
        replace_all_uses(g, node, part)
    g.remove_nodes_from(nodes)
    module.load_fusions[name] = tuple(targets)
    if module.kind == "lowered":  # the split size is read in forward: self.<name>
        for used in names_in(first.args["out"]):
            module.scalars.setdefault(used, Name(used))
    return name


def fuse_projections(module: ModuleIR, ctx: PassContext) -> PassResult:
    result = PassResult(False)
    for source, nodes in _linear_calls(module).items():
        # a call shape inference never reached (no output reads it) is left alone
        nodes = [n for n in nodes if module.graph.nodes[n].get("shape") is not None]
        if len(nodes) < 2:
            continue
        group = _compatible(module, nodes)
        if len(group) < 2:
            result.near_misses.append(f"{module.name}: not fused: {', '.join(nodes)} read one "
                                      "input but differ in in/out/bias")
            continue
        if len(group) < len(nodes):
            left = [n for n in nodes if n not in group]
            result.near_misses.append(f"{module.name}: not fused: {', '.join(left)} differ(s) "
                                      f"in in/out/bias from {', '.join(group)}")
        targets = [module.graph.nodes[n]["attrs"]["target"] for n in group]
        name = _fuse(module, source, group)
        result.changed = True
        result.notes.append(f"{module.name}: {', '.join(targets)} -> {name}: "
                            "one linear + split")
    return result
