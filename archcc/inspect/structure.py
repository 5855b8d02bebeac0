"""The architecture of a spec as comparable facts: layers with resolved settings, wiring.

``layers(inspected)`` flattens the model: repeats become ``h`` (the repeat) and
``h.*.attn`` (a layer of the repeated block), every size resolved to a number::

    >>> [(l.path, l.kind) for l in layers(gpt2)][:5]
    [('wte', 'embedding'), ('wpe', 'embedding'), ('drop', 'dropout'), ('h', 'repeat Block'),
     ('h.*.ln_1', 'layernorm')]
    >>> next(l for l in layers(gpt2) if l.path == "h.*.attn").fields["heads"]
    12

``wiring(inspected)`` reads each block's forward graph and names its residual connections
and where their norms sit: ``{"Block": {"attn": "pre-norm", "mlp": "pre-norm"}}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archcc import ops
from archcc.inspect.load import Inspected
from archcc.lazy import nx
from archcc.parser.expr import ExprError, ExprSyntaxError, evaluate, parse_expr
from archcc.parser.structure import BlockLayer, Repeat


def norm_ops() -> set[str]:
    """The normalisation ops (and kinds of the same name)."""
    return {o.name for o in ops.all_ops() if o.is_norm}


@dataclass
class LayerInfo:
    """One spec layer: where it sits, what it is, its settings with sizes resolved."""

    path: str  # h.*.attn, layers.2.blocks
    name: str  # attn
    parent: str  # "" for the model, "h.*" inside a repeat, "layers.2" inside a stage
    kind: str  # "attention", "ffn", "repeat Block", "block SwinTransformerStage", "residual"
    fields: dict[str, Any] = field(default_factory=dict)
    block: str | None = None  # for repeats and blocks used as layers: the block's name
    reads: tuple[str, ...] = ()  # ops feeding its calls, e.g. ("positions",) for wpe
    inner: str | None = None  # the parent path of its block's layers (h.*, layers.2)

    @property
    def facet(self) -> str:
        """A short op type: ``ffn swiglu``, ``attention causal``, ``residual post-layernorm``."""
        op = ops.get(self.kind)
        return op.facet(self.fields) if op is not None else self.kind


def _resolve(value: Any, params: dict[str, Any]) -> Any:
    """A size or setting as a number where it is an expression over params."""
    if not isinstance(value, str):
        return value
    try:
        return evaluate(parse_expr(value), params)
    except (ExprError, ExprSyntaxError, ValueError, TypeError):
        return value  # a plain setting such as act: gelu


def _fields(layer: Any, params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in layer.model_dump(by_alias=True).items():
        if key in ("op", "repeat", "when") and not prefix:
            continue
        if isinstance(value, dict):  # residual's wrapped layer
            out.update({f"{key}.{k}": _resolve(v, params) for k, v in value.items()
                        if k != "when"})
        elif isinstance(value, list):
            out[prefix + key] = [_resolve(v, params) for v in value]
        else:
            out[prefix + key] = _resolve(value, params)
    return out


def layers(inspected: Inspected) -> list[LayerInfo]:
    """Every layer of the model and of the blocks it builds, in spec order.

    A repeat whose instances are alike is one layer ``h`` with its block's layers under
    ``h.*``; a stage loop (instances with other arguments) lists each instance ``layers.2``
    with its arguments as fields, its block's layers under it (``layers.2.blocks``), so a
    deeper stage is one changed field, not new layers."""
    from archcc.ir.instances import elements, is_on, is_stage_loop
    from archcc.ir.params import ParamScope

    spec, params = inspected.loaded.spec, inspected.program.params
    out: list[LayerInfo] = []
    scope = ParamScope(inspected.loaded, dict(params))

    def visit(layer_map: dict, module: str, parent: str, env: dict, seen: tuple) -> None:
        reads = _reads(inspected.program.modules.get(module))
        for name, layer in layer_map.items():
            path = f"{parent}.{name}" if parent else name
            if not isinstance(layer, Repeat | BlockLayer):
                out.append(LayerInfo(path, name, parent, layer.op, _fields(layer, env),
                                     reads=reads.get(name, ())))
                continue
            found = elements(scope, layer, env, spec.blocks, ()) or [] \
                if is_on(scope, layer, env, ()) else []
            info = _structure_info(layer, path, name, parent, found, env,
                                   reads.get(name, ()))
            out.append(info)
            alike = isinstance(layer, BlockLayer) or (not is_stage_loop(layer)
                                                      and layer.pattern is None)
            if alike and found and found[0].block not in seen:
                info.inner = path + (".*" if isinstance(layer, Repeat) else "")
                visit(spec.blocks[found[0].block].layers, found[0].block, info.inner,
                      {**params, **found[0].args}, (*seen, found[0].block))
                continue
            for element in found if not alike else ():  # a stage loop: each instance
                here = f"{path}.{element.index}"
                out.append(LayerInfo(here, str(element.index), path,
                                     f"block {element.block}", dict(element.args),
                                     element.block, inner=here))
                if element.block not in seen:
                    visit(spec.blocks[element.block].layers, element.block, here,
                          {**params, **element.args}, (*seen, element.block))

    visit(spec.model.layers, inspected.program.model.name, "", dict(params), ())
    return out


def _structure_info(layer, path, name, parent, found, env, reads) -> LayerInfo:
    """The row of a repeat (``repeat Block``, times and shared settings) or a block layer."""
    if isinstance(layer, BlockLayer):
        block = found[0].block if found else layer.block
        return LayerInfo(path, name, parent, f"block {block}",
                         dict(found[0].args) if found else {}, block, reads)
    letters = ", ".join(f"{k}={v}" for k, v in layer.blocks.items())
    kind = f"repeat {layer.repeat}" if layer.pattern is None else \
        f"repeat {layer.pattern} ({letters})"
    fields: dict[str, Any] = {"times": len(found)}
    if layer.steps is not None:
        fields["steps"] = _resolve(layer.steps, env)
    block = found[0].block if found else (layer.block_names() or [None])[0]
    return LayerInfo(path, name, parent, kind, fields, block, reads)


def _reads(module) -> dict[str, tuple[str, ...]]:
    """Per called layer, the ops of what it reads: a position table reads ``positions``."""
    if module is None:
        return {}
    g, out = module.graph, {}
    for _, data in g.nodes(data=True):
        if data["op"] == "call":
            ops = tuple(sorted({g.nodes[i]["op"] for i in data["inputs"]}))
            out.setdefault(data["attrs"]["target"], ops)
    return out


# ------------------------------------------------------------------------------ wiring


def _calls(g: nx.DiGraph, nodes: set[str] | list[str]) -> list[str]:
    order = {n: i for i, n in enumerate(g.graph.get("order") or g.nodes)}
    return [g.nodes[n]["attrs"]["target"] for n in sorted(nodes, key=lambda n: order.get(n, 0))
            if g.nodes[n]["op"] == "call"]


def residuals(module) -> dict[str, str]:
    """``{layer: "pre-norm" | "post-norm" | "no norm"}`` for each residual add in a block.

    An ``add(skip, branch)`` is a residual when ``skip`` feeds ``branch``; the layers on the
    path between them are what it wraps. A norm call first on the branch is pre-norm; a
    norm call reading the sum is post-norm.
    """
    g = module.graph
    norms = {n for n, s in module.submodules.items() if s.kind in norm_ops()}
    out: dict[str, str] = {}
    for node, data in g.nodes(data=True):
        if data["op"] != "add" or len(data["inputs"]) != 2:
            continue
        a, b = data["inputs"]
        for skip, branch in ((a, b), (b, a)):
            if skip in nx.ancestors(g, branch):
                wrapped = _calls(g, (nx.ancestors(g, branch) | {branch})
                                 - nx.ancestors(g, skip) - {skip})
                main = [c for c in wrapped if c not in norms]
                if not main:
                    continue
                after = _calls(g, set(g.successors(node)))
                place = "pre-norm" if wrapped[0] in norms else \
                    "post-norm" if any(c in norms for c in after) else "no norm"
                out[main[-1] if len(main) == 1 else "+".join(main)] = place
                break
    return out


def wiring(inspected: Inspected) -> dict[str, dict[str, str]]:
    """Residual placement per block and for the model: ``{"Block": {"attn": "pre-norm"}}``."""
    return {name: res for name, m in inspected.program.modules.items()
            if m.kind in ("block", "model") and (res := residuals(m))}
