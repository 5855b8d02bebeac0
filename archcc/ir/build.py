"""Spec -> IR: resolve params, declare each block's layers, interpret its forward wiring.

    program = build(load_spec("specs/gpt2.yaml"))   # one ModuleIR per generated class

Blocks are built in dependency order (a repeated block before its user); lowered classes
(attention, ffn, ...) are created at the first call that fixes their facets and shared by
every layer with the same signature.
"""

from __future__ import annotations

import builtins

from archcc import ops, plugins
from archcc.diagnostics import ArchccError, Diagnostic
from archcc.ir.build_blocks import (
    check_arg_names,
    check_block_calls,
    check_defaults,
    check_instances,
    default_instance,
    instance_scopes,
    label_errors,
)
from archcc.ir.forward import ForwardInterpreter
from archcc.ir.graph import ModuleIR, Program, Submodule, new_graph
from archcc.ir.init import check_rules, parse_rules
from archcc.ir.instances import enumerate_instances
from archcc.ir.layers import Layer, declare
from archcc.ir.params import ParamScope, to_sympy
from archcc.lazy import nx
from archcc.parser import LoadedSpec
from archcc.parser.expr import (
    Name,
    did_you_mean,
)
from archcc.parser.schema import HINT_MARK, RESERVED_NAMES, check_identifier, is_structure
from archcc.parser.yaml_loader import SpecPath


class _Classes:
    """The lowered classes of a program, one per distinct signature, with unique names."""

    def __init__(self):
        self.by_signature: dict[tuple, ModuleIR] = {}
        self.names: set[str] = set()

    def bind(self, layer: Layer, kwargs: tuple) -> None:
        """Fix the facets of a lowered layer at its (first) call and attach its class."""
        if layer.structural:
            return
        layer = ops.get(layer.op).lowered_layer(layer)
        cls = ops.get(layer.op).lower(layer, kwargs)
        if cls is None:  # a torch layer: nothing to generate
            return
        facets = (layer.op, tuple(sorted(kwargs)))
        if layer.lowered is not None and layer.lowered != facets:
            raise ArchccError(Diagnostic(layer.loc, ".".join(layer.path),
                                         f"{layer.name} is called both with and without "
                                         "mask=; use two layers"))
        layer.lowered = facets
        sub = layer.submodules[-1]
        sub.cls = self._register(cls)
        sub.alternatives = [(when, args, self._register(alt)) for when, args, alt in
                            ops.get(layer.op).alternatives(layer, kwargs)]

    def _register(self, cls: ModuleIR) -> str:
        """The name of the class of ``cls``'s signature, registering it (and the classes it
        nests, first: leaves before their users) if it is new."""
        if cls.signature not in self.by_signature:
            for sub, child in cls.nested.items():
                cls.submodules[sub].cls = self._register(child)
            cls.name = self._unique(cls.name, cls.signature)
            cls.graph.graph["name"] = cls.name
            self.by_signature[cls.signature] = cls
        return self.by_signature[cls.signature].name

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
            for used in layer.block_names() if is_structure(layer) else []:
                if used in loaded.spec.blocks:
                    deps.add_edge(used, name)
    try:
        return list(nx.lexicographical_topological_sort(deps, key=rank.__getitem__))
    except nx.NetworkXUnfeasible:
        edges = nx.find_cycle(deps)
        cycle = " -> ".join([edges[0][1], *(u for u, _ in edges)])  # "B -> A -> B": B holds A
        user = edges[0][1]
        raise ArchccError(Diagnostic(loaded.where.key(("blocks", user)), f"blocks.{user}",
                                     f"blocks repeat each other in a cycle: {cycle}",
                                     "a block cannot contain itself, not even with other "
                                     "arguments: unroll the recursion into a repeat over a "
                                     "list")) from None


def _used_blocks(spec) -> set[str]:
    """Blocks the model repeats, directly or through other blocks. The rest (a library's
    spares, a base spec's block an ``extends`` replaced) are checked but not generated."""
    used: set[str] = set()
    def repeated(layers) -> list[str]:  # the blocks a repeat or block layer may build
        return [n for layer in layers.values() if is_structure(layer)
                for n in layer.block_names()]

    todo = repeated(spec.model.layers)
    while todo:
        name = todo.pop()
        if name in used or name not in spec.blocks:
            continue
        used.add(name)
        todo.extend(repeated(spec.blocks[name].layers))
    return used


def _declare_layers(scope: ParamScope, layers_spec: dict, path: SpecPath, blocks: dict,
                    scopes: dict | None = None) -> tuple[dict[str, Layer], set[str]]:
    layers, broken = {}, set()
    for name, spec in layers_spec.items():
        here = scopes[name][0] if scopes else scope  # a block: its instance's scope
        layer = declare(here, name, spec, (*path, "layers", name), blocks)
        if layer is not None:
            layers[name] = layer
        else:
            broken.add(name)
    for layer in layers.values():
        tie = getattr(layer.spec, "tie", None)
        if tie is not None:
            _check_tie(scope, layer, layers.get(tie), set(layers))
    return layers, broken


def _check_tie(scope: ParamScope, layer: Layer, target: Layer | None, names: set[str]) -> None:
    """``tie: wte``: the target is a layer of the same block whose weight has this shape."""
    where, tie = (*layer.path, "tie"), layer.spec.tie
    shape = _weight_shape(scope, target) if target is not None else None
    if shape is None:
        scope.errors.append(Diagnostic(scope.loaded.where.key(where), ".".join(where),
                                       f"tie target '{tie}' is not an embedding or linear "
                                       "layer of this block", did_you_mean(tie, names)))
    elif _weight_shape(scope, layer) != shape:
        scope.errors.append(Diagnostic(
            scope.loaded.where.key(where), ".".join(where),
            f"cannot tie {layer.name} {_weight_shape(scope, layer)} to {tie} {shape}: "
            "weights differ in shape",
            "a tied linear needs in = the embedding's dim and out = its num"))


def _weight_shape(scope: ParamScope, layer: Layer) -> tuple[int, int] | None:
    """(rows, cols) of a layer's tieable weight, with concrete sizes; None if it has none."""
    if layer.structural:
        return None
    shape = ops.get(layer.op).weight_shape(layer)
    return None if shape is None else tuple(scope.value(d) for d in shape)


def _module(scope, classes, name, kind, spec_block, path, inputs, blocks,
            instances: list | None = None, modules: dict | None = None) -> ModuleIR:
    module = ModuleIR(name, kind, new_graph(name), doc=spec_block.doc or "",
                      loc=scope.loaded.where.key(path))
    scopes = instance_scopes(scope, spec_block, instances) if instances else None
    layers, broken = _declare_layers(scope, spec_block.layers, path, blocks, scopes)
    here = scope.with_values(instances[0].args) if instances else scope
    fwd = ForwardInterpreter(here, module, path, layers, classes, broken, modules)
    fwd.run(spec_block.forward, inputs)
    if scopes:
        for child, inst in {id(s): (s, i) for s, i in scopes.values()}.values():
            scope.errors.extend(label_errors(child.errors, inst) if spec_block.args
                                else child.errors)
        check_instances(scope, name, spec_block, instances, scopes, layers, blocks)
        module.args = {k: _default(v) for k, v in spec_block.args.items()}
    scope.errors.extend(here.errors if here is not scope else [])
    scope.errors.extend(fwd.errors)
    for layer in layers.values():
        if not layer.structural and ops.get(layer.op).lowered_layer(layer).lowered is None:
            classes.bind(layer, ())  # declared, never called: still instantiate its class
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
    classes.names.update(p.class_name for p in plugins.registered())
    check_arg_names(scope, spec.blocks)
    check_block_calls(scope, spec)
    scope.check()
    order = _block_order(loaded)  # a cycle is an error before any instance is walked
    instances = enumerate_instances(scope, spec)
    scope.check()
    blocks: dict[str, ModuleIR] = {}
    used = _used_blocks(spec)
    for name in order:
        block = spec.blocks[name]
        built = instances.get(name) or [d for d in [default_instance(name, block)] if d]
        if not built and name in used:
            scope.errors.append(Diagnostic(loaded.where.key(("blocks", name)), f"blocks.{name}",
                                           f"block {name} is built nowhere with these params "
                                           "and has arguments without defaults",
                                           "give its arguments defaults, so it can be checked"))
            continue
        if not built:  # an unused library block with required arguments: not checked
            continue
        blocks[name] = _module(scope, classes, name, "block", block, ("blocks", name),
                               block.inputs, spec.blocks, built, blocks)
        check_defaults(scope, name, block, built, spec, instances)
    class_name = _model_class_name(spec.name, classes.names)
    model = _module(scope, classes, class_name, "model", spec.model, ("model",),
                    list(spec.inputs), spec.blocks, None, blocks)
    _optional_inputs(scope, model)
    _check_highs(scope)
    input_shapes = {name: tuple(_input_dim(scope, d, ("inputs", name, "shape", str(i)))
                                for i, d in enumerate(inp.shape))
                    for name, inp in spec.inputs.items()}
    _check_plugin_names(scope, [*blocks.values(), model])
    _check_splits(scope, spec.checkpoint)
    init_rules = parse_rules(scope)
    scope.check()
    modules = {c.name: c for c in classes.by_signature.values()}
    modules.update((name, module) for name, module in blocks.items() if name in used)
    modules[model.name] = model
    program = Program(spec.name, loaded.path, spec.doc or "", dict(scope.values),
                      dict(scope.exprs), modules, dict(spec.inputs), input_shapes,
                      dict(spec.dims), dict(spec.checkpoint))
    program.parallel = dict(spec.parallel)
    program.instances = instances
    program.loaded = loaded
    program.init_rules, program.no_decay = init_rules, list(spec.no_decay)
    check_rules(program, loaded)
    return program


def _check_splits(scope: ParamScope, layouts: dict) -> None:
    """A split's ``sizes`` and ``groups`` are sizes over the params (evaluated by the
    generated ``convert_state_dict`` from its ``config``): check them here, located."""
    for name, layout in layouts.items():
        for source, rule in layout.split.items():
            if isinstance(rule, list):
                continue
            path = ("checkpoint", name, "split", source)
            for i, size in enumerate(rule.sizes):
                scope.size(size, (*path, "sizes", str(i)))
            if rule.sizes and len(rule.sizes) != len(rule.into):
                scope.errors.append(Diagnostic(
                    scope.loaded.where.key((*path, "sizes")), ".".join((*path, "sizes")),
                    f"{len(rule.sizes)} sizes for {len(rule.into)} parts",
                    "one size per key of `into`"))
            if rule.groups is not None:
                scope.size(rule.groups, (*path, "groups"))
def _default(value):
    return tuple(value) if isinstance(value, list) else value


def _check_plugin_names(scope: ParamScope, modules: list[ModuleIR]) -> None:
    """A block named like the class of a plugin op it uses would be two classes of one name."""
    used = {sub.cls: sub.args["op"] for m in modules for sub in m.submodules.values()
            if sub.kind == "plugin"}
    for name in sorted(set(used) & set(scope.loaded.spec.blocks)):
        scope.errors.append(Diagnostic(scope.loaded.where.key(("blocks", name)),
                                       f"blocks.{name}", f"block name '{name}' is the class "
                                       f"plugin op '{used[name]}' generates",
                                       "rename the block"))


def _model_class_name(spec_name: str, taken: set[str]) -> str:
    """``gpt2`` -> ``Gpt2``; a name a block, the file's own names (``f`` -> ``F`` would
    shadow torch.nn.functional) or a builtin already holds gets ``Model`` appended."""
    name = "".join(part[:1].upper() + part[1:] for part in spec_name.split("_"))
    name = name if name[:1].isalpha() else "Net" + name
    clash = name in taken or name in RESERVED_NAMES or hasattr(builtins, name)
    return name + "Model" if clash else name


# example_inputs(batch, config, **dims) takes these; a symbol must not shadow them
EXAMPLE_ARGUMENTS = ("batch", "config", "dims")


def _input_dim(scope: ParamScope, raw, path):
    """An input dim: a bare unknown name is a symbol (B, T); anything else is a size."""
    if isinstance(raw, str) and raw.isidentifier() and raw not in scope.values:
        _check_symbol(scope, raw, path)
        return to_sympy(Name(raw))
    expr = scope.size(raw, path)
    return to_sympy(expr) if expr is not None else None


def _check_highs(scope: ParamScope) -> None:
    """``high:`` bounds example ids: a positive size of an int64 input, checked now rather
    than when ``example_inputs()`` first runs."""
    for name, spec in scope.loaded.spec.inputs.items():
        if spec.high is None:
            continue
        where = ("inputs", name, "high")
        if spec.dtype != "int64":
            scope.errors.append(Diagnostic(scope.loaded.where.key(where), ".".join(where),
                                           f"high bounds int64 ids, but '{name}' is "
                                           f"{spec.dtype}", "drop high, or make it int64"))
            continue
        scope.size(spec.high, where)


def _optional_inputs(scope: ParamScope, model: ModuleIR) -> None:
    """Inputs with a ``default:`` become ``name=None`` arguments filled like another input
    of the same shape; they must follow every required input (Python's rule)."""
    inputs, seen_default = scope.loaded.spec.inputs, None
    for node in model.inputs:
        attrs = model.graph.nodes[node]["attrs"]
        spec, where = inputs[attrs["name"]], ("inputs", attrs["name"])
        if spec.default is None:
            if seen_default is not None:
                scope.errors.append(Diagnostic(
                    scope.loaded.where.key(where), ".".join(where),
                    f"'{attrs['name']}' has no default but follows '{seen_default}', which "
                    "has one", "list inputs with a default last"))
            continue
        seen_default = attrs["name"]
        like = next((n for n, other in inputs.items() if other.default is None
                     and other.shape == spec.shape), None)
        if like is None:
            scope.errors.append(Diagnostic(
                scope.loaded.where.key((*where, "default")), ".".join((*where, "default")),
                f"no required input has the shape {spec.shape} to shape the default of "
                f"'{attrs['name']}' like", "give a required input of that shape first"))
            continue
        attrs.update(optional=True, default=spec.default, like=like, dtype=spec.dtype)


def _check_symbol(scope: ParamScope, name: str, path) -> None:
    """A shape symbol becomes a local of ``example_inputs`` and a key of DIM_RANGES."""
    try:
        check_identifier(name)
        if name in EXAMPLE_ARGUMENTS:
            raise ValueError(f"'{name}' is an argument of the generated example_inputs()")
    except ValueError as exc:
        message, _, hint = str(exc).partition(HINT_MARK)
        scope.errors.append(Diagnostic(scope.loaded.where.key(path), ".".join(path),
                                       f"shape symbol {message}",
                                       hint or "name symbols like B, T, S or H"))


__all__ = ["build", "Submodule"]
