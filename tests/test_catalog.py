"""`archcc blocks`: the op catalogue is generated from the schema and its examples are valid."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import TypeAdapter

from archcc.parser import schema
from archcc.parser.catalog import describe, example, list_ops, op_models

ROOT = Path(__file__).resolve().parents[1]
LAYER = TypeAdapter(schema.Layer)


@pytest.mark.parametrize("op", list(op_models()))
def test_every_op_has_a_valid_example(op):
    (entry,) = yaml.safe_load(example(op)).values()
    assert LAYER.validate_python(entry).op == op


@pytest.mark.parametrize("op", list(op_models()))
def test_describe_lists_every_field_with_its_default(op):
    text = describe(op)
    model = op_models()[op]
    for name, info in model.model_fields.items():
        if name != "op":
            assert f"\n{info.alias or name} " in text
    assert text.startswith(f"{op}: ") and "\nexample:\n" in text


def test_list_names_every_op_once():
    names = [line.split()[0] for line in list_ops().splitlines()]
    assert names == [*schema.OP_NAMES, "repeat"]


def test_field_docstrings_reach_the_table():
    assert re.search(r"\bheads +size\b", describe("attention"))  # column width may vary
    assert "Number of heads; must divide dim." in describe("attention")


def test_cli_blocks_and_unknown_op():
    run = [sys.executable, "-m", "archcc", "blocks"]
    listed = subprocess.run([*run, "list"], cwd=ROOT, capture_output=True, text=True)
    assert listed.returncode == 0 and "attention" in listed.stdout
    typo = subprocess.run([*run, "describe", "atention"], cwd=ROOT, capture_output=True,
                          text=True)
    assert typo.returncode == 1 and "did you mean 'attention'?" in typo.stderr
    assert "Traceback" not in typo.stderr
