"""A small layered (Sugiyama-style) layout in pure Python, for when Graphviz is absent.

Steps: layers by longest path from the inputs; long edges get dummy points so they bend
around boxes instead of crossing them; a few barycentre sweeps order each layer to cut
crossings; boxes sized from their labels; clusters drawn as rounded boxes around their
members. Output is plain SVG 1.1 that any browser shows::

    >>> svg = layered_svg(block_graph(program, expand=1))
"""

from __future__ import annotations

from collections import defaultdict
from html import escape

from archcc.inspect.viz import STATUS, STYLE, VizGraph, fill

CHAR_W, BOX_H, GAP_X, GAP_Y, PAD = 7.0, 30.0, 28.0, 46.0, 24.0


def _layers(graph: VizGraph) -> dict[str, int]:
    preds: dict[str, list[str]] = defaultdict(list)
    for src, dst, _ in graph.edges:
        preds[dst].append(src)
    rank: dict[str, int] = {}

    def depth(node: str, trail: frozenset = frozenset()) -> int:
        if node not in rank:
            ps = [p for p in preds[node] if p not in trail]
            rank[node] = 1 + max((depth(p, trail | {node}) for p in ps), default=-1)
        return rank[node]

    for node in graph.nodes:
        depth(node)
    return rank


def _with_dummies(graph: VizGraph, rank: dict[str, int]):
    """Split edges spanning several layers into chains through dummy points."""
    chains, layer_of = [], dict(rank)
    for i, (src, dst, label) in enumerate(graph.edges):
        chain = [src]
        for r in range(rank[src] + 1, rank[dst]):
            dummy = f"\0{i}.{r}"
            layer_of[dummy] = r
            chain.append(dummy)
        chains.append((chain + [dst], label))
    return chains, layer_of


def _order(layer_of: dict[str, int], chains) -> list[list[str]]:
    rows: dict[int, list[str]] = defaultdict(list)
    for node, r in layer_of.items():
        rows[r].append(node)
    order = [rows[r] for r in sorted(rows)]
    up, down = defaultdict(list), defaultdict(list)
    for chain, _ in chains:
        for a, b in zip(chain, chain[1:], strict=False):
            down[a].append(b)
            up[b].append(a)
    for sweep in range(6):
        rows_seq = range(1, len(order)) if sweep % 2 == 0 else range(len(order) - 2, -1, -1)
        for i in rows_seq:
            ref = order[i - 1] if sweep % 2 == 0 else order[i + 1]
            pos = {n: k for k, n in enumerate(ref)}
            links = up if sweep % 2 == 0 else down

            def bary(n: str, k: int, pos=pos, links=links) -> float:
                near = [pos[m] for m in links[n] if m in pos]
                return sum(near) / len(near) if near else k
            order[i] = [n for _, n in sorted(((bary(n, k), n) for k, n in enumerate(order[i])),
                                             key=lambda t: t[0])]
    return order


def _width(graph: VizGraph, node: str) -> float:
    if node.startswith("\0"):
        return 8.0
    return max(60.0, CHAR_W * len(graph.nodes[node].label) + 20)


def layered_svg(graph: VizGraph) -> str:
    """Lay out and draw ``graph`` as a standalone SVG document."""
    rank = _layers(graph)
    chains, layer_of = _with_dummies(graph, rank)
    order = _order(layer_of, chains)
    widths = [sum(_width(graph, n) for n in row) + GAP_X * (len(row) - 1) for row in order]
    total_w = max(widths, default=100) + 2 * PAD
    xy: dict[str, tuple[float, float]] = {}
    for r, row in enumerate(order):
        x = (total_w - widths[r]) / 2
        for node in row:
            w = _width(graph, node)
            xy[node] = (x + w / 2, PAD + 14 + r * (BOX_H + GAP_Y) + BOX_H / 2)
            x += w + GAP_X
    boxes = _cluster_boxes(graph, xy)
    left = min([PAD] + [b[0] - PAD for b in boxes.values()])
    xy = {n: (x - left, y) for n, (x, y) in xy.items()}
    boxes = {c: (x0 - left, y0, x1 - left, y1) for c, (x0, y0, x1, y1) in boxes.items()}
    total_w = max([total_w - left] + [b[2] + PAD for b in boxes.values()])
    height = PAD * 2 + 14 + len(order) * (BOX_H + GAP_Y)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w:.0f}" '
             f'height="{height:.0f}" viewBox="0 0 {total_w:.0f} {height:.0f}" '
             'font-family="Helvetica, Arial, sans-serif">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
             'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#64748b"/>'
             '</marker></defs>',
             f'<text x="{PAD}" y="{PAD}" font-size="13" font-weight="bold">'
             f'{escape(graph.title)}</text>']
    parts += _clusters(graph, boxes)
    parts += _edges(graph, chains, xy)
    parts += _boxes(graph, xy)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _cluster_boxes(graph: VizGraph, xy) -> dict[str, tuple[float, float, float, float]]:
    """(x0, y0, x1, y1) around each cluster's nodes, outer clusters drawn wider."""
    members: dict[str, list[str]] = defaultdict(list)
    for node in graph.nodes.values():
        c = node.cluster
        while c is not None:  # a node belongs to its cluster and every enclosing one
            members[c].append(node.id)
            c = graph.clusters[c][1]
    boxes = {}
    for cid in graph.clusters:
        nodes = members[cid]
        if not nodes:
            continue
        inset = 10 * (4 - min(_cluster_depth(graph, cid), 3))
        boxes[cid] = (min(xy[n][0] - _width(graph, n) / 2 for n in nodes) - inset,
                      min(xy[n][1] for n in nodes) - BOX_H / 2 - inset - 8,
                      max(xy[n][0] + _width(graph, n) / 2 for n in nodes) + inset,
                      max(xy[n][1] for n in nodes) + BOX_H / 2 + inset / 2)
    return boxes


def _clusters(graph: VizGraph, boxes) -> list[str]:
    out = []
    for cid in sorted(boxes, key=lambda c: _cluster_depth(graph, c)):
        label, _, path = graph.clusters[cid]
        x0, y0, x1, y1 = boxes[cid]
        color = STATUS.get(graph.status.get(path, ""), "#f8fafc")
        out.append(f'<g class="cluster" data-path="{escape(path)}"><rect x="{x0:.1f}" '
                   f'y="{y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" rx="8" '
                   f'fill="{color}" fill-opacity="0.4" stroke="#94a3b8"/>'
                   f'<text x="{x0 + 6:.1f}" y="{y0 + 12:.1f}" font-size="10" '
                   f'fill="#475569">{escape(label)}</text></g>')
    return out


def _cluster_depth(graph: VizGraph, cid: str) -> int:
    depth, parent = 0, graph.clusters[cid][1]
    while parent is not None:
        depth, parent = depth + 1, graph.clusters[parent][1]
    return depth


def _edges(graph: VizGraph, chains, xy) -> list[str]:
    out = []
    for chain, label in chains:
        pts = [xy[n] for n in chain]
        pts[0] = (pts[0][0], pts[0][1] + BOX_H / 2)
        pts[-1] = (pts[-1][0], pts[-1][1] - BOX_H / 2)
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="#64748b" '
                   'marker-end="url(#arrow)"/>')
        if label:
            (xa, ya), (xb, yb) = pts[0], pts[1]
            out.append(f'<text x="{(xa + xb) / 2 + 4:.1f}" y="{(ya + yb) / 2 + 3:.1f}" '
                       f'font-size="9" fill="#475569">{escape(label)}</text>')
    return out


def _boxes(graph: VizGraph, xy) -> list[str]:
    out = []
    for node in graph.nodes.values():
        x, y = xy[node.id]
        w = _width(graph, node.id)
        rx = BOX_H / 2 if STYLE[node.kind][1] == "ellipse" else 5
        stroke = ' stroke="#ea580c" stroke-width="2"' if node.fused else ' stroke="#334155"'
        out.append(f'<g class="node {node.kind}" data-path="{escape(node.path or "")}">'
                   f'<rect x="{x - w / 2:.1f}" y="{y - BOX_H / 2:.1f}" width="{w:.1f}" '
                   f'height="{BOX_H}" rx="{rx}" fill="{fill(graph, node)}"{stroke}/>'
                   f'<text x="{x:.1f}" y="{y + 4:.1f}" font-size="11" text-anchor="middle">'
                   f'{escape(node.label)}</text></g>')
    return out
