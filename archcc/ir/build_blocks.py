"""Blocks with arguments: one class, many instances, each checked.

``SwinStage(dim, depth, heads, downsample)`` is declared once, in the scope of its first
instance (params plus that instance's arguments), and generated once; every other distinct
instance declares its layers again in its own scope, so ``heads must divide dim`` holds in
every stage and a layer needs the same generated class everywhere::

    scopes = layer_scopes(scope, block, instances)     # layer -> scope it is declared in
    check_instances(scope, name, block, instances, layers, blocks)
"""

from __future__ import annotations

from archcc.diagnostics import Diagnostic
from archcc.ir.instances import (
    INDEX,
    Instance,
    arg_mismatches,
    args_key,
    describe,
    enumerate_instances,
    is_on,
)
from archcc.ir.layers import Layer, declare
from archcc.ir.params import ParamScope
from archcc.parser.expr import FUNCTIONS


def check_arg_names(scope: ParamScope, blocks: dict) -> None:
    """A block argument may not take the name of a layer of its block, the index, a
    function or a block: inside the block every name must mean one thing. It may take a
    param's name (a block's ``out_channels``, a stage's ``num_heads``): inside the block
    the name is the argument."""
    for name, block in blocks.items():
        for arg in block.args:
            path = ("blocks", name, "args", arg)
            clash = "a layer of this block" if arg in block.layers else \
                "the element index" if arg == INDEX else \
                "a function" if arg in FUNCTIONS else \
                "a block" if arg in blocks else None
            if clash:
                scope.errors.append(Diagnostic(scope.loaded.where.key(path), ".".join(path),
                                               f"argument '{arg}' has the name of {clash}",
                                               "rename the argument"))


def check_block_calls(scope: ParamScope, spec) -> None:
    """Every use of a block passes the arguments it needs and only those it has, whatever
    the params: a use that no instance reaches (a `when` that is off, a stage kind this
    config does not pick) is still generated code."""
    from archcc.parser.expr import names_in, parse_expr
    from archcc.parser.structure import BlockLayer, Repeat

    owners = [(("model",), spec.model), *((("blocks", n), b) for n, b in spec.blocks.items())]
    for where, owner in owners:
        for lname, layer in owner.layers.items():
            text = layer.block if isinstance(layer, BlockLayer) else \
                layer.repeat if isinstance(layer, Repeat) else None
            if not isinstance(text, str):
                continue
            try:  # a name, or an expression choosing one: each block it names
                called = [n for n in names_in(parse_expr(text)) if n in spec.blocks]
            except Exception:  # noqa: BLE001 - malformed: reported where it is evaluated
                continue
            for block in dict.fromkeys(called):
                path = (*where, "layers", lname)
                for arg, message, hint in arg_mismatches(block, spec.blocks[block].args,
                                                         layer.args):
                    at = path if arg is None else (*path, "args", arg)
                    scope.errors.append(Diagnostic(scope.loaded.where.key(at), ".".join(at),
                                                   message, hint))


def instance_scopes(scope: ParamScope, block, instances: list[Instance]) -> dict[str, tuple]:
    """Layer -> (scope, instance) it is declared in: the first instance where its ``when``
    holds (a downsampling layer is declared where it exists), else the first instance."""
    scopes = [(scope.with_values(inst.args), inst) for inst in instances]
    out = {}
    for name, layer in block.layers.items():
        path = ("blocks", inst_block(instances), "layers", name)
        out[name] = next((pair for pair in scopes
                          if is_on(pair[0], layer, pair[0].values, path)), scopes[0])
    return out


def inst_block(instances: list[Instance]) -> str:
    return instances[0].block


def default_instance(name: str, block) -> Instance | None:
    """The instance a block no use builds is checked as: its defaults (None when an
    argument has none)."""
    if any(default is None for default in block.args.values()):
        return None
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in block.args.items()}
    return Instance(name, args, f"blocks.{name}")


def check_defaults(scope: ParamScope, name: str, block, built: list[Instance], spec,
                   instances: dict[str, list[Instance]]) -> None:
    """Declare the block's layers once more at its argument defaults, and the blocks built
    inside it there, when no use builds them: a `drop_prob: 5.0` default is a mistake
    before some use relies on it. Arguments without a default take the first instance's
    values."""
    defaults = {k: tuple(v) if isinstance(v, list) else v for k, v in block.args.items()
                if v is not None}
    if not defaults or not built:
        return
    inst = Instance(name, {**built[0].args, **defaults}, f"blocks.{name}")
    child = scope.with_values(inst.args)
    if not any(i.args == inst.args for i in built):
        _declare_all(child, name, block, spec.blocks)
    known = {args_key(i.block, i.args) for group in instances.values() for i in group}
    for inner, group in enumerate_instances(child, spec, [inst]).items():
        for nested in group:
            if args_key(inner, nested.args) not in known:
                _declare_all(scope.with_values(nested.args), inner, spec.blocks[inner],
                             spec.blocks, into=child)
    hint = f"blocks.{name}.args gives these defaults; they are checked though every use " \
           "passes its own value"
    reported = {(d.loc, d.message) for d in scope.errors}
    for d in label_errors(child.errors, inst):
        if (d.loc, d.message) not in reported:
            reported.add((d.loc, d.message))
            scope.errors.append(Diagnostic(d.loc, d.path, d.message, d.hint or hint))


def _declare_all(child: ParamScope, name: str, block, blocks: dict,
                 into: ParamScope | None = None) -> None:
    """Declare every layer of ``block`` that is on in ``child``; errors go to ``into``."""
    for lname, spec in block.layers.items():
        path = ("blocks", name, "layers", lname)
        if is_on(child, spec, child.values, path):
            declare(child, lname, spec, path, blocks)
    if into is not None:
        into.errors += child.errors


def check_instances(scope: ParamScope, name: str, block, instances: list[Instance],
                    declared: dict[str, tuple], layers: dict[str, Layer], blocks: dict) -> None:
    """Declare every layer again in each instance it was not declared in: errors name the
    instance; a layer whose generated class would differ between instances is an error."""
    reported: set[tuple] = {(d.loc, d.message.partition(" (in ")[0]) for d in scope.errors}
    for inst in instances:
        child = scope.with_values(inst.args)
        for lname, spec in block.layers.items():
            path = ("blocks", name, "layers", lname)
            if declared[lname][1] is inst or not is_on(child, spec, child.values, path):
                continue
            layer = declare(child, lname, spec, path, blocks)
            first = layers.get(lname)
            if layer is not None and first is not None and layer.facets != first.facets:
                child.errors.append(Diagnostic(
                    layer.loc, ".".join(path),
                    f"{lname} needs another generated class here ({_facets(layer)}) than in "
                    f"{declared[lname][1].label} ({_facets(first)})",
                    "give the instances the same structure, or use two layers with `when`"))
        for diag in child.errors:
            if (diag.loc, diag.message) in reported:
                continue
            reported.add((diag.loc, diag.message))
            scope.errors.append(Diagnostic(diag.loc, diag.path,
                                           f"{diag.message} (in {describe(inst)})", diag.hint))


def label_errors(errors: list[Diagnostic], inst: Instance) -> list[Diagnostic]:
    """Errors found in one instance's scope, naming that instance."""
    return [Diagnostic(d.loc, d.path, f"{d.message} (in {describe(inst)})", d.hint)
            for d in errors]


def _facets(layer: Layer) -> str:
    return ", ".join(f"{k}={v}" for k, v in layer.facets.items()) or "none"
