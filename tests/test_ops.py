"""Every op in the registry is whole: documented, with a shape rule, formulas that agree with
the generated module, and an example that builds.

For each op its :class:`archcc.ops.Example` is composed into a small spec, compiled, and the
generated model measured on the meta device (:func:`archcc.inspect.measure.measure`, which is
``torch.utils.flop_counter`` itself): the op's ``params`` and ``flops`` formulas must give the
same numbers for the example's concrete values and input shapes.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import yaml

from archcc import ops
from archcc.api import compile_spec
from archcc.inspect.measure import measure
from archcc.ir.shapes import RULES
from archcc.ops.base import Op
from archcc.parser.expr import evaluate, parse_expr
from archcc.runtime.loader import import_source

ROOT = Path(__file__).resolve().parents[1]
OPS = [o.name for o in ops.all_ops()]
DTYPES = {"int64": "int64", "bool": "bool"}


def _input(text: str) -> dict:
    """``"[B, T, n_embd] int64"`` -> ``{"shape": [...], "dtype": "int64"}``."""
    shape, _, dtype = text.partition("]")
    entry = {"shape": [d.strip() for d in shape.strip("[ ").split(",")]}
    if dtype.strip():
        entry["dtype"] = dtype.strip()
    if entry.get("dtype") == "int64":
        entry["high"] = 2
    return entry


def example_spec(op: Op) -> dict:
    """The op's example as a whole spec: params, inputs, the layer, ``return <call>``."""
    ex = op.example
    (name, entry), = yaml.safe_load(ex.layer).items()
    layers = {**(yaml.safe_load(ex.setup) if ex.setup else {}), name: entry}
    first = next(iter(ex.inputs))
    return {"archcc": 1, "name": f"example_{op.name}", "params": dict(ex.params),
            "dims": dict(ex.dims), "inputs": {k: _input(v) for k, v in ex.inputs.items()},
            "model": {"layers": layers, "forward": f"return {ex.call or f'{name}({first})'}\n"}}


def concrete(op: Op, fields: dict, params: dict) -> dict:
    """A layer entry's values with its sizes and settings evaluated (nested for residual)."""
    numeric = {*op.sizes, *op.zero_sizes, *op.optional_sizes, *op.scalars}
    aliases = {f.alias: k for k, f in op.schema.model_fields.items() if f.alias}
    out = {}
    for key, value in fields.items():
        key = aliases.get(key, key)
        if isinstance(value, dict) and "op" in value:
            out[key] = concrete(ops.get(value["op"]), value, params)
        elif isinstance(value, list):
            out[key] = [evaluate(parse_expr(str(v)), params) for v in value]
        elif key in numeric and value is not None:
            out[key] = evaluate(parse_expr(str(value)), params)
        else:
            out[key] = value
    return out


def _build(op: Op, tmp_path: Path):
    data = example_spec(op)
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    compiled = compile_spec(path)
    module = import_source(compiled.source, f"archcc_test_ops_{op.name}")
    return data, compiled, module


@pytest.mark.parametrize("name", OPS)
def test_every_op_is_documented(name):
    op = ops.get(name)
    assert inspect.cleandoc(op.schema.__doc__ or "").strip(), f"{name}: schema docstring"
    undocumented = [k for k, f in op.schema.model_fields.items()
                    if k != "op" and not f.description]
    assert not undocumented, f"{name}: fields without a docstring: {undocumented}"
    assert op.schema.model_fields["op"].annotation.__args__ == (name,)
    assert op.example is not None, f"{name}: no example"
    module_doc = inspect.getmodule(type(op)).__doc__
    assert module_doc and f"op: {name}" in module_doc or name in module_doc


@pytest.mark.parametrize("name", OPS)
def test_every_op_has_its_own_shape_rule_and_formulas(name):
    op = type(ops.get(name))
    for method in ("params", "flops", "submodules"):
        assert getattr(op, method) is not getattr(Op, method), f"{name}: no {method}"
    rules = [getattr(op, m) is not getattr(Op, m)
             for m in ("call_shape", "value_shape", "target_shape")]
    assert any(rules), f"{name}: no shape rule (called: call_shape; a value: value_shape)"


@pytest.mark.parametrize("name", OPS)
def test_example_builds_and_formulas_match_the_module(name, tmp_path):
    op = ops.get(name)
    data, compiled, module = _build(op, tmp_path)
    ast.parse(compiled.source)
    measured = measure(module, batch=2, dims=data["dims"])
    (layer_name,) = yaml.safe_load(op.example.layer)
    entry = data["model"]["layers"][layer_name]
    values = concrete(op, op.schema.model_validate(entry).model_dump(by_alias=True),
                      compiled.program.params)
    shapes = [tuple(s) for s in measured.input_shapes]
    layer_params = sum(v for k, v in measured.params.items()
                       if k in [layer_name + s for s in op.suffixes])
    assert op.params(values) == layer_params, f"{name}: params formula"
    assert op.flops(values, shapes) == measured.flops[""], f"{name}: FLOP formula"


def _code_strings(path: Path) -> set[str]:
    """String constants a module's code uses (docstrings and comments are prose)."""
    tree = ast.parse(path.read_text())
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body and isinstance(node.body[0], ast.Expr)}
    return {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and id(node) not in docs}


def test_an_op_name_is_spelled_in_its_own_module_only():
    """Outside archcc/ops/ (importers aside) at most one module's code names an op: the
    parser, IR and codegen ask the registry instead of branching on names."""
    files = [p for p in (ROOT / "archcc").rglob("*.py")
             if p.relative_to(ROOT / "archcc").parts[0] not in ("ops", "importers")]
    strings = {p: _code_strings(p) for p in files}
    for name in set(OPS) - set(RULES):  # an IR primitive may share an op's name (dropout)
        where = [str(p.relative_to(ROOT)) for p, found in strings.items() if name in found]
        assert len(where) <= 1, f"{name} is spelled in {where}"


def test_the_ops_reference_is_generated_from_the_registry():
    """docs/ops.md is what `make docs` writes now (run it after changing an op)."""
    from archcc.parser.catalog import ops_reference

    assert (ROOT / "docs" / "ops.md").read_text() == ops_reference()
