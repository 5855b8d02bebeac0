"""The IR's data: a Program of ModuleIRs, each a networkx DiGraph of op nodes.

A node id is a stable dotted path (``Block.attn``, ``CausalSelfAttention.att_1``); its
attributes are the IR contract (see README.md in this folder)::

    op      what it computes: "input", "call", "linear"-free primitives such as "matmul", ...
    inputs  ordered list of node ids it reads (edges mirror this list)
    attrs   op parameters, e.g. {"dim": -1} for softmax, {"target": "attn"} for a call
    shape   tuple of sympy dims, e.g. (B, T, n_embd); None for tuple-valued nodes
    dtype   "float32" | "int64" | "bool"
    loc     SourceLoc of the spec text the node came from
    var     preferred Python name in generated code (the spec's own name where it has one)
    stmt    which source statement produced it; nodes of one statement may be inlined
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archcc.diagnostics import SourceLoc
from archcc.lazy import nx
from archcc.parser.expr import Expr


@dataclass
class Submodule:
    """One ``self.<name> = ...`` line of a generated ``__init__``.

    ``kind`` is a torch layer ("linear", "layernorm", "rmsnorm", "embedding", "dropout",
    "conv2d", "activation"), "class" (an instance of another generated class), "plugin" (the
    class of a plugin op, emitted from its template; see archcc.plugins), "repeat"
    (``nn.ModuleList`` of a class), "parameter" or "buffer". ``args`` are expressions over
    the owning class's scope (``config`` fields for blocks, constructor args for lowered ops).
    """

    name: str
    kind: str
    args: dict[str, Any]
    loc: SourceLoc | None = None
    cls: str | None = None
    tie: str | None = None
    when: Expr | None = None  # built only where this holds, else nn.Identity()
    # another class where a condition holds: [(condition, args, class)] (cls is the rest's)
    alternatives: list = field(default_factory=list)
    # a linear standing for several (q, k, v): (part name, rows) in order, so that `init:`
    # rules can address each part; ``fused``: a pass fused them, every rule applies per part
    parts: tuple[tuple[str, Any], ...] = ()
    fused: bool = False


@dataclass
class ModuleIR:
    """One generated ``nn.Module`` class: constructor, submodules and a forward graph."""

    name: str
    kind: str  # "model" | "block" | "lowered"
    graph: nx.DiGraph
    submodules: dict[str, Submodule] = field(default_factory=dict)
    ctor_args: list[tuple[str, Any]] = field(default_factory=list)  # (name, literal default)
    scalars: dict[str, Expr] = field(default_factory=dict)  # self.<name> = <expr>
    doc: str = ""
    loc: SourceLoc | None = None
    signature: tuple = ()  # lowered classes with equal signatures are one class
    layers: dict[str, Any] = field(default_factory=dict)  # spec layers by name (blocks only)
    display: dict[str, str] = field(default_factory=dict)  # short dim names for comments
    # fused linear -> the linears it replaced, concatenated on load (see fuse_projections)
    load_fusions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # a class its op writes from facets rather than from the graph (archcc/ops/rnn_decoder)
    facets: dict[str, Any] = field(default_factory=dict)
    # submodule name -> the lowered class it instantiates (a MoE's shared expert is an ffn's)
    nested: dict[str, ModuleIR] = field(default_factory=dict)
    # a block's constructor arguments -> default (None: required), in spec order
    args: dict[str, Any] = field(default_factory=dict)
    stack_inputs: list[str] = field(default_factory=list)  # inputs it pushes to or pops from

    @property
    def inputs(self) -> list[str]:
        return self.graph.graph["inputs"]

    @property
    def output(self) -> str | None:
        return self.graph.graph.get("output")


@dataclass
class Program:
    """Everything codegen needs: params, classes (leaves first), inputs, layouts."""

    name: str
    source: str  # spec path as given
    doc: str
    params: dict[str, Any]  # name -> concrete value
    param_exprs: dict[str, Expr]  # derived params -> expression over other params
    modules: dict[str, ModuleIR]
    inputs: dict[str, Any]  # name -> schema.Input
    input_shapes: dict[str, tuple]
    dims: dict[str, int]
    layouts: dict[str, Any]  # name -> schema.Layout
    passes_log: list[str] = field(default_factory=list)
    generate: Any = None  # schema.Generate when the spec asks for generation (see kv_cache.py)
    parallel: dict[str, str] = field(default_factory=dict)  # tensor-parallel plan
    # K/V shapes of each causal self-attention class, taken before the passes (kv_cache.py)
    kv_shapes: dict[str, tuple] = field(default_factory=dict)
    instances: dict[str, list] = field(default_factory=dict)  # block -> its distinct instances
    loaded: Any = None  # the LoadedSpec it was built from (instances are evaluated in it)
    init_rules: list = field(default_factory=list)  # the spec's `init:` (archcc.ir.init.Rule)
    no_decay: list[str] = field(default_factory=list)  # the spec's `no_decay:` keys

    @property
    def model(self) -> ModuleIR:
        return next(m for m in self.modules.values() if m.kind == "model")


def new_graph(name: str) -> nx.DiGraph:
    g = nx.DiGraph(name=name, inputs=[], output=None)
    g.graph["counter"] = {}
    return g


def fresh_id(g: nx.DiGraph, base: str) -> str:
    """A node id ``<graph>.<base>`` not yet used, suffixing ``_1``, ``_2`` as needed."""
    counter = g.graph["counter"]
    n = counter.get(base, 0)
    counter[base] = n + 1
    node_id = f"{g.graph['name']}.{base}" if n == 0 else f"{g.graph['name']}.{base}_{n}"
    while node_id in g:
        n += 1
        counter[base] = n + 1
        node_id = f"{g.graph['name']}.{base}_{n}"
    return node_id


def add_node(g: nx.DiGraph, op: str, inputs: list[str] | tuple[str, ...] = (), *,
             base: str | None = None, loc: SourceLoc | None = None, var: str | None = None,
             stmt: int | None = None, **attrs: Any) -> str:
    """Append a node and its input edges; returns the new node id."""
    node_id = fresh_id(g, base or var or op)
    g.add_node(node_id, op=op, inputs=list(inputs), attrs=attrs, shape=None, dtype=None,
               loc=loc, var=var, stmt=stmt, note=None)
    for position, src in enumerate(inputs):
        _add_edge(g, src, node_id, position)
    return node_id


def _add_edge(g: nx.DiGraph, src: str, dst: str, position: int) -> None:
    if g.has_edge(src, dst):
        g.edges[src, dst]["positions"].append(position)
    else:
        g.add_edge(src, dst, positions=[position])


def set_inputs(g: nx.DiGraph, node: str, inputs: list[str]) -> None:
    """Rewire a node's inputs, keeping edges in sync with the ordered list."""
    for src in list(g.predecessors(node)):
        g.remove_edge(src, node)
    g.nodes[node]["inputs"] = list(inputs)
    for position, src in enumerate(inputs):
        _add_edge(g, src, node, position)


def users(g: nx.DiGraph, node: str) -> list[str]:
    """Nodes reading ``node``, in program order."""
    order = g.graph.get("order") or list(g.nodes)
    rank = {n: i for i, n in enumerate(order)}
    return sorted(g.successors(node), key=lambda n: rank.get(n, len(rank)))


def replace_all_uses(g: nx.DiGraph, old: str, new: str) -> None:
    """Make every reader of ``old`` read ``new`` instead (the output pointer too)."""
    for user in list(g.successors(old)):
        set_inputs(g, user, [new if i == old else i for i in g.nodes[user]["inputs"]])
    if g.graph.get("output") == old:
        g.graph["output"] = new


def program_order(g: nx.DiGraph) -> list[str]:
    """Nodes in a stable topological order: insertion order wherever dependencies allow."""
    rank = {n: i for i, n in enumerate(g.nodes)}
    return list(nx.lexicographical_topological_sort(g, key=lambda n: rank[n]))


def node_str(g: nx.DiGraph, node: str) -> str:
    """One line of readable IR text: ``%Block.add = add(%x, %Block.attn)  # (B, T, n_embd)``."""
    data = g.nodes[node]
    args = ", ".join(f"%{i}" for i in data["inputs"])
    attrs = ", ".join(f"{k}={_attr_str(v)}" for k, v in data["attrs"].items())
    inner = ", ".join(p for p in (args, attrs) if p)
    shape = "" if data["shape"] is None else "  # (" + ", ".join(map(str, data["shape"])) + ")"
    return f"%{node} = {data['op']}({inner}){shape}"


def _attr_str(value: Any) -> str:
    from archcc.parser.expr import render  # local: keeps graph.py free of cycles

    if isinstance(value, tuple) and value and not isinstance(value[0], str):
        return "(" + ", ".join(_attr_str(v) for v in value) + ")"
    if hasattr(value, "pos"):  # an expression AST node
        return render(value, str)
    return repr(value)


def module_text(module: ModuleIR) -> str:
    """The whole forward graph of one module as text, one node per line (for goldens)."""
    g = module.graph
    lines = [f"module {module.name} ({module.kind})"]
    for name, sub in module.submodules.items():
        cls = f" {sub.cls}" if sub.cls else ""
        lines.append(f"  sub {name}: {sub.kind}{cls}")
    lines += ["  " + node_str(g, n) for n in program_order(g)]
    lines.append(f"  return %{g.graph['output']}")
    return "\n".join(lines)


def program_text(program: Program) -> str:
    return "\n\n".join(module_text(m) for m in program.modules.values()) + "\n"
