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
from archcc.ir.instances import INDEX, Instance, describe, is_on
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


def check_defaults(scope: ParamScope, name: str, block, instances: list[Instance],
                   blocks: dict) -> None:
    """Declare the block's layers once more at its argument defaults when no use builds
    them: a `drop_prob: 5.0` default is a mistake before some use relies on it. Arguments
    without a default take the first instance's values."""
    defaults = {k: tuple(v) if isinstance(v, list) else v for k, v in block.args.items()
                if v is not None}
    if not defaults or not instances:
        return
    inst = Instance(name, {**instances[0].args, **defaults}, f"blocks.{name}")
    if any(i.args == inst.args for i in instances):
        return
    child = scope.with_values(inst.args)
    for lname, spec in block.layers.items():
        path = ("blocks", name, "layers", lname)
        if is_on(child, spec, child.values, path):
            declare(child, lname, spec, path, blocks)
    reported = {(d.loc, d.message) for d in scope.errors}
    hint = f"blocks.{name}.args gives these defaults; they are checked though every use " \
           "passes its own value"
    scope.errors += [Diagnostic(d.loc, d.path, d.message, d.hint or hint)
                     for d in label_errors(child.errors, inst)
                     if (d.loc, d.message) not in reported]


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
