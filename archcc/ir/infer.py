"""Shape inference over a whole Program, before any tensor exists.

Starts at the model with the spec's input shapes and follows calls into blocks, instance by
instance: a stage loop infers each stage with its own arguments, in its own :class:`Frame`.
Each distinct ``(block, arguments, input shapes)`` is inferred once, so a 24-block stage
costs what a 2-block stage does. Each node gets ``shape`` and ``dtype``; a block built with
several arguments keeps the shapes that hold for every instance, in its argument names
(``(B, grid, grid, dim)``), and none where they differ. An error is reported at the spec line
of the node that failed (naming the instance), and nodes downstream of a failure stay
unknown so that independent mistakes are all reported in one run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from archcc import ops
from archcc.diagnostics import ArchccError, Diagnostic
from archcc.ir import infer_calls
from archcc.ir.graph import ModuleIR, Program, program_order
from archcc.ir.layers import Layer
from archcc.ir.params import dim_values, symbol, to_sympy
from archcc.ir.shapes import FLOAT, INT, RULES, DimContext, ShapeError
from archcc.lazy import nx

STACK = "stack"


def param_context(program: Program) -> DimContext:
    return DimContext(dim_values(program.params))


@dataclass
class Frame:
    """One module inferred in one instance: what its names mean there."""

    env: dict  # concrete values: params and the instance's arguments
    sym: dict = field(default_factory=dict)  # argument -> dim over the model's names
    ctx: DimContext | None = None
    label: str = ""  # "layers.2" (empty for the model and argument-free blocks)


class _Inference:
    def __init__(self, program: Program):
        self.program = program
        self.ctx = param_context(program)
        self.errors: list[Diagnostic] = []
        self.reported: set[tuple] = set()
        self.done: set[str] = set()
        self.memo: dict[tuple, tuple] = {}
        self.records: dict[str, list[tuple[Frame, dict]]] = {}  # block -> its inferences
        self.after: dict[str, dict[int, tuple]] = {}  # call node -> stack arg -> contents

    def module(self, module: ModuleIR, args: list[tuple], frame: Frame) -> tuple[dict, tuple]:
        """Infer one module's graph for these arguments in ``frame``; returns every node's
        (shape, dtype) and the module's output (shape, dtype)."""
        g = module.graph
        known: dict[str, tuple] = dict(zip(module.inputs, args, strict=True))
        for node in program_order(g):
            if node in known or g.nodes[node]["op"] == "output":
                continue
            known[node] = self._node(module, node, known, frame)
        out = g.graph.get("output")
        if out is None:
            return known, (None, None)
        outs = g.nodes[out]["inputs"]
        return known, known[outs[0]] if len(outs) == 1 else (None, None)

    def _node(self, module, node, known, frame):
        data = module.graph.nodes[node]
        op = data["op"]
        if op == "const":  # a lowering may mark integer constants int64
            return (), data["dtype"] or FLOAT
        if op == "get_attr":
            return self._attr(module, data)
        ins = [known.get(i, (None, None)) for i in data["inputs"]]
        if any(shape is None for shape, _ in ins) and op != "stack_new":
            return None, None  # downstream of an earlier error: stay quiet
        shapes, dtypes = [s for s, _ in ins], [d for _, d in ins]
        try:
            if op == "stack_after":
                return infer_calls.after_shape(self, module.graph, node, known)
            if op in infer_calls.STACK_OPS:
                return infer_calls.stack_op(self, node, data, shapes, dtypes)
            if STACK in dtypes and op != "call":
                holder = module.graph.nodes[data["inputs"][dtypes.index(STACK)]]
                raise ShapeError(f"'{holder['attrs'].get('stack') or holder['var']}' is a "
                                 "stack, not a tensor", "take tensors from it with pop(skips)")
            if op == "call":
                return self._call(module, node, data, shapes, dtypes, frame)
            return RULES[op](frame.ctx or self.ctx, data["attrs"], shapes, dtypes)
        except ShapeError as exc:
            self.report(module, data, exc, frame)
            return None, None

    def report(self, module: ModuleIR, data: dict, exc: ShapeError, frame: Frame) -> None:
        where = f"{module.name}" if module.kind == "lowered" else (
            ".".join(("model",) if module.kind == "model" else ("blocks", module.name)))
        message = exc.message + (f" (in {frame.label})" if frame.label else "")
        if (data["loc"], exc.message) not in self.reported:
            self.reported.add((data["loc"], exc.message))
            self.errors.append(Diagnostic(data["loc"], f"{where}.forward", message, exc.hint))

    def _attr(self, module, data):
        if data["shape"] is not None:
            return data["shape"], data["dtype"]
        layer = module.layers[data["attrs"]["target"]]
        return ops.get(layer.op).value_shape(layer)

    def _call(self, module: ModuleIR, node: str, data: dict, shapes, dtypes, frame: Frame):
        target = data["attrs"]["target"]
        if module.kind == "lowered":
            sub = module.submodules[target]
            return ops.get_kind(sub.kind).call_shape(self.ctx if frame.ctx is None else frame.ctx,
                                                     sub, shapes, dtypes)
        layer = _layer_for(module, target)
        sub = module.submodules[target]
        if sub.when is not None and not infer_calls.holds(sub.when, frame.env):
            return shapes[0], dtypes[0]  # nn.Identity() in this instance
        if layer.structural:
            return infer_calls.structural(self, module, node, layer, shapes, dtypes, frame)
        result = ops.get(layer.op).target_shape(frame.ctx or self.ctx, layer, target, shapes,
                                                dtypes, data["attrs"]["kwargs"])
        if sub.kind == "class" and sub.cls not in self.done:
            self._lowered(self.program.modules[sub.cls])
        return result

    def _lowered(self, cls: ModuleIR) -> None:
        self.done.add(cls.name)
        subs = {symbol(k): to_sympy(v) for k, v in cls.scalars.items() if k != "dropout"}
        subs = {k: v for k, v in subs.items() if k != v}
        arg_shapes = [(cls.graph.nodes[i]["shape"], cls.graph.nodes[i]["dtype"])
                      for i in cls.inputs]
        known, out = self.module(cls, arg_shapes, Frame({}, ctx=DimContext(subs)))
        _record(cls, known, out)


def _record(module: ModuleIR, known: dict, out: tuple) -> None:
    """Write inferred shapes onto the graph (stacks as the empty shape)."""
    g = module.graph
    for node, (shape, dtype) in known.items():
        g.nodes[node]["shape"] = () if dtype == STACK else shape
        g.nodes[node]["dtype"] = dtype
    output = g.graph.get("output")
    if output is not None:
        g.nodes[output]["shape"] = out[0] if len(g.nodes[output]["inputs"]) == 1 else None


def _layer_for(module: ModuleIR, target: str) -> Layer:
    """The spec layer that owns the submodule ``target`` (``attn_norm`` is ``attn``'s)."""
    if target in module.layers:
        return module.layers[target]
    return next(layer for layer in module.layers.values()
                if any(sub.name == target for sub in layer.submodules))


def infer_shapes(program: Program) -> Program:
    """Annotate every node of every module with its symbolic shape and dtype."""
    inference = _Inference(program)
    model = program.model
    args = []
    for name in model.inputs:
        input_name = model.graph.nodes[name]["attrs"]["name"]
        spec = program.inputs[input_name]
        shape = program.input_shapes[input_name]
        args.append((shape, INT if spec.dtype == "int64" else spec.dtype))
    known, out = inference.module(model, args, Frame(dict(program.params), ctx=inference.ctx))
    _record(model, known, out)
    taken = {*program.params, *(str(s) for shape in program.input_shapes.values()
                                for d in shape for s in getattr(d, "free_symbols", ()))}
    for module in program.modules.values():
        if module.kind == "block":  # a block built nowhere at these values: unchecked
            infer_calls.generalize(module, inference.records.get(module.name, []), taken)
    general = {name for name, records in inference.records.items()
               if len(records) > 1 or program.modules[name].args}
    infer_calls.mark_varying(model, program.modules, general)
    for module in program.modules.values():  # classes never reached still get shapes
        if module.kind == "lowered" and module.name not in inference.done:
            inference._lowered(module)
    if inference.errors:
        raise ArchccError(inference.errors)
    return program


def check_acyclic(module: ModuleIR) -> None:
    if not nx.is_directed_acyclic_graph(module.graph):
        raise ArchccError(Diagnostic(module.loc, module.name, "forward graph has a cycle"))
