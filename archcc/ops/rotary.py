"""``op: rotary``: rotary position embeddings (RoFormer, Su et al. 2021), the position scheme
of LLaMA, Mistral, Qwen, Gemma, Phi-3 and GPT-NeoX.

Each pair of features of a head turns by ``position * theta ** (-2i / dim)``, so ``q . k``
depends on the distance between the two tokens only. It is first of all a facet of
attention, where q and k turn after the head split and positions continue after the KV
cache's (the generated class owns a ``Rotary`` and calls the one ``apply_rotary`` helper)::

    attn: {op: attention, dim: hidden_size, heads: num_attention_heads, causal: true,
           rope: {op: rotary, theta: rope_theta, scaling: llama3, factor: 32.0,
                  original_max_positions: 8192}}

It is also a layer of its own, for attention written by hand from primitives (its
positions start at 0: a hand-written block keeps no KV cache)::

    rope: {op: rotary, dim: head_dim, theta: 10000.0}
    q = rope(q)        # (B, nh, T, hs) -> (B, nh, T, hs), turned by positions 0 .. T - 1

Both spellings are one schema, so the facet is written exactly like the layer. The helper
classes (``Rotary`` and the scaled ``LinearRotary``, ``DynamicRotary``, ``Llama3Rotary``,
``YarnRotary``) compute their angles in float32 and return cos/sin in the input's dtype, as
Hugging Face does; the sources are in :mod:`archcc.ops.rotary_source`.
"""

from __future__ import annotations

from typing import Literal

from archcc.ir.graph import Submodule
from archcc.ir.shapes import FLOAT, ShapeError, fmt
from archcc.ops import Example, Kind, Op, kind, op
from archcc.ops.base import diag
from archcc.ops.rotary_source import CLASSES
from archcc.parser.expr import Num
from archcc.parser.fields import Scalar, Size, Strict


class Rotary(Strict):
    """Rotary position embeddings (RoFormer): feature pairs of each head turn by an angle
    proportional to the position. A facet of attention (`rope: {op: rotary, theta: ...}`:
    q and k turn after the head split, positions continue under the KV cache) or a layer of
    its own: `rope(q)` turns a (B, heads, T, head_dim) tensor by positions 0 .. T - 1."""

    op: Literal["rotary"]
    dim: Size | None = None
    """Features of each head that turn (even): all of the attention's head_dim by default;
    fewer for partial rotary, e.g. `int(head_dim * rotary_pct)` (GPT-NeoX, Phi-3), the rest
    pass through. Required for a layer of its own."""
    theta: Scalar = 10000.0
    """Frequency base: pair i turns by position * theta ** (-2i / dim) (HF `rope_theta`)."""
    layout: Literal["half", "interleaved"] = "half"
    """Which features pair up: `half` pairs i with i + dim / 2 (GPT-NeoX, LLaMA, HF's
    rotate_half); `interleaved` pairs 2i with 2i + 1 (GPT-J, the paper)."""
    scaling: Literal["none", "linear", "dynamic", "llama3", "yarn"] = "none"
    """Context extension of the frequencies (HF `rope_scaling.rope_type`): `linear` divides
    them by `factor`; `dynamic` (NTK) grows theta once a sequence passes `max_positions`;
    `llama3` divides low frequencies by `factor` and blends the middle band (needs
    `original_max_positions`); `yarn` blends per frequency by `beta_fast` / `beta_slow` and
    scales cos and sin by `attention_factor`."""
    factor: Scalar | None = None
    """Scaling factor (linear, dynamic, llama3, yarn)."""
    original_max_positions: Size | None = None
    """Context the model was trained with (llama3, yarn: HF
    `original_max_position_embeddings`)."""
    max_positions: Size | None = None
    """dynamic: the length past which theta grows (HF `max_position_embeddings`)."""
    low_freq_factor: Scalar = 1.0
    """llama3: wavelengths above original_max_positions / low_freq_factor are scaled fully."""
    high_freq_factor: Scalar = 4.0
    """llama3: wavelengths below original_max_positions / high_freq_factor are kept."""
    beta_fast: Scalar = 32.0
    """yarn: pairs turning more than beta_fast times over the original context are kept."""
    beta_slow: Scalar = 1.0
    """yarn: pairs turning fewer than beta_slow times are interpolated fully."""
    attention_factor: Scalar | None = None
    """yarn: multiplies cos and sin (default 0.1 * ln(factor) + 1, HF's mscale)."""
    truncate: bool = True
    """yarn: round the blend's bounds to whole pairs (HF `truncate`)."""


# the fields each scaling reads, besides dim and theta, in constructor order
NEEDS = {"none": (), "linear": ("factor",), "dynamic": ("factor", "max_positions"),
         "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_positions"),
         "yarn": ("factor", "original_max_positions", "beta_fast", "beta_slow",
                  "attention_factor")}
REQUIRED = {"factor", "original_max_positions", "max_positions"}
SIZES = ("dim", "original_max_positions", "max_positions")


def declare_fields(scope, spec: Rotary, path: tuple) -> dict:
    """The rotary fields a spec sets (and its scaling reads), resolved to expressions:
    ``{"theta": ..., "factor": ...}``; a missing required one is an error at ``path``."""
    out = {"theta": scope.scalar(spec.theta, (*path, "theta"))}
    if spec.dim is not None:
        out["dim"] = scope.size(spec.dim, (*path, "dim"))
    for key in NEEDS[spec.scaling]:
        value = getattr(spec, key)
        if key == "attention_factor" and value is None:  # HF's yarn mscale
            out[key] = _default_mscale(out["factor"])
            continue
        if value is None:
            scope.errors.append(_missing(scope, path, spec.scaling, key))
            out[key] = None
            continue
        where = (*path, key)
        out[key] = scope.size(value, where) if key in SIZES else scope.scalar(value, where)
    return out


def _default_mscale(factor):
    from archcc.parser.expr import BinOp, Call

    if factor is None:
        return None
    grow = Call("log", (Call("max", (factor, Num(1)), ()),), ())
    return BinOp("add", BinOp("mul", Num(0.1), grow), Num(1.0))


def _missing(scope, path, scaling: str, key: str):
    from archcc.diagnostics import Diagnostic

    hf = "original_max_position_embeddings" if key.startswith("original") else key
    return Diagnostic(scope.loaded.where.key(path), ".".join(path),
                      f"rope scaling '{scaling}' needs `{key}`",
                      f"add {key}: ... (Hugging Face rope_scaling's {hf})")


def check_fields(scope, where, spec: Rotary, fields: dict, head_dim: int | None) -> list:
    """Values that cannot work: an odd rotated width, or one wider than the head."""
    problems = []
    dim = scope.value(fields["dim"]) if fields.get("dim") is not None else head_dim
    if dim is not None and dim % 2:
        problems.append((f"rotary dim ({dim}) must be even: features turn in pairs", None))
    if dim is not None and head_dim is not None and dim > head_dim:
        problems.append((f"rotary dim ({dim}) exceeds head_dim ({head_dim})",
                         "partial rotary turns a leading part of each head: "
                         "int(head_dim * rotary_pct)"))
    factor = fields.get("factor")
    if factor is not None and scope.value(factor) <= 0:
        problems.append((f"rope factor ({scope.value(factor)}) must be positive", None))
    return problems


def class_name(spec: Rotary) -> str:
    """The helper class a spec's scaling instantiates."""
    return CLASSES[spec.scaling]


def submodule(name: str, spec: Rotary, args: dict, loc=None) -> Submodule:
    """``self.<name> = Llama3Rotary(dim, theta, factor, ...)``: args are expressions in the
    owner's scope, keyed ``dim``, ``theta`` and the scaling's fields."""
    extra = {"truncate": Num(False)} if spec.scaling == "yarn" and not spec.truncate else {}
    return Submodule(name, "rotary", {**args, **extra, "cls": class_name(spec),
                                      "interleaved": Num(spec.layout == "interleaved")}, loc)


@op
class RotaryOp(Op):
    name, schema, order, wrappable = "rotary", Rotary, 105, False
    example = Example("rope: {op: rotary, dim: 8, theta: 10000.0}", {},
                      {"x": "[B, 2, T, 8]"})

    def declare(self, scope, layer):
        layer.facets["rope"] = declare_fields(scope, layer.spec, layer.path)
        layer.broken = any(v is None for v in layer.facets["rope"].values())

    def check(self, scope, layer):
        fields = layer.facets["rope"]
        if fields.get("dim") is None:
            scope.errors.append(diag(layer, "a rotary layer of its own needs `dim` (the "
                                     "features of each head that turn)", "add dim: head_dim"))
            layer.broken = True
            return
        problems = check_fields(scope, layer.loc, layer.spec, fields, None)
        scope.errors += [diag(layer, message, hint) for message, hint in problems]
        layer.broken = bool(problems)

    def submodules(self, layer):
        return [submodule(layer.name, layer.spec, layer.facets["rope"], layer.loc)]

    def call(self, fwd, layer, e):
        """``rope(q)``: its angles (cos, sin), then ``apply_rotary(q, cos, sin)``."""
        args, kwargs = fwd.call_args(layer, e)
        if len(args) != 1 or kwargs:
            fwd.fail(e.pos, f"{layer.name}() takes one tensor, (B, heads, T, head_dim)")
        angles = fwd.node("rope_angles", args, e.pos, var="cos", target=layer.name,
                          dim=layer.facets["rope"]["dim"])
        cos = fwd.node("getitem", [angles], e.pos, var="cos", index=0)
        sin = fwd.node("getitem", [angles], e.pos, var="sin", index=1)
        return fwd.node("rope", [args[0], cos, sin], e.pos,
                        interleaved=layer.spec.layout == "interleaved")

    def call_shape(self, ctx, layer, shapes, dtypes, kwargs):
        x = shapes[0]
        if len(x) != 4:
            raise ShapeError(f"{layer.name} turns a (B, heads, T, head_dim) tensor, got {fmt(x)}",
                             "split the heads first: unflatten then transpose(1, 2)")
        return x, FLOAT

    def params(self, values):
        return 0

    def flops(self, values, shapes):
        return 0

    def facet(self, fields):
        scaling = fields.get("scaling", "none")
        return "rotary" + ("" if scaling in (None, "none") else f" {scaling}")


@kind
class RotaryKind(Kind):
    """``self.rotary = Rotary(dim, theta)`` (or a scaled variant), the angle generator."""

    name = "rotary"

    def init_lines(self, sub, arg):
        a = sub.args
        cls = a["cls"]
        parts = [arg(a["dim"]), arg(a["theta"])]
        parts += [arg(a[key]) for key in NEEDS[_scaling(cls)]]
        if "truncate" in a:
            parts.append("truncate=False")
        if a["interleaved"].value:
            parts.append("interleaved=True")
        return [f"self.{sub.name} = {cls}({', '.join(parts)})"]


def _scaling(cls: str) -> str:
    return next(s for s, c in CLASSES.items() if c == cls)
