"""generated/ is the committed output of `archcc build specs/*.yaml`: prove it is current."""

from __future__ import annotations

from pathlib import Path

import pytest

from archcc.api import compile_spec

ROOT = Path(__file__).parents[1]
SPECS = sorted((ROOT / "specs").glob("*.yaml"))


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_generated_matches_spec(spec, monkeypatch):
    monkeypatch.chdir(ROOT)
    compiled = compile_spec(Path("specs") / spec.name)
    committed = ROOT / "generated" / f"{compiled.name}.py"
    assert committed.exists(), f"run `make generated`: {committed} is missing"
    assert committed.read_text() == compiled.source, \
        f"generated/{compiled.name}.py is stale; run `make generated`"


def test_no_orphans_in_generated():
    names = {compile_spec(s).name for s in SPECS}
    orphans = {p.stem for p in (ROOT / "generated").glob("*.py")} - names
    assert not orphans, f"generated/ has modules with no spec: {sorted(orphans)}"


def test_committed_schema_is_current():
    from archcc.parser.schema import json_schema

    committed = ROOT / "schema" / "archcc.schema.json"
    assert committed.read_text() == json_schema(), "run: archcc schema -o schema/archcc.schema.json"
