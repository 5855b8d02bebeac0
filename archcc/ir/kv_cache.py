"""The generation facet: thread a KV cache through the decoder, after shape inference.

Runs only for specs with ``generate:``; every other spec keeps its exact forward. In a causal
self-attention class the new keys/values are appended to the cached ones, before the scores::

    before:  %k  = transpose(%k, 1, 2)            after:  %k  = transpose(%k, 1, 2)
             %v  = transpose(%v, 1, 2)                    %v  = transpose(%v, 1, 2)
                                                          %kv = kv_cache(%cache, %k, %v)
             %kt = transpose(%k, -2, -1)                  %kt = transpose(%kv[0], -2, -1)
             %causal = causal_mask(%q, %k)                %causal = causal_mask(%q, %kv[0],
                                                                        from_end=True)
             %y  = matmul(%att, %v)                       %y  = matmul(%att, %kv[1])

Grouped-query keys are cached before their per-head repeat (only the kv heads are kept),
rotary angles (``rope_angles``) start at the cache's length, and a sliding-window class
passes its window, so the cache keeps no more than the window's keys.
Cross attention computes its key/value projections of the encoder memory once per cache
(``call`` nodes marked ``memo``); ``positions`` and sinusoidal tables start at the cache's
length. Every block or model that calls a cache-taking layer gets a trailing ``cache`` input
(default None) and passes it on, through repeat loops too. In a seq2seq model only the
decoder side (what depends on the stepped input) is given the cache.
"""

from __future__ import annotations

from archcc import ops
from archcc.diagnostics import ArchccError, Diagnostic
from archcc.ir.graph import ModuleIR, Program, add_node, program_order, set_inputs
from archcc.ir.params import symbol, to_sympy
from archcc.ir.shapes import RULES, DimContext
from archcc.lazy import nx, sympy
from archcc.parser import LoadedSpec

CACHE = "cache"
PAST = sympy.Symbol("P", integer=True, nonnegative=True)  # positions already in the cache
KV_STMT = 10_000  # a statement of its own: the cache line is never inlined into another


def add_kv_cache(program: Program, loaded: LoadedSpec) -> Program:
    """Apply ``loaded.spec.generate`` to an inferred program (a no-op without the facet)."""
    facet = loaded.spec.generate
    if facet is None:
        return program
    token = _token_input(program, loaded)
    takes: set[str] = set()
    for module in program.modules.values():
        if module.kind == "lowered" and _lowered_cache(module):
            takes.add(module.name)
        elif module.kind != "lowered":
            _same_signature(program, module, takes)
            if _thread(module, takes, token, facet.kind):
                takes.add(module.name)
    if not any(_has(m, "kv_cache") or _has_memo(m) for m in program.modules.values()):
        raise ArchccError(Diagnostic(loaded.where.key(("generate",)), "generate",
                                     "nothing to cache: the model has no causal or cross "
                                     "attention", "generation needs an `op: attention` "
                                     "layer with `causal: true` (or `cross: true`)"))
    program.generate = facet.model_copy(update={"input": token})
    return program


def causal_kv_shapes(program: Program) -> dict[str, tuple[tuple, tuple]]:
    """Key and value shapes of each causal self-attention class, before the passes::

        {"CausalSelfAttention": ((B, n_head, T, head_dim), (B, n_head, T, head_dim))}

    Dims are sympy over the input symbols B, T and the class's own attributes (`n_head`),
    which is what a budget needs to size the cache of every instance.
    A sliding-window class keeps at most its ``window`` positions: ``Min(T, window)``.
    """
    out = {}
    for module in program.modules.values():
        if module.kind != "lowered" or not _attends(module) or not _causal(module):
            continue
        names = {module.graph.nodes[n]["attrs"]["name"] for n in module.inputs}
        if "memory" not in names:
            k, v = _keys_values(module.graph)
            window = _window(module.graph)
            out[module.name] = tuple(_capped(module.graph.nodes[n]["shape"], window)
                                     for n in (k, v))
    return out


def _causal(module: ModuleIR) -> bool:
    return _has(module, "causal_mask") or _has(module, "sliding_mask")


def _window(g: nx.DiGraph):
    """The sliding window (an expression over the class's names) or None."""
    return next((d["attrs"]["window"] for _, d in g.nodes(data=True)
                 if d["op"] == "sliding_mask"), None)


def _capped(shape: tuple, window) -> tuple:
    if window is None:
        return shape
    return (*shape[:-2], sympy.Min(shape[-2], to_sympy(window)), shape[-1])


def _token_input(program: Program, loaded: LoadedSpec) -> str:
    """The stepped int64 input: named by ``generate.input`` or the last int64 input."""
    facet, inputs = loaded.spec.generate, program.inputs
    ints = [n for n, spec in inputs.items() if spec.dtype == "int64"]
    name = facet.input or (ints[-1] if ints else None)
    where = loaded.where.key(("generate", "input") if facet.input else ("generate",))
    if name not in ints:
        raise ArchccError(Diagnostic(where, "generate.input",
                                     f"'{name}' is not an int64 input of the model",
                                     f"int64 inputs: {', '.join(ints) or 'none'}"))
    kind_at = loaded.where.key(("generate", "kind"))
    if facet.kind == "causal_lm" and len(inputs) != 1:
        raise ArchccError(Diagnostic(kind_at, "generate.kind",
                                     "a causal_lm is stepped on its token input alone, but the "
                                     f"model takes {len(inputs)} inputs",
                                     "use kind: seq2seq for an encoder-decoder"))
    if facet.kind == "seq2seq" and len(inputs) < 2:
        raise ArchccError(Diagnostic(kind_at, "generate.kind",
                                     "a seq2seq model needs encoder inputs besides "
                                     f"'{name}'", "use kind: causal_lm for a decoder only"))
    return name


def _has(module: ModuleIR, op: str) -> bool:
    return any(d["op"] == op for _, d in module.graph.nodes(data=True))


def _attends(module: ModuleIR) -> bool:
    """An attention class: scores normalised by a softmax (the passes have not run yet)."""
    return _has(module, "softmax")


# primitives that number positions: a cached step continues after the cached positions
POSITION_OPS = ("take_rows", "relative_position")


def _has_memo(module: ModuleIR) -> bool:
    return any(d["attrs"].get("memo") for _, d in module.graph.nodes(data=True))


def _add_cache_input(g: nx.DiGraph) -> str:
    node = add_node(g, "input", var=CACHE, name=CACHE, optional=True)
    g.nodes[node].update(shape=(), dtype="cache")
    g.graph["inputs"].append(node)
    return node


# --------------------------------------------------------------------------- lowered classes


def _lowered_cache(module: ModuleIR) -> bool:
    """Make one lowered class cache-aware; False when it has nothing to cache."""
    g = module.graph
    names = {g.nodes[n]["attrs"]["name"]: n for n in module.inputs}
    numbered = [n for n in g if g.nodes[n]["op"] in POSITION_OPS]
    if numbered:  # position tables and T5 buckets start after the cached positions
        cache = _add_cache_input(g)
        for node in numbered:
            set_inputs(g, node, [*g.nodes[node]["inputs"], cache])
        _reinfer(module)
        return True
    if not _attends(module):
        return False
    if "memory" in names:
        return _memoize_memory(module, names["memory"])
    if _causal(module):
        _append_kv(module)
        return True
    return False  # bidirectional self-attention (an encoder): run once, nothing to keep


def _memoize_memory(module: ModuleIR, memory: str) -> bool:
    """Cross attention: ``self.k(memory)`` becomes ``memoized(cache, self.k, memory)``."""
    g = module.graph
    projections = [n for n in g.successors(memory) if g.nodes[n]["op"] == "call"]
    cache = _add_cache_input(g)
    for node in projections:
        set_inputs(g, node, [memory, cache])
        g.nodes[node]["attrs"]["memo"] = True
    return bool(projections)


def _append_kv(module: ModuleIR) -> None:
    g = module.graph
    k, v = _keys_values(g)
    cache = _add_cache_input(g)
    window = _window(g)
    kv = add_node(g, "kv_cache", [cache, k, v], var="kv", stmt=KV_STMT,
                  **({"window": window} if window is not None else {}))
    new_k = add_node(g, "getitem", [kv], var=g.nodes[k]["var"], stmt=KV_STMT, index=0)
    new_v = add_node(g, "getitem", [kv], var=g.nodes[v]["var"], stmt=KV_STMT, index=1)
    for old, new in ((k, new_k), (v, new_v)):
        for user in [u for u in g.successors(old) if u != kv]:
            set_inputs(g, user, [new if i == old else i for i in g.nodes[user]["inputs"]])
    for node in list(g):
        if g.nodes[node]["op"] == "causal_mask":
            g.nodes[node]["attrs"]["from_end"] = True
        if g.nodes[node]["op"] == "rope_angles":  # positions go on after the cached ones
            set_inputs(g, node, [*g.nodes[node]["inputs"], cache])
    _place_after(g, v, [kv, new_k, new_v])
    for node in module.inputs:  # per-key inputs (a score bias, a key mask) span P + T keys
        data = g.nodes[node]
        if data["attrs"]["name"] != "x" and data["shape"] and data["shape"][-1] == symbol("T"):
            data["shape"] = (*data["shape"][:-1], PAST + symbol("T"))
    _reinfer(module)


def _keys_values(g: nx.DiGraph) -> tuple[str, str]:
    """``k`` of ``matmul(q, transpose(k, -2, -1))`` and ``v`` of ``matmul(probs, v)``; with
    grouped-query heads, the kv heads before ``repeat_kv`` (the cache keeps only those)."""
    for node in g:
        data = g.nodes[node]
        if data["op"] != "matmul":
            continue
        kt = data["inputs"][1]
        if g.nodes[kt]["op"] == "transpose":
            k = g.nodes[kt]["inputs"][0]
            reader = next(iter(nx.descendants(g, node) & {
                n for n in g if g.nodes[n]["op"] == "matmul" and n != node}))
            return _unrepeated(g, k), _unrepeated(g, g.nodes[reader]["inputs"][1])
    raise AssertionError(f"{g.graph['name']}: no attention scores to cache")


def _unrepeated(g: nx.DiGraph, node: str) -> str:
    return g.nodes[node]["inputs"][0] if g.nodes[node]["op"] == "repeat_kv" else node


def _place_after(g: nx.DiGraph, anchor: str, new: list[str]) -> None:
    """Keep program order readable: the cache lines follow the keys/values they extend."""
    order = [n for n in g if n not in new]
    at = order.index(anchor) + 1
    order[at:at] = new
    attrs = {n: dict(g.nodes[n]) for n in order}
    edges = list(g.edges(data=True))
    g.remove_nodes_from(order)
    for n in order:
        g.add_node(n, **attrs[n])
    g.add_edges_from(edges)


def _reinfer(module: ModuleIR) -> None:
    """Shapes after the cache: keys/values and scores now span P + T positions."""
    subs = {symbol(k): to_sympy(v) for k, v in module.scalars.items() if k != "dropout"}
    ctx = DimContext({k: v for k, v in subs.items() if k != v})
    g = module.graph
    for node in program_order(g):
        data = g.nodes[node]
        shapes = [g.nodes[i]["shape"] for i in data["inputs"]]
        dtypes = [g.nodes[i]["dtype"] for i in data["inputs"]]
        if data["op"] in RULES and data["op"] != "const":
            data["shape"], data["dtype"] = RULES[data["op"]](ctx, data["attrs"], shapes, dtypes)
        elif data["op"] == "call":  # e.g. T5's bucket -> bias table
            sub = module.submodules[data["attrs"]["target"]]
            data["shape"], data["dtype"] = ops.get_kind(sub.kind).call_shape(ctx, sub, shapes,
                                                                            dtypes)


# ------------------------------------------------------------------------- blocks and model


def _thread(module: ModuleIR, takes: set[str], token: str, kind: str) -> bool:
    """Pass the cache to every call that takes one (decoder side only in a seq2seq model)."""
    g = module.graph
    side = set(g.nodes)
    if module.kind == "model" and kind == "seq2seq":
        start = next(n for n in module.inputs if g.nodes[n]["attrs"]["name"] == token)
        side = nx.descendants(g, start)
    users = [n for n in program_order(g) if n in side and _wants_cache(module, n, takes)]
    if not users:
        return False
    cache = _add_cache_input(g)
    for node in users:
        data = g.nodes[node]
        set_inputs(g, node, [*data["inputs"], cache])
        if data["op"] == "call" and not data["attrs"].get("repeat"):
            data["attrs"]["kwargs"] = (*data["attrs"]["kwargs"], CACHE)
    return True


def _repeated(sub) -> list[str]:
    """The classes a repeat submodule instantiates: its block, a cycle's, a pattern's."""
    return list(dict.fromkeys([sub.cls, *sub.args.get("cycle", ()),
                               *sub.args.get("letters", {}).values()]))


def _same_signature(program: Program, module: ModuleIR, takes: set[str]) -> None:
    """One loop calls every block of a cycle or pattern alike: when one takes the cache, the
    others get a ``cache`` argument too (unused: an FFN-only layer keeps nothing)."""
    for sub in module.submodules.values():
        if sub.kind != "repeat":
            continue
        blocks = _repeated(sub)
        if any(b in takes for b in blocks):
            for name in (b for b in blocks if b not in takes):
                _add_cache_input(program.modules[name].graph)
                takes.add(name)


def _wants_cache(module: ModuleIR, node: str, takes: set[str]) -> bool:
    data = module.graph.nodes[node]
    if data["op"] == "positions":
        return True
    if data["op"] != "call":
        return False
    sub = module.submodules[data["attrs"]["target"]]
    if sub.kind == "repeat":
        return any(b in takes for b in _repeated(sub))
    return sub.kind == "class" and sub.cls in takes
