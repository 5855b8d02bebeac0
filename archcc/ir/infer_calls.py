"""Shape inference of structure: loops over block instances, stacks, per-instance shapes.

A repeat is inferred element by element (each in its own :class:`~archcc.ir.infer.Frame`),
threading its first input; each distinct ``(block, arguments, input shapes)`` is inferred
once. A stack's value is its contents, a tuple of ``(shape, dtype)``::

    push(skips, x)   ((), ) -> (((B, 16, H, W), float32),)
    pop(skips)       -> (B, 16, H, W)

After the model is inferred, :func:`generalize` keeps, for each block, the shapes that hold
in every instance, re-expressed in the block's argument names.
"""

from __future__ import annotations

from archcc.ir.forward_stack import VERSIONS
from archcc.ir.graph import ModuleIR, program_order
from archcc.ir.instances import elements, uses_index
from archcc.ir.params import ParamScope, dim_values, opaque_values, symbol
from archcc.ir.shapes import DimContext, ShapeError, fmt
from archcc.ir.symbolic import arg_dims, arg_values, extend, in_args, solve, to_model
from archcc.lazy import nx
from archcc.parser.expr import ExprError, evaluate

STACK = "stack"
STACK_OPS = ("stack_new", "stack_push", "stack_pop", "stack_after")


def holds(expr, env: dict) -> bool:
    """A ``when`` condition in one instance (checked at build, so it evaluates)."""
    try:
        return bool(evaluate(expr, env))
    except (ExprError, TypeError):
        return True


# -------------------------------------------------------------------------------- stacks


def stack_op(inf, node: str, data: dict, shapes, dtypes):
    """``stack``, ``push``, ``pop`` and the version ``after`` a pop or a call."""
    op = data["op"].removeprefix("stack_")
    if op == "new":
        return (), STACK
    if dtypes[0] != STACK:
        raise ShapeError(f"{op}() needs a stack, got a tensor {fmt(shapes[0])}",
                         "make one with skips = stack(), or pass one into the block")
    if op == "push":
        return (*shapes[0], (shapes[1], dtypes[1])), STACK
    if op == "pop":
        if not shapes[0]:
            raise ShapeError(f"pop() from an empty stack '{data['attrs']['stack']}'",
                             "each pop takes what an earlier push put on the stack")
        return shapes[0][-1]
    return None, None  # `stack_after` nodes are resolved by after_shape


def after_shape(inf, g, node: str, known: dict):
    """The stack after a pop (one fewer) or after a call that changed it."""
    data = g.nodes[node]
    source = data["inputs"][0]
    if g.nodes[source]["op"] == "stack_pop":
        before = known.get(g.nodes[source]["inputs"][0], (None, None))[0]
        return (before[:-1], STACK) if before else (None, None)
    contents = inf.after.get(source, {}).get(data["attrs"]["arg"])
    return (contents, STACK) if contents is not None else (None, None)


# ---------------------------------------------------------------------------- instances


def structural(inf, module: ModuleIR, node: str, layer, shapes, dtypes, frame):
    """A repeat or block layer: its instances in order, threading the first input.

    A repeat whose instances are all alike (no index in its arguments, no stack) must give
    back the shape it is given, and is inferred once per distinct block it cycles through."""
    sub = layer.submodules[0]
    loaded = inf.program.loaded
    scope = ParamScope(loaded, dict(frame.env))
    found = elements(scope, layer.spec, frame.env, loaded.spec.blocks, layer.path)
    if not found:
        if found is None:
            raise ShapeError(f"{layer.name}: its instances could not be evaluated here")
        return shapes[0], dtypes[0]  # no instances: the loop passes x through
    x, rest = (shapes[0], dtypes[0]), list(zip(shapes[1:], dtypes[1:], strict=True))
    shared = sub.args.get("steps") is not None
    if STACK not in dtypes and (shared or (layer.op == "repeat" and not uses_index(layer.spec))):
        for element in {_key(e): e for e in found}.values():
            out, _ = _instance(inf, layer, element, [x, *rest], frame)
            if out[0] is None:
                return None, None
            _same_shape(inf, layer, element.block, x[0], out[0], frame)
        if shared:
            _order(sub, found, frame.env)  # every pick must name an instance
        return x
    for element in _order(sub, found, frame.env):
        out, finals = _instance(inf, layer, element, [x, *rest], frame)
        if out[0] is None:
            return None, None
        for position, contents in finals.items():
            rest[position - 1] = (contents, STACK)
        x = out
    inf.after[node] = {i + 1: r[0] for i, r in enumerate(rest) if r[1] == STACK}
    return x


def _key(element) -> tuple:
    return element.block, tuple(sorted(element.args.items()))


def _order(sub, found: list, env: dict) -> list:
    """The instances in the order the loop applies them (``steps``: ``pick`` for each)."""
    steps = sub.args.get("steps")
    if steps is None:
        return found
    count = evaluate(steps, env)
    pick = sub.args.get("pick")
    out = []
    for i in range(count):
        index = evaluate(pick, {**env, "i": i}) if pick is not None else i * len(found) // count
        if not isinstance(index, int) or not 0 <= index < len(found):
            raise ShapeError(f"pick gives instance {index} at step {i}, but there are "
                             f"{len(found)}", "pick is an index 0 .. times - 1")
        out.append(found[index])
    return out


def _same_shape(inf, layer, block: str, before, after, frame) -> None:
    ctx = frame.ctx or inf.ctx
    if before is not None and (len(after) != len(before) or not all(
            ctx.equal(a, b) for a, b in zip(after, before, strict=True))):
        raise ShapeError(f"{layer.name} repeats {block}, which must return the shape it is "
                         f"given: got {fmt(before)} -> {fmt(after)}")


def _instance(inf, layer, element, args: list, frame):
    """Infer one element's block in its own frame (memoized); its output and the final
    contents of each stack argument, over the model's names."""
    from archcc.ir.infer import Frame

    block = inf.program.modules[element.block]
    if len(args) != len(block.inputs):
        raise ShapeError(f"{layer.name} builds {block.name}, which takes "
                         f"{len(block.inputs)} input(s), got {len(args)}")
    # the same instance on the same shapes in the same caller: already inferred (the
    # 18 blocks of a stage alternate between two instances on one shape)
    quick = (id(frame), block.name, tuple(sorted(element.args.items())), _hashable(args))
    if quick in inf.memo:
        return inf.memo[quick][0]
    params = inf.program.params
    sym = arg_dims(element, block.args, frame.sym, params)
    # an argument named like a scalar param hides it: the param's own dims, in shapes
    # coming in, are renamed while inside (``out_channels@``), and back on the way out
    hidden = {symbol(a): symbol(f"{a}@") for a in element.args
              if _number(params.get(a))}
    moved = [(_rename(to_model(s, frame.sym), hidden), d) for s, d in args]
    key = (block.name, tuple(sorted((k, v) for k, v in element.args.items()
                                    if not isinstance(v, float))), _hashable(moved))
    if key in inf.memo:
        inf.memo[quick] = (inf.memo[key], frame)  # the frame stays alive with its id
        return inf.memo[key]
    env = {**params, **element.args}
    label = _label(frame, layer, element) if block.args else ""
    base = inf.ctx.subs  # the params' values, computed once
    ctx = DimContext({**base, **dim_values(element.args, opaque=False),
                      **arg_values(element.args), **opaque_values(env),
                      **{v: base[k] for k, v in hidden.items()}})
    here = Frame(env, sym, ctx, label)
    known, out = inf.module(block, moved, here)
    back = {v: k for k, v in hidden.items()}
    finals = {i: _rename(to_model(known[last][0], sym), back)
              for i, last in _last_versions(block).items()
              if known.get(last, (None,))[0] is not None}
    result = ((_rename(to_model(out[0], sym), back), out[1]), finals)
    inf.memo[key] = result
    inf.memo[quick] = (result, frame)
    inf.records.setdefault(block.name, []).append((here, known))
    return result


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _rename(shape, names: dict):
    """Symbols renamed in a shape or a stack's contents."""
    if not names or shape is None:
        return shape
    if shape and isinstance(shape[0], tuple):
        return tuple((_rename(s, names), d) for s, d in shape)
    return tuple(d.subs(names) if hasattr(d, "subs") else d for d in shape)


def _hashable(args: list) -> tuple:
    return tuple((s if not isinstance(s, list) else tuple(s), d) for s, d in args)


def _label(frame, layer, element) -> str:
    part = f"{layer.name}.{element.index}" if layer.op == "repeat" else layer.name
    return f"{frame.label}.{part}" if frame.label else part


def _last_versions(block: ModuleIR) -> dict[int, str]:
    """Input position -> the last version of that stack input in the block's forward."""
    g = block.graph
    names = {g.nodes[n]["attrs"]["name"]: i for i, n in enumerate(block.inputs)}
    last = {i: n for n, i in ((n, names[g.nodes[n]["attrs"]["name"]]) for n in block.inputs)
            if g.nodes[n]["attrs"]["name"] in block.stack_inputs}
    for node in program_order(g):
        data = g.nodes[node]
        if data["op"] in VERSIONS and data["attrs"].get("stack") in names:
            last[names[data["attrs"]["stack"]]] = node
    return last


# --------------------------------------------------------------------- generalization


FRESH = ("H", "W", "D", "L", "S")  # names for input dims the instances do not share


def generalize(block: ModuleIR, records: list, taken: set[str] = frozenset()) -> None:
    """Record on the block's graph the shapes that hold in every instance, in its argument
    names (``(B, grid, grid, dim)``); None where the instances disagree. An input dim that
    differs between instances and no argument explains (a UNet level's H and W) gets a name
    of its own, so the shapes below it still read in general terms. Where two arguments are
    equal in an instance (``in_channels == out_channels``), each reading is tried."""
    keep = {symbol(a) for a in block.args}
    orders = [list(block.args)[k:] + list(block.args)[:k] for k in range(max(len(block.args),
                                                                              1))]
    variants = []  # per argument order: one solution per instance
    for order in orders:
        solutions = [solve({a: frame.sym[a] for a in order if a in frame.sym}, keep)
                     for frame, _ in records]
        if len(records) > 1:
            solutions = _fresh_dims(block, records, solutions, keep, taken)
        variants.append(solutions)
    g = block.graph
    for node in g.nodes:
        dtype = next((known[node][1] for _, known in records if node in known), None)
        g.nodes[node]["dtype"] = dtype or g.nodes[node]["dtype"] or "float32"
        g.nodes[node]["shape"] = () if dtype == STACK else _common_form(node, records, variants)
    output = g.graph.get("output")
    if output is not None and len(g.nodes[output]["inputs"]) == 1:
        g.nodes[output]["shape"] = g.nodes[g.nodes[output]["inputs"][0]]["shape"]


def _common_form(node: str, records: list, variants: list):
    """The first reading of a node's shape that every instance shares (None: none)."""
    shapes = [known.get(node, (None, None))[0] for _, known in records]
    if not records or any(s is None for s in shapes):
        return None
    for solutions in variants:
        forms = {in_args(s, sol) for s, sol in zip(shapes, solutions, strict=True)}
        if len(forms) == 1:
            return forms.pop()
    return None


def _fresh_dims(block: ModuleIR, records: list, solutions: list, keep: set,
                taken: set[str]) -> list:
    """Name each input dim that varies between instances (H, W, ...) and extend every
    instance's solution with the param that gives it (``sample_size = 2*H``)."""
    names = iter(n for n in FRESH if n not in taken and n not in block.args)
    for node in block.inputs:
        shapes = [known.get(node, (None, None)) for _, known in records]
        if any(d == STACK or s is None for s, d in shapes):
            continue
        for position in range(len(shapes[0][0])):
            forms = {in_args(s, sol)[position] for (s, _), sol in zip(shapes, solutions,
                                                                      strict=True)}
            if len(forms) == 1:
                continue
            fresh = symbol(f"_{position}")  # named once every instance can take it
            trial = [extend(sol, fresh, in_args(s, sol)[position], keep | {fresh})
                     for (s, _), sol in zip(shapes, solutions, strict=True)]
            if any(new is old for new, old in zip(trial, solutions, strict=True)):
                continue  # some instance's dim is no param: nothing to name
            name = symbol(next(names, f"N{position}"))
            keep = keep | {name}
            solutions = [{k: v.subs(fresh, name) for k, v in sol.items()} for sol in trial]
    return solutions


def mark_varying(model: ModuleIR, modules: dict[str, ModuleIR], general: set[str]) -> None:
    """Below a loop whose instances change the shape, a shape depends on how many
    instances a Config gives it (``len(depths)``): such nodes, and the blocks called on
    them (a classifier head after the stages), print no shape comment; blocks whose shapes
    were read across several instances (``general``) keep theirs."""
    g = model.graph
    varying = set()
    for node, data in g.nodes(data=True):
        if data["op"] == "call" and data["attrs"].get("repeat") and data["inputs"]:
            before = g.nodes[data["inputs"][0]]["shape"]
            if before != data["shape"]:
                varying |= {node, *nx.descendants(g, node)}
    todo = []
    for node in varying:
        g.nodes[node]["vague"] = True
        if g.nodes[node]["op"] == "call":
            sub = model.submodules.get(g.nodes[node]["attrs"]["target"])
            if sub is not None and sub.kind in ("block", "repeat") and \
                    any(i in varying for i in g.nodes[node]["inputs"]):
                todo += list(sub.args.get("blocks", ())) or [sub.cls]
    seen = set()
    while todo:  # blocks fed only vague shapes: their recorded shapes are one Config's
        name = todo.pop()
        if name in seen or name not in modules or name in general:
            continue
        seen.add(name)
        for data in modules[name].graph.nodes.values():
            data["vague"] = True
        todo += [b for s in modules[name].submodules.values() if s.kind in ("block", "repeat")
                 for b in (s.args.get("blocks", ()) or [s.cls])]
