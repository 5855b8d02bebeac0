"""The .arch front end: same Spec as YAML, exact round trips, located syntax errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from archcc.api import compile_spec
from archcc.ir.graph import program_text
from archcc.parser import load_spec
from archcc.parser.schema import Spec, check_identifier
from archcc.parser.writer import to_arch, to_yaml

ROOT = Path(__file__).parents[1]
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
# every structural construct: list params, block arguments, stage loops over lists, when,
# blocks as layers, steps/pick sharing, block-choosing expressions, skip stacks
SPECS += sorted((ROOT / "tests" / "specs" / "structure").glob("*.yaml"))


def _body(source: str) -> list[str]:
    """Generated code minus the lines that name the spec file."""
    return [line for line in source.splitlines()
            if "archcc build " not in line and "spec: " not in line and "from " not in line]


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_example_converts_to_arch_and_compiles_the_same(spec, tmp_path):
    arch = tmp_path / f"{spec.stem}.arch"
    arch.write_text(to_arch(load_spec(spec).spec))
    assert load_spec(arch).spec == load_spec(spec).spec
    from_yaml, from_arch = compile_spec(spec), compile_spec(arch)
    assert program_text(from_arch.program) == program_text(from_yaml.program)
    assert _body(from_arch.source) == _body(from_yaml.source)


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_yaml_writer_round_trips(spec, tmp_path):
    out = tmp_path / spec.name
    out.write_text(to_yaml(load_spec(spec).spec))
    assert load_spec(out).spec == load_spec(spec).spec


def test_shipped_arch_example_matches_its_yaml_twin():
    assert load_spec(ROOT / "examples" / "gpt2.arch").spec == load_spec(ROOT / "specs" /
                                                                        "gpt2.yaml").spec


# --------------------------------------------------------------------- generated specs

def _usable(name: str) -> bool:
    try:
        check_identifier(name)
    except ValueError:
        return False
    return name not in {"true", "false", "null", "repeat"}  # .arch constants and keywords


NAMES = st.from_regex(r"[a-z][a-z0-9]{0,6}_?[a-z0-9]{0,3}", fullmatch=True).filter(_usable)
# prose without control characters (the schema refuses those, see check_doc_text)
DOCS = st.text(st.characters(exclude_categories=("Cc", "Cf", "Cs", "Zl", "Zp")),
               max_size=30)
SIZES = st.one_of(st.integers(1, 4096), st.sampled_from(["n_embd", "4 * n_embd", "n_embd // 2",
                                                         "(n_embd + 1) ** 2"]))
SCALARS = st.one_of(st.floats(0, 1, allow_nan=False).map(lambda f: round(f, 4)),
                    st.sampled_from(["p_drop", "p_drop / 2"]))


def _layers():
    return st.one_of(
        st.fixed_dictionaries({"op": st.just("linear"), "in": SIZES, "out": SIZES},
                              optional={"bias": st.booleans()}),
        st.fixed_dictionaries({"op": st.just("layernorm"), "dim": SIZES},
                              optional={"eps": SCALARS, "bias": st.booleans()}),
        st.fixed_dictionaries({"op": st.just("attention"), "dim": SIZES, "heads": SIZES},
                              optional={"causal": st.booleans(), "cross": st.booleans(),
                                        "qkv": st.sampled_from(["fused", "separate"]),
                                        "dropout": SCALARS}),
        st.fixed_dictionaries({"op": st.just("ffn"), "dim": SIZES, "hidden": SIZES},
                              optional={"act": st.sampled_from(["gelu", "silu", "relu"]),
                                        "gated": st.booleans()}),
        st.fixed_dictionaries({"op": st.just("parameter"), "shape": st.lists(SIZES, max_size=3)},
                              optional={"init": st.sampled_from(["zeros", "normal"])}),
        st.fixed_dictionaries({"op": st.just("residual"), "dim": SIZES,
                               "layer": st.fixed_dictionaries({"op": st.just("dropout"),
                                                               "p": SCALARS}),
                               "placement": st.sampled_from(["pre", "post"])}),
        st.fixed_dictionaries({"repeat": st.just("Blk"), "times": SIZES}),
    )


FORWARD = st.sampled_from(["return x\n", "x = a(x)  # note\n\nreturn x, a(x)[:, 0]\n",
                           "y = x * n_embd ** -0.5\nreturn y @ transpose(y, -2, -1)\n"])
SPEC = st.fixed_dictionaries({
    "archcc": st.just(1), "name": NAMES,
    "params": st.dictionaries(NAMES, st.one_of(st.integers(-5, 10**6), st.booleans(),
                                               st.sampled_from(["n_embd * 2"])), max_size=4),
    "inputs": st.dictionaries(NAMES, st.fixed_dictionaries(
        {"shape": st.lists(st.sampled_from(["B", "T", 3, "n_embd"]), min_size=1, max_size=4)},
        optional={"dtype": st.sampled_from(["int64", "bool", "float32"]), "high": SIZES,
                  "default": st.sampled_from(["zeros", "ones"])}),
        min_size=1, max_size=3),
    "blocks": st.fixed_dictionaries({"Blk": st.fixed_dictionaries(
        {"layers": st.dictionaries(NAMES, _layers(), max_size=4), "forward": FORWARD},
        optional={"doc": DOCS, "inputs": st.lists(NAMES, min_size=1,
                                                                   max_size=3, unique=True)})}),
    "model": st.fixed_dictionaries({"layers": st.dictionaries(NAMES, _layers(), max_size=4),
                                    "forward": FORWARD}),
    "checkpoint": st.dictionaries(st.sampled_from(["hf", "timm"]), st.fixed_dictionaries(
        {}, optional={"rename": st.dictionaries(st.sampled_from(["a.{i}.b", "x"]),
                                                st.sampled_from(["c.{i}", ""])),
                      "transpose": st.lists(st.sampled_from(["h.*.w"]), max_size=2),
                      "concat": st.just({"q.{i}": ["a.{i}", "b.{i}"]}),
                      "drop": st.lists(st.sampled_from(["p", "q.*"]), max_size=2)}),
        max_size=2),
}, optional={"doc": DOCS, "dims": st.dictionaries(st.sampled_from(["T", "S"]),
                                                                  st.integers(1, 64))})


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=SPEC)
@example(data={"archcc": 1, "name": "a", "inputs": {"a": {"shape": ["B"]}},
               "model": {"forward": "return x\n"}, "doc": "\xa0"})  # a doc of one Unicode space
def test_round_trip_over_generated_specs(data, tmp_path):
    spec = Spec.model_validate(data)
    for name, text in (("s.arch", to_arch(spec)), ("s.yaml", to_yaml(spec))):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        assert load_spec(path).spec == spec, text
