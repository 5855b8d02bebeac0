"""Property: random wiring over int64 and float32 inputs gives the same values *and dtypes*
at -O0, -O1 and -O2, and the dtype archcc infers is the one PyTorch produces.

Passes may rewrite arithmetic (fold constants, drop ``* 1``) but never a value's dtype:
``relu(ids) * 1.0`` is float32 at every level."""

from __future__ import annotations

import itertools

import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import archcc
from archcc.api import compile_spec
from archcc.diagnostics import ArchccError

_COUNTER = itertools.count()
TORCH = {"float32": torch.float32, "int64": torch.int64, "bool": torch.bool}
LEAVES = st.sampled_from(["ids", "x", "1", "2", "1.0", "0.5", "k", "k / 2", "k // 2"])
UNARY = ["relu({})", "tanh({})", "sigmoid({})", "-({})"]
BINARY = ["({}) + ({})", "({}) - ({})", "({}) * ({})", "({}) / ({})"]


def _expressions(depth: int) -> st.SearchStrategy[str]:
    if depth == 0:
        return LEAVES
    inner = _expressions(depth - 1)
    return st.one_of(
        inner,
        st.builds(lambda f, a: f.format(a), st.sampled_from(UNARY), inner),
        st.builds(lambda f, a, b: f.format(a, b), st.sampled_from(BINARY), inner, inner))


def _spec(expression: str) -> str:
    return "\n".join(["archcc: 1", "name: dtypes", "params: {k: 3}", "inputs:",
                      "  ids: {shape: [B, T], dtype: int64, high: 5}",
                      "  x: {shape: [B, T]}", "model:", "  forward: |",
                      f"    y = ({expression}) + 0 * ids", "    return y", ""])


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(expression=_expressions(3))
def test_every_level_agrees_in_values_and_dtypes(tmp_path, expression):
    folder = tmp_path / str(next(_COUNTER))
    folder.mkdir()
    spec = folder / "dtypes.yaml"
    spec.write_text(_spec(expression))
    try:
        program = compile_spec(spec, opt_level=0).program
    except ArchccError as exc:  # a function of numbers alone is refused, at its line
        assert "takes a tensor, got only numbers" in str(exc), str(exc)
        assume(False)
    out = program.model.graph.nodes[program.model.output]["inputs"][0]
    inferred = program.model.graph.nodes[out]["dtype"]
    ids = torch.randint(0, 5, (2, 3))
    x = torch.randn(2, 3)
    results = []
    for level in (0, 1, 2):
        module = archcc.build(spec, out_dir=folder / f"o{level}", opt_level=level)
        results.append(module.Model(module.Config())(ids, x))
    for result in results:
        assert result.dtype == TORCH[inferred], (expression, result.dtype, inferred)
        torch.testing.assert_close(result, results[0], equal_nan=True)
