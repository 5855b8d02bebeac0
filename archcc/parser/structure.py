"""The structural entries of ``layers:``: repeats (stage loops, shared layers), blocks used
as layers, and the ``when`` every layer may carry.

Hierarchical models are written as loops over list-valued params, never as copies::

    layers: {repeat: SwinStage, over: [depths, num_heads],
             args: {dim: embed_dim * 2 ** i, depth: "depths[i]", heads: "num_heads[i]",
                    downsample: i > 0}}
    ->  self.layers = nn.ModuleList(SwinStage(config, config.embed_dim * 2 ** i, ...)
                                    for i in range(len(config.depths)))

    encoder: {block: AlbertLayer, steps: num_hidden_layers}     # one instance, applied n times
    downsample: {op: patch_merge, dim: dim // 2, out: dim, when: downsample}
    ->  self.downsample = PatchMerging(dim // 2, dim) if downsample else nn.Identity()
"""

from __future__ import annotations

import functools
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, create_model, model_validator

from archcc.parser.fields import (
    HINT_MARK,
    FiniteFloat,
    Identifier,
    Size,
    Strict,
)

MAX_LIST = 1000  # elements of a list param; a real model has a handful of stages

ListItem = bool | int | FiniteFloat | str
Value = Annotated[bool | int | FiniteFloat | str,
                  Field(title="a number, true/false or an expression such as `embed_dim * 2 ** i`")]
When = Annotated[bool | str, Field(title="a condition: true, false or an expression such as "
                                         "`i > 0`")]


def check_pattern(text: str) -> str:
    """A layer pattern is letters only, one per layer: ``AAFAAF``."""
    bad = next((i for i, c in enumerate(text) if not (c.isascii() and c.isalpha())), None)
    if not text or bad is not None:
        what = "is empty" if not text else f"has {text[bad]!r} at position {bad}"
        raise ValueError(f"pattern {text!r} {what}{HINT_MARK}a pattern is one letter per "
                         "layer, e.g. AAFAAF, each letter a key of `blocks`")
    return text


def check_letter(letter: str) -> str:
    """A key of a pattern's `blocks`: a single ASCII letter."""
    if len(letter) != 1 or not (letter.isascii() and letter.isalpha()):
        raise ValueError(f"{letter!r} is not a pattern letter{HINT_MARK}`blocks` maps single "
                         "letters to blocks, e.g. {A: Attn, F: FFNBlock}")
    return letter


Pattern = Annotated[str, Field(max_length=10_000), AfterValidator(check_pattern)]
Letter = Annotated[str, AfterValidator(check_letter)]


def check_list(items: list) -> list:
    """List params hold one type of element (ints with floats read as floats)."""
    kinds = {"bool" if isinstance(v, bool) else "number" if isinstance(v, int | float)
             else "string" for v in items}
    if len(kinds) > 1:
        raise ValueError(f"a list holds one kind of value, got {' and '.join(sorted(kinds))}"
                         f"{HINT_MARK}write all numbers, all true/false or all names")
    return items


ParamList = Annotated[list[ListItem], Field(max_length=MAX_LIST), AfterValidator(check_list)]
ParamValue = bool | int | FiniteFloat | str | ParamList
ArgDefault = bool | int | FiniteFloat | str | ParamList | None

WHEN_DOC = ("Build the layer only where this holds (a condition over params, block arguments "
            "and `i`); elsewhere it is `nn.Identity()`, so a call passes its one input "
            "through: `downsample: {op: patch_merge, ..., when: i > 0}`.")


class Repeat(Strict):
    """`times` instances of a block in an `nn.ModuleList`, applied in order (a `for` loop in
    the generated forward). Per-instance `args` may use the index `i`, so one entry is a
    stage loop: `{repeat: Stage, over: [depths, num_heads], args: {depth: "depths[i]"}}`.
    With `steps`, the loop runs `steps` times over fewer instances, which share weights
    (ALBERT). Or one block per letter of a `pattern` (`AAFAAF`)."""

    repeat: str | None = None
    """The block under `blocks:`, or an expression choosing it per instance: `AttnBlock if
    attention[i] else Block` (each block it names takes the same args). Not with `pattern`."""
    times: Size | None = None
    """Number of instances (`len(depths)`, `n_layer`). Required with `repeat` unless `over`
    gives it; with `pattern` optional, and when given it must equal the pattern's length."""
    over: list[Identifier] = []
    """List params iterated in lockstep: `times` is their common length (a length mismatch is
    an error) and `args` read element i as `depths[i]`."""
    args: dict[Identifier, Value] = {}
    """Arguments of each instance, by the block's argument names: expressions over params,
    the enclosing block's arguments and the index `i` (0, 1, ...)."""
    steps: Size | None = None
    """Weight sharing: the loop runs `steps` times, step i applying instance `pick`; the
    instances' weights are reused (ALBERT: 12 steps over 1 layer group)."""
    pick: str | None = None
    """With `steps`: the instance step i applies (default `i * times // steps`, consecutive
    steps share one instance)."""
    cycle: list[Identifier] = []
    """Further blocks taken in turn: with `cycle: [Shifted]`, layers alternate
    `repeat`, Shifted, `repeat`, ... (Swin's plain and shifted windows)."""
    pattern: Pattern | None = None
    """One letter per layer, e.g. `AAFAAF` with `blocks: {A: Attn, F: FFNBlock}`: layer i
    is an instance of the block letter i names (checkpoint keys stay `h.{i}.…`)."""
    blocks: dict[Letter, Identifier] = {}
    """For `pattern`: letter -> block name under the spec's `blocks:`."""
    when: When | None = None
    """Build the layer only where this holds; elsewhere the loop has no instances."""

    @model_validator(mode="after")
    def _one_form(self) -> Repeat:
        if self.pattern is None:
            if self.blocks:
                raise ValueError(f"`blocks` goes with `pattern`{HINT_MARK}add a pattern such "
                                 f"as {''.join(self.blocks) * 2}, or drop `blocks`")
            if self.repeat is None:
                raise ValueError("missing required field 'repeat'")
            if self.times is None and not self.over:
                raise ValueError(f"missing required field 'times'{HINT_MARK}or iterate list "
                                 "params: over: [depths]")
        elif self.repeat is not None or self.cycle or self.over or self.args:
            raise ValueError(f"a pattern names its blocks by letter{HINT_MARK}drop `repeat`, "
                             "`cycle`, `over` and `args` and map letters in `blocks: {A: Attn, "
                             "F: FFNBlock}`")
        elif not self.blocks:
            raise ValueError(f"missing required field 'blocks'{HINT_MARK}a pattern needs its "
                             "letters: blocks: {A: Attn, F: FFNBlock}")
        if self.pick is not None and self.steps is None:
            raise ValueError(f"`pick` goes with `steps`{HINT_MARK}steps: n runs the loop n "
                             "times; pick says which instance step i applies")
        if self.cycle and (self.args or self.steps is not None):
            raise ValueError(f"`cycle` takes no `args` or `steps`{HINT_MARK}choose the block "
                             "per instance with an expression: repeat: B if i % 2 else A")
        return self

    def block_names(self) -> list[str]:
        """The blocks this repeat may instantiate, in order of first mention: ``[repeat,
        *cycle]`` (every name in a choosing expression), or the blocks a pattern's letters
        name (unknown letters left out)."""
        if self.pattern is None:
            return [*block_refs(self.repeat), *self.cycle]
        return list(dict.fromkeys(self.blocks[c] for c in self.pattern if c in self.blocks))


class BlockLayer(Strict):
    """One instance of a block under `blocks:`, used as a layer: `self.<name> = Block(config,
    ...)`. Calling it twice in a forward applies the same weights twice; with `steps` one
    call applies it `steps` times in a loop."""

    block: str
    """The block, or an expression choosing it: `Bottleneck if bottleneck else Basic`."""
    args: dict[Identifier, Value] = {}
    """Its arguments, by the block's argument names (expressions over params and the
    enclosing block's arguments)."""
    steps: Size | None = None
    """Apply the one instance this many times in a loop (ALBERT's shared layer)."""
    when: When | None = None
    """Build the layer only where this holds; elsewhere it is `nn.Identity()`."""

    def block_names(self) -> list[str]:
        """The blocks this layer may be (one name, or every name in a choosing expression)."""
        return block_refs(self.block)


@functools.lru_cache(maxsize=4096)
def block_refs(text: str | None) -> list[str]:
    """The block names a `repeat`/`block` entry mentions: itself when it is a name, else the
    names of its expression (params among them are filtered out by the caller)."""
    if text is None:
        return []
    if text.isidentifier():
        return [text]
    from archcc.parser.expr import ExprSyntaxError, names_in, parse_expr

    try:
        return list(dict.fromkeys(names_in(parse_expr(text))))
    except ExprSyntaxError:
        return []


def is_structure(layer: object) -> bool:
    """A repeat or a block used as a layer (not an op)."""
    return isinstance(layer, Repeat | BlockLayer)


@functools.cache
def with_when(model: type[BaseModel]) -> type[BaseModel]:
    """An op's model with the `when` field every entry of `layers:` may carry (a residual's
    wrapped layer too, where `when` is refused: it belongs on the residual). Same name as the
    op's model, which the JSON Schema then never shows twice."""
    return create_model(model.__name__, __base__=model, __module__=model.__module__,
                        __doc__=model.__doc__,
                        when=(When | None, Field(None, description=WHEN_DOC)))
