"""Shared fixtures: specs compiled once per session into a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import archcc

# The suite checks archcc's builtin ops (catalogue, schema, error texts): plugins a developer
# installed (`pip install -e examples/cbam_plugin`) stay out, here and in the CLI
# subprocesses; tests/test_plugins.py turns discovery back on where it tests it.
os.environ.setdefault("ARCHCC_PLUGINS", "0")

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("generated")


@pytest.fixture(scope="session")
def compiled(build_dir):
    """``compiled("gpt2")`` -> the imported generated module for specs/gpt2.yaml."""
    cache = {}

    def get(name: str, opt_level: int = 2):
        key = (name, opt_level)
        if key not in cache:
            out = build_dir / f"O{opt_level}"
            cache[key] = archcc.build(SPECS / f"{name}.yaml", out_dir=out, opt_level=opt_level)
        return cache[key]

    return get


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def full_size() -> bool:
    """Published sizes are slow on CPU; run them with ARCHCC_FULL=1."""
    return os.environ.get("ARCHCC_FULL") == "1"
