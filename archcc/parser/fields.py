"""Field types every part of a spec shares: names, sizes, scalars, prose, key patterns.

Op schemas (``archcc/ops/``) and the spec's structure (:mod:`archcc.parser.schema`) both
build on these, so an op module never imports the schema of the whole spec::

    class Linear(Strict):
        op: Literal["linear"]
        in_: Size = Field(alias="in")     # an integer or a param expression: `4 * n_embd`
        tie: Identifier | None = None     # a name that reaches generated code: validated

Every model on :class:`Strict` forbids unknown keys (a typo is an error, not a silently
ignored option) and documents its fields with attribute docstrings, which become the JSON
Schema descriptions an editor shows on hover.
"""

from __future__ import annotations

import builtins
import keyword
import math
import unicodedata
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# Names that would shadow what generated code relies on, besides keywords and builtins.
RESERVED_NAMES = {
    # module-level names of every generated file
    "torch", "nn", "F", "math", "re", "dataclass", "annotations", "Config", "Model",
    "CHECKPOINT_LAYOUTS", "convert_state_dict", "example_inputs",
    "DYNAMIC_DIMS", "DIM_RANGES",
    # the generation facet's names (KV cache helpers, encode/decode methods, the cache argument)
    "KVCache", "generate", "filter_logits", "past_length", "extend_kv", "memoized", "cache",
    "encode", "decode",
    "fsdp_wrap", "parallelize", "PARALLEL_PLAN",
    # helpers op modules write into generated files (archcc.ops.register_helper)
    "apply_rotary", "Rotary", "LinearRotary", "DynamicRotary", "Llama3Rotary", "YarnRotary",
    "RMSNorm", "ScaledEmbedding", "sliding_window_mask",
    # training helpers (init_weights, param groups, checkpointing, export)
    "init_weights", "init_parameters", "by_rows", "lecun_normal_", "uniform_within",
    "NO_DECAY", "param_groups", "Checkpointable", "set_checkpointing", "checkpoint",
    "checkpointing", "export_state_dict", "FUSED_LINEARS", "Callable",
    # names generated methods use, and nn.Module attributes a layer name would shadow
    "self", "config", "layer", "block", "forward", "training", "state_dict", "parameters",
    "modules", "buffers", "children", "to", "cuda", "cpu", "eval", "train", "apply", "half",
    "float", "double", "register_buffer", "register_parameter", "add_module", "zero_grad",
    "load_state_dict", "named_parameters", "named_modules", "requires_grad_",
}


# Letters from other scripts that look like ASCII ones (a copy-paste from a PDF or a
# keyboard layout slip); NFKD handles accents and full-width forms.
_LOOKALIKES = str.maketrans("аеорсхуіјѕԁӏАВЕКМНОРСТХαοκνρτυχΑΒΕΗΙΚΜΝΟΡΤΧΥƒı",
                            "aeopcxyijsdlABEKMHOPCTXaoKvptuxABEHIKMNOPTXYfi")
HINT_MARK = "\nhint: "  # a validator message may end with a hint for the diagnostic


def ascii_lookalike(name: str) -> str:
    """``ascii_lookalike("ln_ƒ") == "ln_f"``: what a confusable name was probably meant to be."""
    plain = unicodedata.normalize("NFKD", name.translate(_LOOKALIKES))
    return "".join(c for c in plain if c.isascii())


MAX_NAME = 64


def check_identifier(name: str) -> str:
    """Names reach generated code, so they must be plain, unshadowing Python identifiers."""
    if not name.isascii():
        odd = next(c for c in name if not c.isascii())
        meant = ascii_lookalike(name)
        guess = f"did you mean '{meant}'? " if meant.isidentifier() else ""
        raise ValueError(f"'{name}' is not a valid name: '{odd}' is "
                         f"U+{ord(odd):04X} {unicodedata.name(odd, 'a non-ASCII character')}"
                         f"{HINT_MARK}{guess}names use ASCII letters, digits and _")
    if len(name) > MAX_NAME:  # names become file, class and attribute names
        raise ValueError(f"'{name[:20]}...' is too long for a name ({len(name)} characters, "
                         f"{MAX_NAME} at most)")
    if not name.isidentifier():
        raise ValueError(f"'{name}' is not a valid name (use ASCII letters, digits and _)")
    if keyword.iskeyword(name) or hasattr(builtins, name) or name in RESERVED_NAMES:
        raise ValueError(f"'{name}' is reserved in generated Python code; pick another name")
    if name.startswith("__"):
        raise ValueError(f"'{name}': names may not start with '__'")
    return name


Identifier = Annotated[str, AfterValidator(check_identifier)]


def check_finite(value: float) -> float:
    """NaN and infinity have no Python literal; as a size or setting they are mistakes."""
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    return value


FiniteFloat = Annotated[float, AfterValidator(check_finite)]
DimSize = Annotated[int, Field(ge=1, le=2**31)]


def check_doc_text(text: str) -> str:
    """Docs are prose for docstrings: no control or line-separator characters (a NEL or
    U+2028 reads as a line break to YAML and would not survive a round trip)."""
    bad = [c for c in text if c not in "\n\t"
           and unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")]
    if bad:
        raise ValueError(f"doc text may not contain the control character {ascii(bad[0])}")
    return text


DocText = Annotated[str, Field(max_length=2000), AfterValidator(check_doc_text)]
LayoutName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$",
                                  description="a layout name such as hf, timm or torch")]
# Checkpoint key patterns: dotted segments of word characters, `{name}` or `*` placeholders.
KeyPattern = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.{}*]*$", max_length=300)]
# Titles, not descriptions: a Field description here would replace each field's own
# attribute docstring ("Model width.") in the JSON Schema editors show.
Size = Annotated[int | str, Field(title="an integer or a parameter expression such as "
                                        "`4 * n_embd`")]
Scalar = Annotated[float | int | str, Field(title="a number or a parameter expression")]
Activation = Literal["relu", "gelu", "gelu_tanh", "silu", "tanh", "sigmoid", "identity",
                     "quick_gelu"]


def normal_forward(text: str) -> str:
    """One trailing newline, whatever the front end (YAML `|`, `|-`, or .arch braces)."""
    return text.rstrip() + "\n"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)


