"""What an op is: one class that holds everything archcc knows about it.

An op module subclasses :class:`Op` once (or a few times for a small family that shares
code) and decorates the class with :func:`archcc.ops.op`; the registry does the rest. The
stages ask the op, never branch on its name::

    parser   schema         the pydantic model of ``{op: linear, in: ..., out: ...}``
    ir       declare        resolve sizes and scalars, record facets, check them
             submodules     the ``self.<name> = ...`` lines the layer adds to its block
             call           the IR nodes a call writes in a forward (default: one ``call``)
             call_shape     the shape rule at a call, in the spec's own words
             lower          its generated class as primitive IR (None: a torch layer)
    inspect  params, flops  formulas, checked against the generated module in tests
             facet          ``ffn swiglu``: how summary and diff name the layer
    docs     example        a layer entry, params, inputs and a call that build

A :class:`Kind` is the other half: one kind of ``__init__`` line (``nn.Linear(...)``, a
buffer, a parameter) with its shape rule when a lowered class calls it. Ops that emit
torch layers define the kind beside the op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from archcc.diagnostics import Diagnostic
from archcc.ir.shapes import ShapeError

if TYPE_CHECKING:
    from archcc.ir.forward import ForwardInterpreter
    from archcc.ir.graph import ModuleIR, Submodule
    from archcc.ir.layers import Layer
    from archcc.ir.params import ParamScope
    from archcc.ir.shapes import DimContext, Shape
    from archcc.parser.expr import Call

Render = Callable[[Any], str]  # renders one argument expression in the owner's scope


@dataclass(frozen=True)
class Example:
    """A small, complete use of an op: what ``blocks describe`` shows and tests build.

    The test composes ``params``, ``inputs`` (name -> shape, dtype), the ``layer`` entry
    and ``return <call>`` into a spec, builds it, and holds the op's formulas against the
    generated module."""

    layer: str
    """One ``layers:`` entry, e.g. ``mlp: {op: ffn, dim: n_embd, hidden: 4 * n_embd}``."""
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=lambda: {"x": "[B, T, n_embd]"})
    """Input name -> ``[dims]`` or ``[dims] int64`` / ``[dims] bool``."""
    call: str = ""
    """The forward's return expression; default: the layer called on the first input."""
    dims: dict[str, int] = field(default_factory=lambda: {"T": 8})
    setup: str = ""
    """Other layers the call needs, as YAML (``wte: {op: embedding, ...}`` for a tie)."""


class Op:
    """One spec op. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str]
    """The ``op:`` tag."""
    schema: ClassVar[type[BaseModel]]
    """Its pydantic model (``op: Literal[name]`` first); the JSON Schema comes from it."""
    order: ClassVar[int] = 1000
    """Position in ``blocks list``, the JSON Schema and the ops reference."""
    sizes: ClassVar[tuple[str, ...]] = ()
    """Integer fields (sizes or expressions over params), each >= 1."""
    zero_sizes: ClassVar[tuple[str, ...]] = ()
    """Integer fields that may be 0 (paddings)."""
    optional_sizes: ClassVar[tuple[str, ...]] = ()
    """Integer fields resolved only when given."""
    scalars: ClassVar[tuple[str, ...]] = ()
    """Float fields (eps, dropout p)."""
    wrappable: ClassVar[bool] = True
    """May sit inside ``op: residual``."""
    is_norm: ClassVar[bool] = False
    """A normalisation (diff and summary read residual wiring through these)."""
    suffixes: ClassVar[tuple[str, ...]] = ("",)
    """Names of the submodules a layer ``x`` adds, as suffixes: ``x`` and ``x_norm``."""
    arity: ClassVar[tuple[int, int]] = (1, 1)
    """Fewest and most positional inputs a call takes (``attn(x)``, ``attn(x, memory)``)."""
    keywords: ClassVar[tuple[str, ...]] = ()
    """Keyword inputs a call may pass (``attn(x, mask=m)``)."""
    example: ClassVar[Example | None] = None

    # ------------------------------------------------------------------ declaration
    def declare(self, scope: ParamScope, layer: Layer) -> None:
        """Resolve the fields named above onto ``layer.sizes`` (errors go to ``scope``)."""
        fields = self.schema.model_fields
        spec, path = layer.spec, layer.path

        def key_path(key: str) -> tuple[str, ...]:
            return (*path, fields[key].alias or key)

        for key in self.sizes:
            layer.sizes[key] = scope.size(getattr(spec, key), key_path(key))
        for key in self.zero_sizes:
            layer.sizes[key] = scope.size(getattr(spec, key), key_path(key), positive=False)
        for key in self.scalars:
            layer.sizes[key] = scope.scalar(getattr(spec, key), key_path(key))
            if layer.sizes[key] is not None and key in SCALAR_BOUNDS:
                _check_bounds(scope, layer, key)
        for key in self.optional_sizes:
            if getattr(spec, key) is not None:
                layer.sizes[key] = scope.size(getattr(spec, key), key_path(key))

    def check(self, scope: ParamScope, layer: Layer) -> None:
        """Rules over concrete values (``heads`` divides ``dim``): append to scope.errors.
        The layer stays usable, so later mistakes are reported in the same run, unless
        the check sets ``layer.broken`` (facets no class can be built for)."""

    def submodules(self, layer: Layer) -> list[Submodule]:
        """The ``__init__`` lines the layer adds to its block."""
        raise NotImplementedError(f"op {self.name} declares no submodules")

    # ---------------------------------------------------------------------- forward
    def check_call(self, fwd: ForwardInterpreter, layer: Layer, e: Call) -> None:
        """A call's arity and keywords, checked where it is written (``ln(x, bogus=1)``
        would otherwise pass the build and fail when the model runs)."""
        low, high = self.arity
        usage = self.usage(layer)
        unknown = [k for k, _ in e.kwargs if k not in self.keywords]
        if unknown:
            fwd.fail(e.pos, f"{layer.name}() has no keyword '{unknown[0]}'", usage or (
                f"its keywords: {', '.join(k + '=' for k in self.keywords)}" if self.keywords
                else f"{layer.name} takes no keywords"))
        if not low <= len(e.args) <= high:
            want = str(low) if low == high else f"{low} to {high}"
            fwd.fail(e.pos, f"{layer.name}() takes {want} input(s), got {len(e.args)}", usage)

    def usage(self, layer: Layer) -> str | None:
        """How a call of this layer is written, for the hint of a wrong call."""
        return None

    def call(self, fwd: ForwardInterpreter, layer: Layer, e: Call) -> str:
        """IR nodes for ``layer(...)`` in a forward; returns the result node."""
        self.check_call(fwd, layer, e)
        args, kwargs = fwd.call_args(layer, e)
        fwd.classes.bind(layer, kwargs)
        return fwd.node("call", args, e.pos, var=layer.name, target=layer.name,
                        kwargs=kwargs, repeat=False)

    def value(self, fwd: ForwardInterpreter, layer: Layer, pos) -> str:
        """The node for the layer's bare name used as a value (a parameter's tensor)."""
        fwd.fail(pos, f"layer '{layer.name}' must be called, e.g. {layer.name}(x)")

    def value_shape(self, layer: Layer) -> tuple[Shape, str]:
        """(shape, dtype) of the node :meth:`value` writes."""
        raise ShapeError(f"{layer.name} ({self.name}) is not a value")

    def assign(self, fwd: ForwardInterpreter, layer: Layer, statement) -> None:
        """``a, b = layer(x)``: bind several names (recurrent layers' outputs and states)."""
        fwd.fail(statement.pos, "only an rnn, lstm or gru call returns several values",
                 "assign one name per line")

    def call_shape(self, ctx: DimContext, layer: Layer, shapes: list[Shape],
                   dtypes: list[str], kwargs: tuple[str, ...]) -> tuple[Shape, str]:
        """(shape, dtype) of calling the layer on inputs of these shapes."""
        raise ShapeError(f"{layer.name} ({self.name}) cannot be called")

    def target_shape(self, ctx: DimContext, layer: Layer, target: str, shapes: list[Shape],
                     dtypes: list[str], kwargs: tuple[str, ...]) -> tuple[Shape, str]:
        """The shape rule of a call to one of the layer's submodules (``target``); only ops
        whose forward calls several (a residual's norm) override it."""
        return self.call_shape(ctx, layer, shapes, dtypes, kwargs)

    # ------------------------------------------------------------------- lowering
    def lower(self, layer: Layer, kwargs: tuple[str, ...]) -> ModuleIR | None:
        """The generated class of this layer's facets as primitive IR, fixed at its first
        call (``kwargs`` are the call's keywords); None for an op that is a torch layer."""
        return None

    def alternatives(self, layer: Layer, kwargs: tuple[str, ...]) -> list[tuple]:
        """Other generated classes the layer is built as where a condition over block
        arguments holds: ``[(condition, constructor args, ModuleIR)]``, tried in order
        before the class :meth:`lower` builds (a Swin block's attention is plain
        ``WindowAttention`` where its ``shift`` is 0). Empty for most ops."""
        return []

    def lowered_layer(self, layer: Layer) -> Layer:
        """The layer whose class :meth:`lower` builds (a residual's wrapped layer)."""
        return layer

    def functions(self, facets: dict[str, Any]) -> list[str]:
        """Module-level functions a generated file holding a class of these facets gets
        (source text, each emitted once per file after ``example_inputs``)."""
        return []

    def weight_shape(self, layer: Layer) -> tuple | None:
        """(rows, cols) of the weight another layer may share (``tie: wte``), as size
        expressions; None for ops without a tieable weight."""
        return None

    # --------------------------------------------------------------------- figures
    def params(self, values: dict[str, Any]) -> int:
        """Parameter count from the layer's concrete field values (by field name)."""
        raise NotImplementedError(f"op {self.name} has no parameter formula")

    def flops(self, values: dict[str, Any], shapes: list[tuple[int, ...]]) -> int:
        """FLOPs ``torch.utils.flop_counter`` counts for one call on inputs of ``shapes``
        (matmuls, convolutions, attention: 2 per multiply-add; elementwise work is free)."""
        raise NotImplementedError(f"op {self.name} has no FLOP formula")

    def facet(self, fields: dict[str, Any]) -> str:
        """How summary and diff name a layer of this op, from its resolved fields."""
        return self.name

    def core(self, fields: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """What the layer computes, for pairing layers across two specs: an op name and its
        fields (a residual compares as the layer it wraps)."""
        return self.name, dict(fields)


class Kind:
    """One kind of ``__init__`` line: a torch layer, a tensor, a buffer.

    A kind with parameters names them for the spec's ``init:`` section, with the scheme each
    starts from when no rule of the spec matches (``init``) and what PyTorch's constructor
    draws (``torch_init``, the scheme ``torch_default``), in the ``init:`` syntax over the
    kind's argument names::

        init_params = ("weight", "bias")
        init = {"weight": "normal(0.02)", "bias": "zeros"}
        torch_init = {"weight": "kaiming_uniform(a = sqrt(5))", "bias": "uniform(1 / sqrt(in))"}

    A kind that names none keeps whatever its constructor drew.
    """

    name: ClassVar[str]
    init_params: ClassVar[tuple[str, ...]] = ()
    """Parameter attributes (``weight_ih_l*`` for a family); ``""`` is the tensor itself."""
    init: ClassVar[dict[str, str]] = {}
    """Scheme per parameter with no matching ``init:`` rule (missing: ``torch_default``)."""
    torch_init: ClassVar[dict[str, str]] = {}
    """PyTorch's own initialisation of each parameter (missing: left as constructed)."""
    no_decay: ClassVar[bool] = False
    """A normalisation: ``param_groups()`` keeps all its parameters out of weight decay."""
    arg_defaults: ClassVar[dict[str, Any]] = {}
    """Values of arguments a submodule may leave out, for the schemes above (``groups``)."""

    def parameters(self, sub: Submodule, flag: Callable[[str], Any]) -> list[str]:
        """The parameters this layer holds: ``init_params`` less the biases of a layer whose
        ``bias`` argument is false (``flag(key)`` evaluates an argument)."""
        has_bias = "bias" not in sub.args or bool(flag("bias"))
        return [p for p in self.init_params if has_bias or not p.startswith("bias")]

    def default_init(self, sub: Submodule, param: str) -> str:
        """The scheme ``param`` starts from when no ``init:`` rule matches it."""
        return sub.args.get("default_init") or self.init.get(param, "torch_default")

    def torch_default(self, sub: Submodule, param: str) -> str | None:
        """PyTorch's own scheme for ``param`` (None: keep what the constructor drew)."""
        return self.torch_init.get(param)

    def init_lines(self, sub: Submodule, arg: Render) -> list[str]:
        raise NotImplementedError

    def call_shape(self, ctx: DimContext, sub: Submodule, shapes: list[Shape],
                   dtypes: list[str]) -> tuple[Shape, str]:
        """Shape rule when a lowered class calls ``self.<sub.name>(...)``."""
        raise ShapeError(f"cannot infer a call of {sub.kind} '{sub.name}'")

    def state(self, sub: Submodule, value: Callable[[Any], Any]) -> list[str] | None:
        """The ``state_dict`` entries this line saves, as suffixes of its name (``weight``,
        ``bias``; ``""`` for a bare parameter); ``value`` evaluates an argument. None when
        unknown: layouts of a model holding it are then not proved (archcc/ir/layouts.py)."""
        return None



class AffineNormKind(Kind):
    """A normalisation layer (``nn.GroupNorm``, ``nn.BatchNorm2d``) whose ``affine`` flag
    holds a weight starting at ones and a bias at zeros, both kept out of weight decay."""

    init_params, no_decay = ("weight", "bias"), True
    init = torch_init = {"weight": "ones", "bias": "zeros"}

    def parameters(self, sub: Submodule, flag: Callable[[str], Any]) -> list[str]:
        """None without ``affine``."""
        return list(self.init_params) if flag("affine") else []


# ------------------------------------------------------------------------- helpers

# Settings whose meaning bounds them, by field name, whatever the op: checked once the
# params are known, so `dropout: p` with p = -0.5 is caught as surely as `dropout: -0.5`.
SCALAR_BOUNDS = {"eps": (0, None, "an epsilon: it must be >= 0"),
                 "dropout": (0, 1, "a probability: it must lie in [0, 1]"),
                 "p": (0, 1, "a probability: it must lie in [0, 1]")}


def _check_bounds(scope: ParamScope, layer: Layer, key: str) -> None:
    low, high, what = SCALAR_BOUNDS[key]
    value = scope.value(layer.sizes[key])
    if isinstance(value, bool) or not isinstance(value, int | float):  # a list param, a string
        scope.errors.append(field_diag(scope, layer, key, f"{key} must be a number, got "
                                       f"{type(value).__name__} {value!r}",
                                       "a list param is walked by a stage loop or indexed: "
                                       "`eps: epsilons[0]`"))
        return
    if value < low or (high is not None and value > high):
        scope.errors.append(field_diag(scope, layer, key, f"{key} ({value}) is {what}"))


def diag(layer: Layer, message: str, hint: str | None = None) -> Diagnostic:
    """An error at the layer's spec line."""
    return Diagnostic(layer.loc, ".".join(layer.path), message, hint)


def field_diag(scope: ParamScope, layer: Layer, key: str, message: str,
               hint: str | None = None) -> Diagnostic:
    """An error at one field of the layer (at the layer when the field was defaulted)."""
    where = (*layer.path, key)
    loc = scope.loaded.where.key(where) if key in layer.spec.model_fields_set else layer.loc
    return Diagnostic(loc, ".".join(where), message, hint)


def check_divides(scope: ParamScope, layer: Layer, part: str, whole: str,
                  what: str | None = None) -> None:
    """``heads (10) must divide dim (768)`` with the divisors as a hint."""
    p, w = scope.value(layer.sizes[part]), scope.value(layer.sizes[whole])
    if w % p:
        divisors = [d for d in range(1, min(w, 64) + 1) if w % d == 0]
        scope.errors.append(diag(layer, f"{what or part} ({p}) must divide "
                                 f"{whole.rstrip('_')} ({w})",
                                 f"divisors of {w}: {', '.join(map(str, divisors))}"))


def is_default(value: Any, default: Any) -> bool:
    """A literal argument equal to ``default`` (left out of a generated call)."""
    return getattr(value, "value", object()) == default and not hasattr(value, "id")


def keywords(args: dict, defaults: dict[str, tuple[str, Any]], arg: Render) -> str:
    """``, torch_name=value`` for each arg present that differs from torch's default."""
    parts = [f"{torch_name}={arg(args[key])}" for key, (torch_name, default)
             in defaults.items() if key in args and not is_default(args[key], default)]
    return "".join(f", {p}" for p in parts)
