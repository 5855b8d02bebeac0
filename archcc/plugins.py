"""Plugin ops: a new primitive op in one place, installed deliberately by the user.

A plugin is one :class:`OpPlugin` object: the op's schema (a pydantic model on archcc's strict
base), which fields are sizes, its shape rule, parameter and FLOP formulas, and the source of
the ``nn.Module`` class that is written into every generated file using the op (generated code
still imports only torch). A package exposes it through the entry point group ``archcc.ops``::

    # pyproject.toml of the plugin package
    [project.entry-points."archcc.ops"]
    channel_attention = "cbam_plugin:PLUGIN"

    $ pip install -e examples/cbam_plugin
    $ archcc blocks describe channel_attention

Only entry points of installed distributions are loaded, all of them, once, when a command
starts (:func:`load_installed`; ``ARCHCC_PLUGINS=0`` in the environment loads none); nothing
a spec names is ever imported: a spec naming an op no installed plugin provides gets
"unknown op". A plugin that fails to import, is not an
OpPlugin, or takes a builtin op's name is an error naming its distribution.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.metadata
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import jinja2
from pydantic import BaseModel

from archcc import ops
from archcc.diagnostics import ArchccError, Diagnostic
from archcc.ir.graph import Submodule
from archcc.ir.shapes import BOOL, FLOAT, INT, DimContext, Shape, ShapeError, fmt
from archcc.ops import Example, Op
from archcc.ops.base import diag
from archcc.parser import fields as schema

GROUP = "archcc.ops"
DISABLE_VAR = "ARCHCC_PLUGINS"  # ARCHCC_PLUGINS=0: load no installed plugin
OpSchema = schema.Strict  # the base of every op schema: unknown keys are errors, frozen
PLUGIN_ORDER = 10_000  # plugin ops list after every builtin, in registration order
Size, Scalar = schema.Size, schema.Scalar
__all__ = ["GROUP", "OpPlugin", "OpSchema", "Size", "Scalar", "ShapeError", "DimContext",
           "Shape", "fmt", "FLOAT", "INT", "BOOL", "register", "load_installed", "get",
           "registered", "reset"]


@dataclass(frozen=True)
class OpPlugin:
    """Everything archcc needs to know about one op, in one object.

    ``shape(ctx, layer, shapes, dtypes) -> (shape, dtype)`` is the shape rule at a call:
    ``layer.dim("channels")`` is a size as a sympy expression, ``ctx.equal(a, b)`` compares
    dims with the spec's params filled in; raise :class:`ShapeError` for a bad input and
    archcc reports it at the call's spec line. ``params(values)`` and ``flops(values, shapes)``
    take the layer's concrete values (sizes, scalars and options by field name, e.g.
    ``{"channels": 64, "reduction": 16, "bias": True}``) and input shapes, and give the
    parameter count and the FLOPs ``torch.utils.flop_counter`` counts (matmuls and
    convolutions, 2 per multiply-add); tests hold them against the generated module.

    ``class_template`` is jinja2 text (or a function of the class name returning source) for
    one class ``{{ name }}(nn.Module)``; its ``__init__`` takes the ``sizes`` positionally,
    then ``scalars`` and ``options`` by keyword. It may use torch, nn, F and math, never
    import anything.
    """

    name: str
    """The op tag: ``op: channel_attention``."""
    schema: type[BaseModel]
    """Subclass of :data:`OpSchema` with ``op: Literal[name]`` and documented fields."""
    class_name: str
    """The class emitted into generated files, e.g. ``ChannelAttention``."""
    class_template: str | Callable[[str], str]
    shape: Callable[..., tuple[Shape, str]]
    sizes: tuple[str, ...] = ()
    """Integer fields (sizes or expressions over params); first constructor arguments."""
    scalars: tuple[str, ...] = ()
    """Float fields (eps, dropout p), passed by keyword."""
    options: tuple[str, ...] = ()
    """Plain bool / number / identifier-like string fields, passed by keyword as literals."""
    check: Callable[[dict[str, int]], str | None] | None = None
    """Concrete sizes -> an error message (reported at the layer) or None; a message may end
    in ``"\\nhint: ..."``."""
    params: Callable[[dict[str, int]], int] | None = None
    flops: Callable[[dict[str, int], list[tuple[int, ...]]], int] | None = None
    example: str | None = None
    """A layer entry for ``archcc blocks describe``: ``ca: {op: ..., channels: 64}``."""
    origin: str = field(default="", compare=False)
    """Where it came from (``dist archcc-cbam-plugin, entry point channel_attention``)."""


_REGISTRY: dict[str, OpPlugin] = {}
_STATE: dict[str, Any] = {"loaded": False, "errors": []}


class PluginOp(Op):
    """An :class:`OpPlugin` as an op of the one registry (:mod:`archcc.ops`): the stages ask
    it exactly what they ask a builtin op."""

    arity = (1, 8)  # the plugin's own shape rule judges its inputs

    def __init__(self, plugin: OpPlugin, order: int):
        self.plugin, self.order = plugin, order
        self.name, self.schema = plugin.name, plugin.schema
        self.sizes, self.scalars = plugin.sizes, plugin.scalars
        self.example = Example(plugin.example) if plugin.example else None

    def check(self, scope, layer):
        if self.plugin.check is None:
            return
        problem = self.plugin.check({k: scope.value(layer.sizes[k]) for k in self.sizes})
        if problem:
            message, _, hint = problem.partition(schema.HINT_MARK)
            scope.errors.append(diag(layer, message, hint or None))

    def submodules(self, layer):
        return [Submodule(layer.name, "plugin", constructor_args(self.plugin, layer),
                          layer.loc, cls=self.plugin.class_name)]

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        """The plugin's own shape rule; a crash in it is the plugin's, reported at the call."""
        plugin = self.plugin
        if kwargs:
            raise ShapeError(f"{layer.name} ({plugin.name}) takes no keyword arguments")
        try:
            return plugin.shape(ctx, layer, shapes, dtypes)
        except ShapeError:
            raise
        except Exception as exc:
            raise ShapeError(f"{layer.name}: the shape rule of {plugin.origin} failed: "
                             f"{type(exc).__name__}: {exc}", "report this to the plugin's "
                             "authors") from None

    def params(self, values):
        if self.plugin.params is None:
            return super().params(values)
        return self.plugin.params(values)

    def flops(self, values, shapes):
        if self.plugin.flops is None:
            return super().flops(values, shapes)
        return self.plugin.flops(values, shapes)


def _fail(origin: str, message: str, hint: str | None = None) -> ArchccError:
    return ArchccError(Diagnostic(None, "plugins", f"{origin}: {message}", hint))


def _check(plugin: OpPlugin, origin: str) -> None:
    """The mistakes a plugin author makes first, as errors naming the plugin."""
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", plugin.name):
        raise _fail(origin, f"op name {plugin.name!r} must be lower_snake_case")
    builtin = ops.get(plugin.name)
    if plugin.name == "repeat" or (builtin is not None and plugin.name not in _REGISTRY):
        raise _fail(origin, f"op '{plugin.name}' is a builtin archcc op",
                    "a plugin adds new ops; pick another name")
    if plugin.name in _REGISTRY:
        raise _fail(origin, f"op '{plugin.name}' is already provided by "
                    f"{_REGISTRY[plugin.name].origin}", "uninstall one of the two packages")
    if not (isinstance(plugin.schema, type) and issubclass(plugin.schema, OpSchema)):
        raise _fail(origin, "schema must subclass archcc.plugins.OpSchema")
    tag = getattr(plugin.schema.model_fields.get("op"), "annotation", None)
    if getattr(tag, "__args__", None) != (plugin.name,):
        raise _fail(origin, f"schema needs a field `op: Literal[{plugin.name!r}]`")
    missing = [f for f in (*plugin.sizes, *plugin.scalars, *plugin.options)
               if f not in plugin.schema.model_fields]
    if missing:
        raise _fail(origin, f"sizes/scalars/options name fields the schema lacks: {missing}")
    if not plugin.class_name.isidentifier() or plugin.class_name in schema.RESERVED_NAMES:
        raise _fail(origin, f"class_name {plugin.class_name!r} is not a usable class name")
    class_source(plugin, origin=origin)  # the template must render to one import-free class


def register(plugin: Any, origin: str = "") -> OpPlugin:
    """Add one op; the entry-point loader calls this for each installed plugin.

    Tests and notebooks may call it directly; :func:`reset` undoes it.
    """
    origin = origin or f"plugin {getattr(plugin, 'name', plugin)!r}"
    if not isinstance(plugin, OpPlugin):
        raise _fail(origin, f"is a {type(plugin).__name__}, not an archcc.plugins.OpPlugin")
    _check(plugin, origin)
    plugin = dataclasses.replace(plugin, origin=origin)
    _REGISTRY[plugin.name] = plugin
    ops.register(PluginOp(plugin, PLUGIN_ORDER + len(_REGISTRY)))
    return plugin


def reset() -> None:
    """Forget every registered plugin (the schema is the builtin one again)."""
    for name in _REGISTRY:
        ops.unregister(name)
    _REGISTRY.clear()
    _STATE.update(loaded=False, errors=[])


def get(op: str) -> OpPlugin | None:
    """The plugin providing ``op``, or None for builtin and unknown ops."""
    return _REGISTRY.get(op)


def registered() -> list[OpPlugin]:
    return list(_REGISTRY.values())


def _entry_origin(entry: importlib.metadata.EntryPoint) -> str:
    dist = getattr(entry, "dist", None)
    name = dist.metadata["Name"] if dist is not None else "an unknown distribution"
    return f"plugin {entry.name} = {entry.value} (distribution {name})"


def load_installed(entries: Iterable[importlib.metadata.EntryPoint] | None = None) -> None:
    """Load every installed ``archcc.ops`` entry point, once per process.

    Called when a command starts, whatever the spec says; a broken plugin stops the command
    with an error naming its distribution rather than being skipped silently.
    """
    if _STATE["loaded"] and entries is None:
        if _STATE["errors"]:  # every later command in this process fails the same way
            raise ArchccError(_STATE["errors"])
        return
    _STATE["loaded"] = True
    if entries is None and os.environ.get(DISABLE_VAR) == "0":
        return  # builtin ops only, whatever is installed (the test suite runs this way)
    found = importlib.metadata.entry_points(group=GROUP) if entries is None else entries
    errors = []
    for entry in sorted(found, key=lambda e: e.name):
        origin = _entry_origin(entry)
        try:
            plugin = entry.load()
        except Exception as exc:  # a plugin's import failing is the plugin's bug: say whose
            errors.append(Diagnostic(None, "plugins", f"{origin}: failed to load: "
                                     f"{type(exc).__name__}: {exc}",
                                     "fix or uninstall that package"))
            continue
        try:
            register(plugin, origin)
        except ArchccError as exc:
            errors.extend(exc.diagnostics)
    _STATE["errors"] = errors
    if errors:
        raise ArchccError(errors)


# ------------------------------------------------------------------------------ codegen


def class_source(plugin: OpPlugin, name: str | None = None, origin: str = "") -> str:
    """The plugin's class as Python source, checked to be one class that imports nothing.

    >>> class_source(PLUGIN).splitlines()[0]
    'class ChannelAttention(nn.Module):'
    """
    name = name or plugin.class_name
    template = plugin.class_template
    text = template(name) if callable(template) else \
        jinja2.Template(template, undefined=jinja2.StrictUndefined).render(name=name)
    origin = origin or plugin.origin or f"plugin {plugin.name!r}"
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise _fail(origin, f"class_template is not valid Python: {exc.msg} "
                    f"(line {exc.lineno})") from None
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    if len(tree.body) != 1 or len(classes) != 1 or classes[0].name != name:
        raise _fail(origin, f"class_template must define exactly one class named {name}")
    if any(isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(tree)):
        raise _fail(origin, "class_template may not import anything",
                    "generated files import only torch; use torch, nn, F and math")
    return text.strip("\n") + "\n"


def constructor_args(plugin: OpPlugin, layer: Any) -> dict[str, Any]:
    """``__init__`` arguments: sizes positionally, scalars and options by keyword."""
    spec = layer.spec
    options = {}
    for key in plugin.options:
        value = getattr(spec, key)
        if isinstance(value, str) and not value.isidentifier():
            raise ArchccError(Diagnostic(layer.loc, ".".join(layer.path), f"{key}: "
                                         f"{value!r} is not a plain word"))
        options[key] = value
    return {"op": plugin.name, "sizes": [layer.sizes[k] for k in plugin.sizes],
            "keywords": {k: layer.sizes[k] for k in plugin.scalars},
            "literals": options}
