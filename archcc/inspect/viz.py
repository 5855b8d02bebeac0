"""``archcc viz``: the IR as a picture. Blocks are boxes, edges carry shapes, a repeat is
one box (``h: Block x12``) unless expanded, fused ops are marked.

    >>> graph = block_graph(compile_program(load_spec("specs/gpt2.yaml")), expand=1)
    >>> svg = render_svg(graph)            # Graphviz dot if installed, else pure Python

``expand``: 0 draws the model's forward only; 1 opens blocks (repeats drawn once, in a
cluster labelled with the count); 2 also opens lowered ops (attention internals, where
``sdpa`` shows what fuse_attention did).
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field

from archcc.ir.graph import ModuleIR, Program, program_order
from archcc.parser.expr import ExprError, evaluate

HIDDEN_OPS = {"const", "get_attr"}


@dataclass
class Node:
    id: str
    label: str
    kind: str  # input | output | call | repeat | op | fused
    cluster: str | None = None
    path: str | None = None  # spec path of the layer this node calls (h, h.*.attn)
    fused: bool = False


@dataclass
class VizGraph:
    title: str
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[tuple[str, str, str]] = field(default_factory=list)  # (src, dst, shape)
    # cluster id -> (label, parent cluster, spec path of the layer it opens)
    clusters: dict[str, tuple[str, str | None, str]] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)  # node path -> diff status


def _shape(shape) -> str:
    if shape is None:
        return ""
    if shape and isinstance(shape[0], tuple):  # a tuple of tensors, e.g. split's output
        parts = [_shape(s) for s in shape]
        return f"{len(parts)} x {parts[0]}" if len(set(parts)) == 1 else ", ".join(parts)
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _fused_inside(program: Program, name: str, seen: frozenset = frozenset()) -> bool:
    module = program.modules.get(name)
    if module is None or name in seen:
        return False
    for _, data in module.graph.nodes(data=True):
        if data.get("note") or data["op"] == "sdpa":
            return True
    return any(_fused_inside(program, s.cls, seen | {name})
               for s in module.submodules.values() if s.cls)


class _Builder:
    def __init__(self, program: Program, expand: int) -> None:
        self.program, self.expand, self.graph = program, expand, VizGraph(program.name)

    def module(self, module: ModuleIR, prefix: str, path: str, cluster: str | None,
               level: int) -> tuple[list[str], str | None]:
        """Add one module's nodes; returns (entry node per input, exit node)."""
        g = module.graph
        ends: dict[str, tuple[list[str], str]] = {}  # IR node -> (entries, exit)
        for node in program_order(g):
            data = g.nodes[node]
            if data["op"] in HIDDEN_OPS:
                continue
            vid = f"{prefix}{node.split('.', 1)[-1]}"
            ends[node] = self._node(module, node, data, vid, path, cluster, level)
            entries = ends[node][0]
            for position, src in enumerate(data["inputs"]):
                if src in ends:  # an opened block: its i-th input port takes the i-th value
                    entry = entries[position] if position < len(entries) else entries[0]
                    self.graph.edges.append((ends[src][1], entry,
                                             _shape(g.nodes[src]["shape"])))
        inputs = [ends[i][0][0] for i in module.inputs if i in ends]
        return inputs, ends[module.output][1] if module.output in ends else None

    def _node(self, module, node, data, vid, path, cluster, level) -> tuple[list[str], str]:
        op, attrs = data["op"], data["attrs"]
        if op == "input":
            label, kind = attrs.get("name", "input"), "input"
        elif op == "output":
            label, kind = "output", "output"
        elif op == "call":
            return self._call(module, attrs["target"], vid, path, cluster, level)
        else:
            label, kind = op, "fused" if data.get("note") or op == "sdpa" else "op"
        if level > 0 and op in ("input", "output"):
            kind = "port"
        self.graph.nodes[vid] = Node(vid, label, kind, cluster, fused=kind == "fused")
        return [vid], vid

    def _call(self, module, target, vid, path, cluster, level) -> tuple[list[str], str]:
        sub = module.submodules.get(target)
        layer_path = f"{path}.{target}" if path else target
        cls = sub.cls if sub else None
        times = self._times(sub) if sub and sub.kind == "repeat" else None
        inner = self.program.modules.get(cls) if cls else None
        opens = inner is not None and (self.expand >= 2 or (self.expand >= 1
                                                              and inner.kind == "block"))
        if opens:
            label = f"{target}: {self._mix(sub) if times else cls}"
            self.graph.clusters[vid] = (label, cluster, layer_path)
            inner_path = f"{layer_path}.*" if times else layer_path
            entries, exit_ = self.module(inner, vid + "/", inner_path, vid, level + 1)
            if entries and exit_:
                return entries, exit_
        kind_name = cls or (sub.kind if sub else "call")
        label = f"{target}: {self._mix(sub) if times else kind_name}"
        fused = bool(cls) and _fused_inside(self.program, cls)
        if fused:
            label += " (fused)"
        self.graph.nodes[vid] = Node(vid, label, "repeat" if times else "call", cluster,
                                     layer_path, fused)
        return [vid], vid

    def _mix(self, sub) -> str:
        """``Block x6``, or how many of each block where a pattern or a cycle mixes them
        (``Block x4 + Wide x2``)."""
        a, times = sub.args, self._times(sub)
        if a.get("pattern"):
            layers = [a["letters"][c] for c in a["pattern"]]
        elif a.get("cycle") and isinstance(times, int):
            classes = (sub.cls, *a["cycle"])
            layers = [classes[i % len(classes)] for i in range(times)]
        else:
            return f"{sub.cls} x{times}"
        return " + ".join(f"{cls} x{n}" for cls, n in Counter(layers).items())

    def _times(self, sub) -> int | str:
        try:
            return evaluate(sub.args["times"], self.program.params)
        except (ExprError, KeyError):
            return "N"


def block_graph(program: Program, expand: int = 0) -> VizGraph:
    """The model's forward as a VizGraph, blocks opened up to ``expand`` levels."""
    builder = _Builder(program, expand)
    builder.module(program.model, "", "", None, 0)
    return builder.graph


# --------------------------------------------------------------------------- Graphviz

STYLE = {"input": ("#dbeafe", "ellipse"), "output": ("#dbeafe", "ellipse"),
         "port": ("#f1f5f9", "ellipse"), "call": ("#ffffff", "box"),
         "repeat": ("#ede9fe", "box3d"), "op": ("#f8fafc", "box"), "fused": ("#fed7aa", "box")}
STATUS = {"added": "#bbf7d0", "removed": "#fecaca", "changed": "#fef08a",
          "renamed": "#bfdbfe"}


def fill(graph: VizGraph, node: Node) -> str:
    status = graph.status.get(node.path or "")
    return STATUS.get(status, STYLE[node.kind][0])


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: VizGraph) -> str:
    """DOT text; clusters nest as the blocks do."""
    lines = [f"digraph {_q(graph.title)} {{", "  rankdir=TB; node [fontname=Helvetica,"
             " fontsize=11, style=\"rounded,filled\"]; edge [fontname=Helvetica, fontsize=9,"
             " color=\"#64748b\"];"]

    def emit(cluster: str | None, indent: str) -> None:
        for node in graph.nodes.values():
            if node.cluster == cluster:
                color, shape = STYLE[node.kind]
                pen = ", penwidth=2, color=\"#ea580c\"" if node.fused else ""
                lines.append(f"{indent}{_q(node.id)} [label={_q(node.label)}, shape={shape}, "
                             f"fillcolor={_q(fill(graph, node) or color)}{pen}];")
        for cid, (label, parent, path) in graph.clusters.items():
            if parent == cluster:
                # translucent, so a highlighted layer inside a highlighted block stands out
                status = STATUS.get(graph.status.get(path, ""), "#f8fafc") + "66"
                lines.append(f"{indent}subgraph {_q('cluster_' + cid)} {{ label={_q(label)}; "
                             f"style=\"rounded,filled\"; fillcolor={_q(status)}; "
                             "color=\"#94a3b8\";")
                emit(cid, indent + "  ")
                lines.append(f"{indent}}}")

    emit(None, "  ")
    for src, dst, shape in graph.edges:
        lines.append(f"  {_q(src)} -> {_q(dst)} [label={_q(' ' + shape)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def have_dot() -> bool:
    return shutil.which("dot") is not None


def render_svg(graph: VizGraph, engine: str = "auto") -> str:
    """SVG text: Graphviz ``dot`` when installed (or ``engine="dot"``), else the built-in
    layered layout (``engine="python"``)."""
    if engine == "dot" or (engine == "auto" and have_dot()):
        return run_dot(to_dot(graph), "svg").decode("utf-8")
    from archcc.inspect.layout import layered_svg

    return layered_svg(graph)


def run_dot(dot_text: str, fmt: str) -> bytes:
    proc = subprocess.run(["dot", f"-T{fmt}"], input=dot_text.encode(), capture_output=True,
                          check=False, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"dot failed: {proc.stderr.decode(errors='replace')[:500]}")
    return proc.stdout



def spec_graph(path, sets=(), after: str | None = None, expand: int = 0) -> VizGraph:
    """The graph of a spec file: all passes (default), none (``after="none"``), or the IR as
    it stands after one pass (``after="fuse_attention"``)."""
    from archcc.inspect.load import compile_program
    from archcc.ir.passes import PASS_NAMES
    from archcc.parser import load_spec

    if after not in (None, "none", *PASS_NAMES):
        raise ValueError(f"unknown pass {after!r}; passes: none, {', '.join(PASS_NAMES)}")
    loaded = load_spec(path, tuple(sets))
    program = compile_program(loaded, stop_after=None if after in (None, "none") else after,
                              opt_level=0 if after == "none" else 1)
    graph = block_graph(program, expand)
    if after:
        graph.title += f" (after {after})"
    return graph


def write_picture(graph: VizGraph, out, png: bool = False, engine: str = "auto") -> list:
    """Write ``out`` (SVG) and, with ``png``, the PNG next to it; returns the paths."""
    from pathlib import Path

    from archcc.output import write_atomic

    out = Path(out)
    write_atomic(out, render_svg(graph, engine))
    written = [out]
    if png:
        if not have_dot():
            raise RuntimeError("PNG output needs Graphviz: apt-get install graphviz "
                               "(the SVG was written)")
        target = out.with_suffix(".png")
        target.write_bytes(run_dot(to_dot(graph), "png"))
        written.append(target)
    return written
