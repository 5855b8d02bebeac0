"""Spec -> IR: declare each block's layers, then interpret its forward wiring into nodes.

Every statement of a forward program becomes a handful of nodes tagged with the statement's
number, so codegen can print the user's line back almost verbatim::

    x = x + attn(ln_1(x))   ->  %ln_1 = call(%x, target=ln_1)
                                %attn = call(%ln_1, target=attn)
                                %x    = add(%x, %attn)            (all stmt=1)

Problems are collected, not raised one by one: a run reports every undefined name at once.
"""

from __future__ import annotations

import networkx as nx

from archcc.diagnostics import ArchccError, Diagnostic
from archcc.ir import lowering
from archcc.ir.graph import ModuleIR, Program, Submodule, add_node, new_graph
from archcc.ir.layers import Layer, declare
from archcc.ir.params import ParamScope, to_sympy
from archcc.parser import LoadedSpec
from archcc.parser.expr import (
    Assign,
    BinOp,
    Call,
    Expr,
    ExprSyntaxError,
    Name,
    Neg,
    Num,
    Pos,
    Return,
    Slice,
    Subscript,
    did_you_mean,
    parse_program,
)
from archcc.parser.yaml_loader import SpecPath

# forward-language functions that are not layers: name -> (IR op, positional arity)
BUILTINS = {"relu": ("relu", 1), "gelu": ("gelu", 1), "gelu_tanh": ("gelu_tanh", 1),
            "silu": ("silu", 1), "tanh": ("tanh", 1), "sigmoid": ("sigmoid", 1),
            "softmax": ("softmax", 1), "matmul": ("matmul", 2), "transpose": ("transpose", 3),
            "positions": ("positions", 1), "prepend": ("prepend", 2),
            "flatten": ("flatten", 1)}
_BUILTIN_DEFAULTS = {"softmax": {"dim": -1}, "flatten": {"start": 1, "end": -1}}


class _Forward:
    """Interprets one forward program into the graph of one block or the model."""

    def __init__(self, scope: ParamScope, module: ModuleIR, path: SpecPath,
                 layers: dict[str, Layer], classes: _Classes, broken: set[str]):
        self.scope, self.module, self.path = scope, module, path
        self.broken = broken  # layers whose declaration failed: already reported
        self.g, self.layers, self.classes = module.graph, layers, classes
        self.vars: dict[str, str] = {}
        self.stmt = 0
        self.errors: list[Diagnostic] = []

    # -------------------------------------------------------------------------- driver
    def run(self, text: str, inputs: list[str]) -> None:
        for name in inputs:
            node = add_node(self.g, "input", var=name, name=name)
            self.g.graph["inputs"].append(node)
            self.vars[name] = node
        try:
            program = parse_program(text)
        except ExprSyntaxError as exc:
            self.errors.append(Diagnostic(self._loc(exc.pos), self._where(), exc.message,
                                          exc.hint))
            return
        result, return_stmt = None, None
        for statement in program:
            self.stmt += 1
            try:
                result = self._statement(statement)
            except _Abort:
                result = None
                if isinstance(statement, Assign):  # later uses are already explained
                    self.broken.update(statement.targets)
                    for target in statement.targets:
                        self.vars.pop(target, None)
            if isinstance(statement, Return):
                return_stmt = self.stmt
                break
        if result is None and program and not isinstance(program[-1], Return) and \
                isinstance(program[-1], Assign):
            result = [self.vars.get(program[-1].targets[-1])]
        if not program:
            self.errors.append(Diagnostic(self._loc(Pos()), self._where(), "forward is empty"))
        if result and all(result):
            # a `return` line's nodes may be inlined into it; a bare last name is returned
            self.g.graph["output"] = add_node(self.g, "output", result, stmt=return_stmt)

    def _statement(self, statement) -> list[str] | None:
        if isinstance(statement, Return):
            return [self._expr(v) for v in statement.values]
        value = self._expr(statement.value)
        if len(statement.targets) != 1:
            self._fail(statement.pos, "unpacking several names is not supported here",
                       "assign one name per line")
        target = statement.targets[0]
        if target in self.layers or target in self.scope.values:
            self._fail(statement.pos, f"cannot assign to '{target}': it names a "
                       f"{'layer' if target in self.layers else 'param'}")
        self.g.nodes[value]["var"] = target
        self.vars[target] = value
        return None

    # ---------------------------------------------------------------------- expressions
    def _expr(self, e: Expr) -> str:
        if isinstance(e, Num):
            return self._node("const", [], e.pos, value=e)
        if isinstance(e, Name):
            return self._name(e)
        if isinstance(e, Neg):
            operand = self._expr(e.operand)
            if self.g.nodes[operand]["op"] == "const":
                return self._node("const", [], e.pos, value=e)
            return self._node("neg", [operand], e.pos)
        if isinstance(e, BinOp):
            return self._binop(e)
        if isinstance(e, Call):
            return self._call(e)
        if isinstance(e, Subscript):
            return self._subscript(e)
        self._fail(getattr(e, "pos", Pos()), "unsupported expression")

    def _name(self, e: Name) -> str:
        if e.id in self.broken and e.id not in self.vars:
            raise _Abort
        if e.id in self.vars:
            return self.vars[e.id]
        if e.id in self.scope.values:
            return self._node("const", [], e.pos, value=e)
        layer = self.layers.get(e.id)
        if layer is not None and layer.op == "parameter":
            return self._node("get_attr", [], e.pos, var=e.id, target=e.id)
        if layer is not None:
            self._fail(e.pos, f"layer '{e.id}' must be called, e.g. {e.id}(x)")
        known = set(self.vars) | set(self.layers) | set(self.scope.values)
        self._fail(e.pos, f"undefined name '{e.id}'", did_you_mean(e.id, known)
                   or "names are block inputs, earlier assignments, layers or params")

    def _binop(self, e: BinOp) -> str:
        left, right = self._expr(e.left), self._expr(e.right)
        if e.op not in ("add", "sub", "mul", "div", "pow", "matmul"):
            self._fail(e.pos, f"operator {e.op} is only allowed in param expressions")
        if all(self.g.nodes[n]["op"] == "const" for n in (left, right)):
            return self._node("const", [], e.pos, value=e)  # folded: both sides are params
        return self._node(e.op, [left, right], e.pos)

    def _subscript(self, e: Subscript) -> str:
        value = self._expr(e.value)
        index = []
        for item in e.indices:
            if isinstance(item, Slice):
                bounds = (self._static_int(item.lower), self._static_int(item.upper))
                index.append(bounds)
            else:
                index.append(self._static_int(item))
        return self._node("subscript", [value], e.pos, index=tuple(index))

    def _static_int(self, e: Expr | None) -> int | None:
        if e is None:
            return None
        try:
            value = self.scope.value(e)
        except Exception:  # noqa: BLE001 - reported as a wiring error below
            value = None
        if not isinstance(value, int) or isinstance(value, bool):
            self._fail(getattr(e, "pos", Pos()), "indices must be integer constants")
        return value

    def _call(self, e: Call) -> str:
        if e.func in self.broken:
            raise _Abort
        if e.func in self.layers:
            return self._call_layer(self.layers[e.func], e)
        if e.func in BUILTINS:
            return self._call_builtin(e)
        known = set(self.layers) | set(BUILTINS)
        self._fail(e.pos, f"'{e.func}' is neither a layer of this block nor a function",
                   did_you_mean(e.func, known) or f"functions: {', '.join(sorted(BUILTINS))}")

    def _call_builtin(self, e: Call) -> str:
        op, arity = BUILTINS[e.func]
        attrs = dict(_BUILTIN_DEFAULTS.get(e.func, {}))
        args = list(e.args)
        if op == "transpose":
            if len(args) != 3:
                self._fail(e.pos, "transpose(x, dim0, dim1) takes 3 arguments")
            attrs = {"dim0": self._static_int(args[1]), "dim1": self._static_int(args[2])}
            args = args[:1]
        elif len(args) != arity:
            self._fail(e.pos, f"{e.func}() takes {arity} argument(s), got {len(args)}")
        for key, value in e.kwargs:
            if key not in attrs:
                self._fail(e.pos, f"{e.func}() has no keyword '{key}'")
            attrs[key] = self._static_int(value)
        return self._node(op, [self._expr(a) for a in args], e.pos, **attrs)

    def _call_layer(self, layer: Layer, e: Call) -> str:
        args = [self._expr(a) for a in e.args]
        kwargs = tuple(k for k, _ in e.kwargs)
        args += [self._expr(v) for _, v in e.kwargs]
        if not e.args:
            self._fail(e.pos, f"{layer.name}() needs at least one input")
        if layer.op == "parameter":
            self._fail(e.pos, f"'{layer.name}' is a parameter, not a layer; use it as a value")
        if layer.op == "residual":
            return self._residual(layer, args, kwargs, e.pos)
        if layer.op == "repeat":
            args, kwargs = self._block_args(layer, args, kwargs, e.pos), ()
        self.classes.bind(layer, kwargs, self)
        return self._node("call", args, e.pos, var=layer.name, target=layer.name,
                          kwargs=kwargs, repeat=layer.op == "repeat")

    def _block_args(self, layer: Layer, args: list[str], kwargs: tuple, pos: Pos) -> list[str]:
        """Order a repeat's arguments as the block declares its inputs (keywords by name)."""
        names = self.scope.loaded.spec.blocks[layer.spec.repeat].inputs
        positional = args[:len(args) - len(kwargs)]
        by_name = dict(zip(names, positional, strict=False))
        for key, value in zip(kwargs, args[len(positional):], strict=True):
            if key not in names or key in by_name:
                self._fail(pos, f"{layer.name}(): {layer.spec.repeat} has no (other) input "
                           f"named '{key}'", f"its inputs: {', '.join(names)}")
            by_name[key] = value
        if len(positional) > len(names) or set(by_name) != set(names):
            self._fail(pos, f"{layer.name}() repeats {layer.spec.repeat}, which takes "
                       f"{len(names)} input(s) ({', '.join(names)}), got {len(args)}")
        return [by_name[n] for n in names]

    def _residual(self, layer: Layer, args: list[str], kwargs: tuple, pos: Pos) -> str:
        x, rest = args[0], args[1:]
        norm = f"{layer.name}_norm"
        self.classes.bind(layer.inner, kwargs, self)
        if layer.spec.placement == "pre":
            normed = self._node("call", [x], pos, var=norm, target=norm, kwargs=())
            inner = self._node("call", [normed, *rest], pos, var=layer.name,
                               target=layer.name, kwargs=kwargs)
            return self._node("add", [x, inner], pos)
        inner = self._node("call", [x, *rest], pos, var=layer.name, target=layer.name,
                           kwargs=kwargs)
        summed = self._node("add", [x, inner], pos)
        return self._node("call", [summed], pos, var=norm, target=norm, kwargs=())

    # -------------------------------------------------------------------------- helpers
    def _node(self, op: str, inputs: list[str], pos: Pos, var: str | None = None,
              **attrs) -> str:
        node = add_node(self.g, op, inputs, base=var or op, loc=self._loc(pos), var=var,
                        stmt=self.stmt, **attrs)
        if op == "const":
            self.g.nodes[node].update(shape=(), dtype="float32")
        return node

    def _loc(self, pos: Pos):
        return self.scope.loaded.where.text((*self.path, "forward"), pos)

    def _where(self) -> str:
        return ".".join((*self.path, "forward"))

    def _fail(self, pos: Pos, message: str, hint: str | None = None):
        self.errors.append(Diagnostic(self._loc(pos), self._where(), message, hint))
        raise _Abort


class _Abort(Exception):
    """Stops interpreting one statement after its error was recorded."""


class _Classes:
    """The lowered classes of a program, one per distinct signature, with unique names."""

    def __init__(self):
        self.by_signature: dict[tuple, ModuleIR] = {}
        self.names: set[str] = set()

    def bind(self, layer: Layer, kwargs: tuple, fwd: _Forward) -> None:
        """Fix the facets of a lowered layer at its (first) call and attach its class."""
        spec = layer.spec
        builders = {
            "attention": lambda: lowering.attention(spec.causal, spec.cross,
                                                    spec.qkv == "fused", "mask" in kwargs),
            "ffn": lambda: lowering.ffn(spec.act, spec.gated),
            "patchify": lowering.patchify,
            "sinusoidal": lowering.sinusoidal,
        }
        if layer.op not in builders:
            return
        facets = (layer.op, tuple(sorted(kwargs)))
        if layer.lowered is not None and layer.lowered != facets:
            raise ArchccError(Diagnostic(layer.loc, ".".join(layer.path),
                                         f"{layer.name} is called both with and without "
                                         "mask=; use two layers"))
        layer.lowered = facets
        cls = builders[layer.op]()
        if cls.signature not in self.by_signature:
            cls.name = self._unique(cls.name, cls.signature)
            cls.graph.graph["name"] = cls.name
            self.by_signature[cls.signature] = cls
        layer.submodules[-1].cls = self.by_signature[cls.signature].name

    def _unique(self, name: str, signature: tuple) -> str:
        candidates = [name, "Masked" + name if "Attention" in name else name + "Alt"]
        candidates += [f"{name}{i}" for i in range(2, 100)]
        chosen = next(c for c in candidates if c not in self.names)
        self.names.add(chosen)
        return chosen


def _block_order(loaded: LoadedSpec) -> list[str]:
    """Blocks in dependency order (a repeated block before its user); cycles are errors."""
    deps = nx.DiGraph()
    rank = {name: i for i, name in enumerate(loaded.spec.blocks)}
    for name, block in loaded.spec.blocks.items():
        deps.add_node(name)
        for layer in block.layers.values():
            if hasattr(layer, "repeat") and layer.repeat in loaded.spec.blocks:
                deps.add_edge(layer.repeat, name)
    try:
        return list(nx.lexicographical_topological_sort(deps, key=rank.__getitem__))
    except nx.NetworkXUnfeasible:
        cycle = " -> ".join(a for a, _ in nx.find_cycle(deps))
        raise ArchccError(Diagnostic(loaded.where.key(("blocks",)), "blocks",
                                     f"blocks repeat each other in a cycle: {cycle}")) from None


def _declare_layers(scope: ParamScope, layers_spec: dict, path: SpecPath,
                    blocks: dict) -> tuple[dict[str, Layer], set[str]]:
    layers, broken = {}, set()
    for name, spec in layers_spec.items():
        layer = declare(scope, name, spec, (*path, "layers", name), blocks)
        if layer is not None:
            layers[name] = layer
        else:
            broken.add(name)
    for layer in layers.values():
        tie = getattr(layer.spec, "tie", None)
        if tie is not None and (tie not in layers or layers[tie].op not in ("embedding",
                                                                            "linear")):
            scope.errors.append(Diagnostic(scope.loaded.where.key((*layer.path, "tie")),
                                           ".".join((*layer.path, "tie")),
                                           f"tie target '{tie}' is not an embedding or linear "
                                           "layer of this block",
                                           did_you_mean(tie, set(layers))))
        elif tie is not None and _weight_shape(scope, layer) != _weight_shape(scope, layers[tie]):
            scope.errors.append(Diagnostic(
                scope.loaded.where.key((*layer.path, "tie")), ".".join((*layer.path, "tie")),
                f"cannot tie {layer.name} {_weight_shape(scope, layer)} to {tie} "
                f"{_weight_shape(scope, layers[tie])}: weights differ in shape",
                "a tied linear needs in = the embedding's dim and out = its num"))
    return layers, broken


def _weight_shape(scope: ParamScope, layer: Layer) -> tuple[int, int]:
    """(rows, cols) of an embedding's or linear's weight, with concrete sizes."""
    if layer.op == "embedding":
        return scope.value(layer.sizes["num"]), scope.value(layer.sizes["dim"])
    return scope.value(layer.sizes["out"]), scope.value(layer.sizes["in_"])


def _module(scope, classes, name, kind, spec_block, path, inputs, blocks) -> ModuleIR:
    module = ModuleIR(name, kind, new_graph(name), doc=spec_block.doc or "",
                      loc=scope.loaded.where.key(path))
    layers, broken = _declare_layers(scope, spec_block.layers, path, blocks)
    fwd = _Forward(scope, module, path, layers, classes, broken)
    fwd.run(spec_block.forward, inputs)
    scope.errors.extend(fwd.errors)
    for layer in layers.values():
        if layer.lowered is None:  # declared, never called: still instantiate its class
            classes.bind(layer, (), fwd)
        for sub in layer.submodules:
            module.submodules[sub.name] = sub
    module.layers = layers
    return module


def build(loaded: LoadedSpec) -> Program:
    """Build the IR of a validated spec; raises ArchccError with every problem found."""
    scope = ParamScope.from_spec(loaded)
    spec = loaded.spec
    classes = _Classes()
    classes.names.update(spec.blocks)
    blocks: dict[str, ModuleIR] = {}
    for name in _block_order(loaded):
        block = spec.blocks[name]
        blocks[name] = _module(scope, classes, name, "block", block, ("blocks", name),
                               block.inputs, spec.blocks)
    class_name = _model_class_name(spec.name, classes.names)
    model = _module(scope, classes, class_name, "model", spec.model, ("model",),
                    list(spec.inputs), spec.blocks)
    input_shapes = {name: tuple(_input_dim(scope, d, ("inputs", name, "shape", str(i)))
                                for i, d in enumerate(inp.shape))
                    for name, inp in spec.inputs.items()}
    scope.check()
    modules = {c.name: c for c in classes.by_signature.values()}
    modules.update(blocks)
    modules[model.name] = model
    return Program(spec.name, loaded.path, spec.doc or "", dict(scope.values),
                   dict(scope.exprs), modules, dict(spec.inputs), input_shapes,
                   dict(spec.dims), dict(spec.checkpoint))


def _model_class_name(spec_name: str, taken: set[str]) -> str:
    name = "".join(part[:1].upper() + part[1:] for part in spec_name.split("_"))
    name = name if name[:1].isalpha() else "Net" + name
    return name if name not in taken and name != "Model" else name + "Model"


def _input_dim(scope: ParamScope, raw, path):
    """An input dim: a bare unknown name is a symbol (B, T); anything else is a size."""
    if isinstance(raw, str) and raw.isidentifier() and raw not in scope.values:
        return to_sympy(Name(raw))
    expr = scope.size(raw, path)
    return to_sympy(expr) if expr is not None else None


__all__ = ["build", "Submodule"]
