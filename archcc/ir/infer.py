"""Shape inference over a whole Program, before any tensor exists.

Starts at the model with the spec's input shapes and follows calls into blocks (a repeated
block must give back the shape it was given). Each node gets ``shape`` and ``dtype``; an error
is reported at the spec line of the node that failed, and nodes downstream of a failure are
left unknown so that independent mistakes are all reported in one run.
"""

from __future__ import annotations

from archcc import ops
from archcc.diagnostics import ArchccError, Diagnostic
from archcc.ir.graph import ModuleIR, Program, program_order
from archcc.ir.layers import Layer
from archcc.ir.params import symbol, to_sympy
from archcc.ir.shapes import FLOAT, INT, RULES, DimContext, Shape, ShapeError, fmt
from archcc.lazy import nx, sympy


def param_context(program: Program) -> DimContext:
    return DimContext({symbol(k): sympy.sympify(v) for k, v in program.params.items()
                       if not isinstance(v, bool)})


class _Inference:
    def __init__(self, program: Program):
        self.program = program
        self.ctx = param_context(program)
        self.errors: list[Diagnostic] = []
        self.done: set[str] = set()

    def module(self, module: ModuleIR, arg_shapes: list[tuple[Shape, str]],
               ctx: DimContext | None = None) -> tuple[Shape | None, str | None]:
        """Infer one module's graph for these argument shapes; returns its output's."""
        ctx = ctx or self.ctx
        g = module.graph
        first = module.name not in self.done
        known: dict[str, tuple[Shape | None, str | None]] = {}
        for node, (shape, dtype) in zip(module.inputs, arg_shapes, strict=True):
            known[node] = (shape, dtype)
        for node in program_order(g):
            data = g.nodes[node]
            if node in known or data["op"] == "output":
                continue
            known[node] = self._node(module, node, known, ctx)
        self.done.add(module.name)
        if first:
            for node, (shape, dtype) in known.items():
                g.nodes[node]["shape"], g.nodes[node]["dtype"] = shape, dtype
        out = g.graph.get("output")
        if out is None:
            return None, None
        outs = g.nodes[out]["inputs"]
        if first:
            g.nodes[out]["shape"] = known[outs[0]][0] if len(outs) == 1 else None
        return known[outs[0]] if len(outs) == 1 else (None, None)

    def _node(self, module, node, known, ctx):
        data = module.graph.nodes[node]
        op = data["op"]
        if op == "const":  # a lowering may mark integer constants int64
            return (), data["dtype"] or FLOAT
        if op == "get_attr":
            return self._attr(module, data)
        ins = [known.get(i, (None, None)) for i in data["inputs"]]
        if any(shape is None for shape, _ in ins):
            return None, None  # downstream of an earlier error: stay quiet
        shapes, dtypes = [s for s, _ in ins], [d for _, d in ins]
        try:
            if op == "call":
                return self._call(module, data, shapes, dtypes, ctx)
            return RULES[op](ctx, data["attrs"], shapes, dtypes)
        except ShapeError as exc:
            where = f"{module.name}" if module.kind == "lowered" else (
                ".".join(("model",) if module.kind == "model" else ("blocks", module.name)))
            self.errors.append(Diagnostic(data["loc"], f"{where}.forward", exc.message,
                                          exc.hint))
            return None, None

    def _attr(self, module, data):
        if data["shape"] is not None:
            return data["shape"], data["dtype"]
        layer = module.layers[data["attrs"]["target"]]
        return ops.get(layer.op).value_shape(layer)

    def _call(self, module: ModuleIR, data: dict, shapes, dtypes, ctx):
        target = data["attrs"]["target"]
        if module.kind == "lowered":
            sub = module.submodules[target]
            return ops.get_kind(sub.kind).call_shape(ctx, sub, shapes, dtypes)
        layer = _layer_for(module, target)
        if layer.op == "repeat":
            return self._repeat(layer, shapes, dtypes)
        result = ops.get(layer.op).target_shape(ctx, layer, target, shapes, dtypes,
                                                data["attrs"]["kwargs"])
        sub = module.submodules[target]
        if sub.kind == "class" and sub.cls not in self.done:
            self._lowered(self.program.modules[sub.cls])
        return result

    def _repeat(self, layer: Layer, shapes, dtypes):
        result = None
        for name in layer.spec.block_names():  # each block of a cycle or pattern
            result = self._repeat_block(layer, self.program.modules[name], shapes, dtypes)
        return result

    def _repeat_block(self, layer: Layer, block: ModuleIR, shapes, dtypes):
        if len(shapes) != len(block.inputs):
            raise ShapeError(f"{layer.name} repeats {block.name}, which takes "
                             f"{len(block.inputs)} input(s), got {len(shapes)}")
        shape, dtype = self.module(block, list(zip(shapes, dtypes, strict=True)))
        if shape is not None and (len(shape) != len(shapes[0]) or not all(
                self.ctx.equal(a, b) for a, b in zip(shape, shapes[0], strict=True))):
            raise ShapeError(f"{layer.name} repeats {block.name}, which must return the shape "
                             f"it is given: got {fmt(shapes[0])} -> {fmt(shape)}")
        return shape, dtype

    def _lowered(self, cls: ModuleIR) -> None:
        subs = {symbol(k): to_sympy(v) for k, v in cls.scalars.items() if k != "dropout"}
        subs = {k: v for k, v in subs.items() if k != v}
        ctx = DimContext(subs)
        arg_shapes = [(cls.graph.nodes[i]["shape"], cls.graph.nodes[i]["dtype"])
                      for i in cls.inputs]
        self.module(cls, arg_shapes, ctx)


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
    inference.module(model, args)
    for module in program.modules.values():  # classes never reached still get shapes
        if module.kind == "lowered" and module.name not in inference.done:
            inference._lowered(module)
    if not inference.errors:  # a block only an uncalled repeat holds has no input shapes
        inference.errors += _never_called(program, inference.done)
    if inference.errors:
        raise ArchccError(inference.errors)
    return program


def _never_called(program: Program, done: set[str]) -> list[Diagnostic]:
    """An error at each repeat whose blocks no forward ever runs: their shapes are unknown."""
    errors = []
    for module in program.modules.values():
        for layer in module.layers.values():
            blocks = layer.spec.block_names() if layer.op == "repeat" else []
            if module.name in done and any(b not in done for b in blocks):
                errors.append(Diagnostic(layer.loc, ".".join(layer.path),
                                         f"'{layer.name}' repeats {blocks[0]} but no forward "
                                         "line calls it", f"call it ({layer.name}(x)) or "
                                         "remove it"))
    return errors


def check_acyclic(module: ModuleIR) -> None:
    if not nx.is_directed_acyclic_graph(module.graph):
        raise ArchccError(Diagnostic(module.loc, module.name, "forward graph has a cycle"))
