"""Staged golden files for every example spec: IR, optimized IR, generated code.

A change to the builder, a pass or the templates shows up as a readable diff of one stage.
Re-record after an intended change with ``make golden`` (ARCHCC_UPDATE_GOLDEN=1).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from archcc.api import compile_spec
from archcc.ir.graph import program_text
from tests.golden_util import check_golden

ROOT = Path(__file__).parents[1]
SPECS = sorted(p.stem for p in (ROOT / "specs").glob("*.yaml"))


@pytest.mark.parametrize("name", SPECS)
def test_stages(name, monkeypatch):
    monkeypatch.chdir(ROOT)  # paths in banners and docstrings are relative to the checkout
    spec = Path("specs") / f"{name}.yaml"
    check_golden(f"{name}/1_ir.txt", program_text(compile_spec(spec, opt_level=0).program))
    optimized = compile_spec(spec, opt_level=2)
    check_golden(f"{name}/2_optimized_ir.txt", program_text(optimized.program))
    check_golden(f"{name}/3_code.py.txt", optimized.source)
