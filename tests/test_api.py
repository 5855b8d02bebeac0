"""archcc.build and archcc.load: the Python front door."""

from __future__ import annotations

from pathlib import Path

import torch

import archcc

ROOT = Path(__file__).parents[1]


def test_build_writes_and_returns_the_module(tmp_path):
    module = archcc.build(ROOT / "specs" / "gpt2.yaml", out_dir=tmp_path)
    assert (tmp_path / "gpt2.py").exists()
    assert module.Config().n_embd == 768


def test_load_caches_by_spec_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHCC_CACHE", str(tmp_path / "cache"))
    spec = tmp_path / "tiny.yaml"
    text = (ROOT / "tests" / "specs" / "hand_attention.yaml").read_text()
    spec.write_text(text)
    first = archcc.load(spec)
    folders = list((tmp_path / "cache").iterdir())
    assert len(folders) == 1
    again = archcc.load(spec)
    assert list((tmp_path / "cache").iterdir()) == folders  # reused
    assert again is first  # same module object, not a re-import
    spec.write_text(text.replace("dim: 32", "dim: 16"))
    changed = archcc.load(spec)
    assert len(list((tmp_path / "cache").iterdir())) == 2
    assert changed.Config().dim == 16
    (ids,) = changed.example_inputs()
    assert changed.Model()(ids).shape == (2, 8, 16)
    assert isinstance(changed.Model()(ids), torch.Tensor)


def test_load_rebuilds_when_the_compiler_changes(tmp_path, monkeypatch):
    """The cache key covers archcc's own sources: a newer compiler never reuses old code."""
    monkeypatch.setenv("ARCHCC_CACHE", str(tmp_path / "cache"))
    spec = tmp_path / "tiny.yaml"
    spec.write_text((ROOT / "tests" / "specs" / "hand_attention.yaml").read_text())
    archcc.load(spec)
    fingerprint = archcc.api.compiler_fingerprint()
    assert len(fingerprint) == 16 and fingerprint == archcc.api.compiler_fingerprint()
    monkeypatch.setattr(archcc.api, "compiler_fingerprint", lambda: "0" * 16)
    archcc.load(spec)
    assert len(list((tmp_path / "cache").iterdir())) == 2
