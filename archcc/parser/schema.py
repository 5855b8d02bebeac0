"""The spec's structure as pydantic v2 models: params, inputs, blocks, repeats, the model,
checkpoint layouts, generation, budgets.

Every model forbids unknown keys (a typo is an error, not a silently ignored option) and
documents its fields with attribute docstrings, which become the JSON Schema descriptions an
editor shows on hover. Sizes may be integers or parameter expressions (``4 * n_embd``);
they stay text here and are parsed with positions later.

A layer entry looks like ``attn: {op: attention, dim: n_embd, heads: n_head, causal: true}``:
its model is the op's own (:mod:`archcc.ops`), joined into one union discriminated on
``op`` by :func:`spec_model`; the one exception is ``h: {repeat: Block, times: n_layer}``.
"""

from __future__ import annotations

import functools
import operator
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Discriminator,
    Field,
    Tag,
    create_model,
    field_validator,
    model_validator,
)

from archcc.parser.budget import canonical_bound, canonical_size
from archcc.parser.fields import (  # noqa: F401 - re-exported: the names specs are built from
    HINT_MARK,
    MAX_NAME,
    RESERVED_NAMES,
    Activation,
    DimSize,
    DocText,
    FiniteFloat,
    Identifier,
    KeyPattern,
    LayoutName,
    Scalar,
    Size,
    Strict,
    ascii_lookalike,
    check_identifier,
    normal_forward,
)

# ------------------------------------------------------------------------------- repeats
# Repeat, BlockLayer and `when` live in archcc.parser.structure (re-exported here).
from archcc.parser.structure import (  # noqa: E402,F401 - re-exported
    ArgDefault,
    BlockLayer,
    ParamValue,
    Repeat,
    check_letter,
    check_pattern,
    is_structure,
    with_when,
)


def _layer_tag(value: Any) -> str:
    if isinstance(value, dict):
        if "op" in value:
            return str(value.get("op"))
        if "repeat" in value or "pattern" in value:
            return "repeat"
        return "block" if "block" in value else "None"
    if isinstance(value, Repeat):
        return "repeat"
    return "block" if isinstance(value, BlockLayer) else str(getattr(value, "op", ""))


def _op_name(model: type[BaseModel]) -> str:
    """``_op_name(Linear) == "linear"``: the tag of an op model's ``op: Literal[...]`` field."""
    return model.model_fields["op"].annotation.__args__[0]


def layer_union(ops: list[type[BaseModel]]) -> object:
    """The ``layers:`` entry type: these op models (each with ``when``), ``repeat`` and
    ``block``, discriminated on ``op``.

    Plugin ops (:mod:`archcc.plugins`) join the builtins through this same function::

        layer_union([*_OPS, ChannelAttention])   # {op: channel_attention, ...} validates
    """
    tagged = [Annotated[with_when(m), Tag(_op_name(m))] for m in ops]
    return Annotated[
        functools.reduce(operator.or_, tagged[1:], tagged[0]) | Annotated[Repeat, Tag("repeat")]
        | Annotated[BlockLayer, Tag("block")],
        Discriminator(_layer_tag, custom_error_type="unknown_op",
                      custom_error_message="unknown op",
                      custom_error_context={"known": ", ".join(map(_op_name, ops))}),
    ]


_AnyLayer = Any  # in the bases below; the models specs validate against hold the op union


def __getattr__(name: str) -> Any:
    """``Spec``, ``Block`` and ``Model`` are the structure below with ``layers`` holding the
    union of the builtin ops (:mod:`archcc.ops`), built on first use; ``Layer`` is that
    union (plugins included) and ``OP_NAMES`` every op's tag."""
    if name in ("Spec", "Block", "Model"):
        return _with_ops(tuple(o.name for o in _builtin_ops()))[name]
    if name == "Layer":
        return layer_union(list(op_models().values()))
    if name == "OP_NAMES":
        return op_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# -------------------------------------------------------------------------------- structure


class Input(Strict):
    """A model input: a symbolic shape such as [B, T] and a dtype."""

    shape: list[Size]
    """Dims: input symbols (B, T, ...) or params/expressions (image_size)."""
    dtype: Literal["int64", "float32", "bool"] = "float32"
    high: Size | None = None
    """For int64 inputs: values in [0, high) in `example_inputs()`."""
    default: Literal["zeros", "ones"] | None = None
    """Makes the input optional, as the reference does: left out (None), it is zeros or
    ones shaped like the first required input of the same shape (HF: `token_type_ids`
    zeros, `attention_mask` all ones). Inputs with a default come last."""


class _Block(Strict):
    """A reusable block: its layers and how they are wired. Becomes one nn.Module class."""

    args: dict[Identifier, ArgDefault] = {}
    """Constructor arguments with their defaults (`null`: required), used by its layers like
    params: `{dim: 96, heads: 3, shift: 0}`. Each use passes values (`args:` of a repeat or a
    block layer); the generated class takes them: `SwinBlock(config, dim, heads, shift=0)`."""
    extends: Identifier | None = None
    """Another block under `blocks:` that this one changes (`{extends: Block, layers: {mlp:
    {hidden: 8 * n_embd}}}`), merged like a spec's `extends`; what it does not write,
    `forward` included, is the base's. Resolved before validation."""
    doc: DocText | None = None
    """One line for the class docstring."""
    inputs: list[Identifier] = ["x"]
    """Forward arguments. The first is threaded through a repeat; the rest are shared."""
    layers: dict[Identifier, _AnyLayer] = {}
    forward: str | None = None
    """Statements, one per line: `x = x + attn(ln_1(x))`, ending in `return ...`
    (or returning the last assigned name). Required, unless the block `extends` another."""

    _normal_forward = field_validator("forward")(
        lambda text: None if text is None else normal_forward(text))

    @model_validator(mode="after")
    def _wired(self) -> _Block:
        # optional in the JSON Schema only so that editors accept a derived block's changes
        if self.forward is None:
            raise ValueError(f"missing required field 'forward'{HINT_MARK}a block says how its "
                             "layers are wired; a block that `extends` another inherits it")
        return self


class _Model(Strict):
    """The top-level module; its forward arguments are the spec's `inputs`."""

    doc: DocText | None = None
    layers: dict[Identifier, _AnyLayer] = {}
    forward: str

    _normal_forward = field_validator("forward")(lambda text: normal_forward(text))


class Split(Strict):
    """A fused foreign tensor cut into several of ours along dim 0: in equal chunks, in
    uneven `sizes` (Phi-3's qkv_proj with grouped-query heads) or out of `groups`
    interleaved blocks (GPT-NeoX's query_key_value: per head, [q | k | v])."""

    into: list[KeyPattern]
    """Our keys, in the order of the parts."""
    sizes: list[Size] = []
    """Rows of each part (param expressions, e.g. `num_attention_heads * head_dim`); within
    one group when `groups` is set. Default: equal parts."""
    groups: Size | None = None
    """The rows are `groups` consecutive blocks, each holding a slice of every part: part j
    is the concatenation of block g's j-th slice over g (GPT-NeoX: `num_attention_heads`)."""


class Layout(Strict):
    """How one foreign checkpoint layout maps onto this spec's state_dict keys.

    Patterns are dotted key prefixes; `{i}` (any name in braces) matches one key segment."""

    rename: dict[KeyPattern, KeyPattern] = {}
    """Foreign prefix -> our prefix, e.g. `transformer.h.{i}.attn.c_attn: h.{i}.attn.qkv`."""
    transpose: list[KeyPattern] = []
    """Our keys (after renaming; `*` matches one segment) whose 2-D weight is transposed
    (HF GPT-2 Conv1D stores (in, out))."""
    concat: dict[KeyPattern, list[KeyPattern]] = {}
    """Our key <- foreign keys concatenated along dim 0 (separate q/k/v into one qkv)."""
    split: dict[KeyPattern, list[KeyPattern] | Split] = {}
    """Foreign key -> our keys, cut into equal chunks along dim 0 (a fused in_proj_weight
    into separate q/k/v), or `{into: [...], sizes: [...], groups: n}` for uneven or
    per-head interleaved parts; weights and biases alike."""
    drop: list[KeyPattern] = []
    """Foreign keys (before renaming) to ignore, e.g. buffers like `embeddings.position_ids`."""


class Generate(Strict):
    """The generation facet: a KV cache threaded through the decoder and a `generate()`.

    `causal_lm`: `forward(ids, cache=None)`; `seq2seq`: `encode(...)` runs once and
    `decode(ids, memory, cache=None)` steps the decoder. Either way `generate(model, ids, n)`.
    """

    kind: Literal["causal_lm", "seq2seq"]
    """`causal_lm` (GPT-style decoder only) or `seq2seq` (encoder-decoder)."""
    input: Identifier | None = None
    """The int64 token input the decoder is stepped on; default: the last int64 input."""
    eos: int | None = None
    """Default `eos_token_id`: a sequence that emits it is finished."""
    pad: int | None = None
    """Default `pad_token_id` written after a sequence finished (default: `eos`)."""
    start: int = 0
    """seq2seq: the token the decoder starts from (`decoder_start_token_id`)."""


ParallelStyle = Literal["colwise", "rowwise"]


class Reference(Strict):
    """The implementation `archcc bench` compares against, built from this spec's params
    (its names mirror the reference config) and given the same weights via `layout`.

    Only names from a fixed allow-list (archcc/parser/references.py) are accepted."""

    library: Literal["transformers"]
    """Where the class lives."""
    model: Identifier
    """The class, e.g. `GPT2LMHeadModel`; must be on archcc's allow-list."""
    layout: LayoutName
    """The checkpoint layout (a key of `checkpoint:`) that maps its state_dict onto ours;
    `archcc check` proves it against the reference's own keys (where the library is
    installed)."""

    @field_validator("model")
    @classmethod
    def _allowed(cls, name: str, info) -> str:
        from archcc.parser.references import REFERENCE_MODELS

        known = REFERENCE_MODELS.get(info.data.get("library", ""), {})
        if name not in known:
            raise ValueError(f"'{name}' is not an allowed reference model"
                             f"{HINT_MARK}allowed: {', '.join(known)}")
        return name


InitScheme = Annotated[str, Field(max_length=2000,
                                  title="a scheme such as `normal(0.02)`, `zeros` or "
                                        "`truncated_normal(std = 0.02, a = -2, b = 2)`")]
CountBound = Annotated[str | int, AfterValidator(canonical_bound("count")),
                      Field(title="a comparison and a count, e.g. `<= 125M` (K, M, G, T: "
                                  "powers of 1000)")]
ByteSize = Annotated[str | int, AfterValidator(canonical_size("bytes")),
                     Field(title="a byte size, e.g. `1GiB` (KiB, MiB, GiB: powers of 1024; "
                                 "KB, MB, GB: powers of 1000)")]


class KVCacheBudget(Strict):
    """Bytes of the KV cache at sequence length `T` for batch 1: keys and values of every
    causal self-attention layer, 2 x layers x kv heads x head dim x T x bytes per element."""

    T: Size
    """Sequence length the cache holds (an integer or a param expression: `n_positions`)."""
    max: ByteSize
    """The most it may take: `1GiB`, `512MiB`, `2GB`."""
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    """Element type of the cached keys and values."""


class Budget(Strict):
    """Invariants checked at build time (and by `archcc check`), measured on the meta
    device without allocating: a violation is an error at its line.

    Comparisons are `<=`, `<`, `>=`, `==` (quote `>=` in YAML: `">= 1M"`)."""

    params: CountBound | None = None
    """Parameters (tied weights once), e.g. `<= 125M`."""
    flops_per_token: CountBound | None = None
    """Forward FLOPs at batch 1 and the spec's `dims`, divided by the T tokens (needs an
    input symbol `T`), e.g. `<= 2G`."""
    kv_cache_at: KVCacheBudget | None = None
    """KV cache size at a sequence length: `{T: 8192, max: 1GiB}` (needs causal
    self-attention)."""


class _Spec(Strict):
    """One architecture: params, inputs, reusable blocks, the model and checkpoint layouts."""

    archcc: Literal[1]
    """Spec format version."""

    @field_validator("archcc", mode="before")
    @classmethod
    def _integer_version(cls, value: object) -> object:
        # pydantic's lax Literal[1] takes 1.0 and true: a version is the integer itself
        if type(value) is not int:
            raise ValueError(f"the spec format version is the integer 1, not {value!r}")
        return value
    name: Identifier
    """Module name: `archcc build` writes `generated/<name>.py`."""
    extends: str | None = None
    """A spec this one starts from (relative path inside the project): mappings merge,
    lists and values replace, `null` deletes. Resolved before validation."""
    imports: list[str] = []
    """Block libraries (relative paths; files with only `archcc` and `blocks`) whose
    blocks this spec may use."""
    doc: DocText | None = None
    params: dict[Identifier, ParamValue] = {}
    """Become the frozen `Config` dataclass; strings are expressions over earlier params;
    lists (`depths: [2, 2, 6, 2]`, `down_block_types: [DownBlock2D, ...]`) become tuples
    and hold literal numbers, booleans or names."""
    dims: dict[Identifier, DimSize] = {}
    """Default sizes of input symbols for `example_inputs()` (B is the batch argument)."""
    inputs: dict[Identifier, Input]
    blocks: dict[Identifier, _Block] = {}
    model: _Model
    checkpoint: dict[LayoutName, Layout] = {}
    """Foreign layouts `convert_state_dict(sd, layout)` understands, by name (hf, timm, torch)."""
    generate: Generate | None = None
    """Incremental decoding: a KV cache, `cache=` arguments and a generated `generate()`."""
    reference: Reference | None = None
    """A reference implementation for `archcc bench` (same weights, same inputs by name)."""
    parallel: dict[KeyPattern, ParallelStyle] = {}
    """Tensor-parallel plan for the generated `parallelize(model, mesh)`: module path
    (`*` matches one segment, e.g. `h.*.mlp.up`) -> `colwise` or `rowwise` (a colwise layer
    feeds a rowwise one, with only elementwise work between)."""
    budget: Budget | None = None
    """Limits the build enforces: parameters, FLOPs per token, KV cache bytes."""
    init: dict[KeyPattern, InitScheme] = {}
    """How a fresh model's parameters are drawn, as the reference does (the generated
    `init_weights()`): layer kind (`linear`, `embedding`, ...) or dotted path pattern (`*`
    matches one segment; a layer's path covers its parameters) -> scheme, first match wins:
    `h.*.attn.proj.weight: normal(0.02 / sqrt(2 * n_layer))`, `linear: normal(0.02)`. Schemes:
    normal(std, mean), truncated_normal(std, a, b), uniform(bound), xavier_uniform(gain),
    xavier_normal(gain), kaiming_uniform(a, mode, nonlinearity), kaiming_normal(...),
    lecun_normal, orthogonal(gain), zeros, ones, constant(value), torch_default; a rule on a
    layer draws its biases with `bias = <scheme>` (default zeros). Unmatched parameters take
    their kind's default (weights normal(0.02), norms ones/zeros, convolutions and
    recurrent layers PyTorch's)."""
    no_decay: list[KeyPattern] = []
    """Parameters (layer kinds or path patterns) the generated `param_groups()` keeps out of
    weight decay besides biases and normalisation layers, e.g. timm's `embeddings.pos_embed`."""


# ------------------------------------------------------------------ the model with ops


def spec_model() -> type[BaseModel]:
    """The model specs validate against: ``Spec`` over the builtin ops, or with plugin ops
    registered a subclass of it whose ``layers`` also hold them (so
    ``isinstance(spec, Spec)`` always holds and the builtin JSON Schema never changes)."""
    return _with_ops(tuple(op_models()))["Spec"]


def _builtin_ops() -> list:
    from archcc import ops

    return [o for o in ops.all_ops() if type(o).__module__.startswith("archcc.ops.")]


@functools.cache
def _with_ops(names: tuple[str, ...]) -> dict[str, type[BaseModel]]:
    """Block, Model and Spec whose ``layers`` are the union of these ops and ``repeat``."""
    from archcc import ops

    builtin = tuple(o.name for o in _builtin_ops())
    bases = {"Block": _Block, "Model": _Model, "Spec": _Spec}
    if names != builtin:
        bases = _with_ops(builtin)
    layers = dict[Identifier, layer_union([ops.get(n).schema for n in names])]
    block = create_model("Block", __base__=bases["Block"], __module__=__name__,
                         __doc__=_Block.__doc__, layers=(layers, {}))
    model = create_model("Model", __base__=bases["Model"], __module__=__name__,
                         __doc__=_Model.__doc__, layers=(layers, {}))
    spec = create_model("Spec", __base__=bases["Spec"], __module__=__name__,
                        __doc__=_Spec.__doc__, blocks=(dict[Identifier, block], {}),
                        model=(model, ...))
    return {"Block": block, "Model": model, "Spec": spec}


def op_models() -> dict[str, type[BaseModel]]:
    """Op name -> its pydantic model: builtins in registry order, then plugin ops."""
    from archcc import ops

    return {op.name: op.schema for op in ops.all_ops()}


def op_names() -> list[str]:
    """Every op's ``op:`` tag (``repeat`` is structure, not an op)."""
    return list(op_models())


def json_schema() -> str:
    """The JSON Schema editors use (``# yaml-language-server: $schema=...`` in specs).

    Registered plugin ops are included; with none it is the committed schema/ file."""
    import json

    schema = spec_model().model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "archcc spec"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
