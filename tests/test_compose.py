"""Composition: extends chains, block libraries, --set, provenance, and their errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import archcc
from archcc.api import compile_spec
from archcc.diagnostics import ArchccError
from archcc.parser import load_spec, resolve_spec
from tests.golden_util import check_golden

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = Path("tests/specs/compose")


@pytest.fixture(autouse=True)
def _at_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # provenance comments show paths relative to the checkout


def test_resolve_shows_where_every_value_came_from():
    text = resolve_spec(COMPOSE / "gpt2_tiny_glu.yaml", ["n_layer=3"])
    check_golden("resolve/gpt2_tiny_glu.txt", text)
    assert "  n_layer: 3" in text and "# --set n_layer=3" in text
    assert "drop:" not in text.split("model:")[1], "null deletes the base's dropout layer"
    assert "heads: 2 * n_head" in text and "# tests/specs/compose/gpt2_tiny_glu.yaml:10" in text


def test_extends_changes_only_what_differs():
    """GPT-2 medium as a 4-line diff has exactly Hugging Face's gpt2-medium size."""
    module = archcc.build(COMPOSE / "gpt2_medium.yaml", out_dir=ROOT / ".archcc_cache" / "t")
    with torch.device("meta"):
        model = module.Model()
    assert module.Config().n_layer == 24
    assert sum(p.numel() for p in model.parameters()) == 354_823_168
    spec = load_spec(COMPOSE / "gpt2_medium.yaml")
    assert spec.sources == ("tests/specs/compose/gpt2_medium.yaml", "specs/gpt2.yaml")
    assert spec.where.key(("params", "n_embd")).file.endswith("gpt2_medium.yaml")
    assert spec.where.key(("params", "vocab_size")).file == "specs/gpt2.yaml"


def test_imported_blocks_and_deep_merges_build_and_run(tmp_path):
    module = archcc.build(COMPOSE / "gpt2_tiny_glu.yaml", out_dir=tmp_path)
    model = module.Model().eval()
    assert type(model.h[0]).__name__ == "GluBlock"
    assert not hasattr(model, "drop")
    assert "class Block(" not in (tmp_path / "gpt2_tiny_glu.py").read_text(), \
        "a block nothing uses is checked but not generated"
    assert model(*module.example_inputs(batch=2, T=5)).shape == (2, 5, 101)


def test_set_overrides_params_and_dotted_fields():
    compiled = compile_spec(COMPOSE / "gpt2_tiny_glu.yaml",
                            sets=["n_layer=1", "blocks.GluBlock.layers.attn.heads=8"])
    assert compiled.program.params["n_layer"] == 1
    assert "self.attn = CausalSelfAttention(config.n_embd, 8)" in compiled.source


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _error(path: Path, sets=()) -> str:
    with pytest.raises(ArchccError) as info:
        load_spec(path, sets)
    return str(info.value)


@pytest.fixture()
def project(tmp_path) -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    base = (ROOT / "specs" / "gpt2.yaml").read_text()
    _write(tmp_path, "specs/gpt2.yaml", base)
    return tmp_path


def test_errors_point_into_the_file_that_said_it(project):
    child = _write(project, "specs/child.yaml",
                   "extends: gpt2.yaml\nname: child\nparams: {n_head: 10}\n")
    with pytest.raises(ArchccError) as info:
        compile_spec(child)
    (diag,) = info.value.diagnostics
    assert diag.message == "heads (10) must divide dim (768)"
    assert diag.loc.file.endswith("specs/gpt2.yaml"), "the layer is declared in the base"


@pytest.mark.parametrize(("text", "message"), [
    ("extends: /etc/passwd.yaml\n", "is not a relative path"),
    ("extends: https://example.com/x.yaml\n", "is not a relative path"),
    ("extends: ../../outside.yaml\n", "is outside the project"),
    ("extends: missing.yaml\n", "does not exist"),
    ("extends: gpt2.py\n", "is not a spec file"),
    ("extends: a.yaml\n", "spec cycle: child.yaml -> a.yaml -> b.yaml -> a.yaml"),
    ("extends: gpt2.yaml\nimports: [lib.yaml]\n", "a block library holds only"),
    ("extends: gpt2.yaml\nimports: [blocks.yaml]\n", "block 'Block' is also defined"),
])
def test_bad_references_are_located_errors(project, text, message):
    _write(project, "specs/a.yaml", "extends: b.yaml\n")
    _write(project, "specs/b.yaml", "extends: a.yaml\n")
    _write(project, "specs/lib.yaml", "archcc: 1\nparams: {x: 1}\nblocks: {}\n")
    _write(project, "specs/blocks.yaml", "archcc: 1\nblocks:\n  Block: {forward: return x}\n")
    child = _write(project, "specs/child.yaml", text)
    rendered = _error(child)
    assert message in rendered, rendered
    assert rendered.split(":")[0].endswith(".yaml"), "every error names a spec file"


@pytest.mark.parametrize(("sets", "message"), [
    (["n_layr=3"], "unknown param 'n_layr'"),
    (["n_layer"], "--set expects key=value"),
    (["model.layers.h.times.deeper=1"], "'times' is not a mapping"),
    (["n_layer=[1, 2]"], "--set takes a single value"),
    (["n_layer=0"], "out of range"),
])
def test_bad_sets_are_clear_errors(sets, message):
    with pytest.raises(ArchccError) as info:
        compile_spec(Path("specs/gpt2.yaml"), sets=sets)
    assert message in str(info.value)
    assert "--set" in str(info.value.diagnostics[0].loc) or message == "out of range"


def test_arch_specs_extend_too(project):
    child = _write(project, "specs/child.arch",
                   'archcc 1\nspec child\nextends "gpt2.yaml"\n\nparams {\n  n_layer = 2\n}\n')
    loaded = load_spec(child)
    assert loaded.spec.params["n_layer"] == 2 and loaded.spec.params["n_embd"] == 768


def test_cli_set_resolve_and_fmt_refusal(tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "archcc", *args], cwd=ROOT,
                              capture_output=True, text=True)

    built = run("build", "specs/gpt2.yaml", "--set", "n_layer=2", "-o", str(tmp_path))
    assert built.returncode == 0, built.stderr
    assert "n_layer: int = 2" in (tmp_path / "gpt2.py").read_text()
    resolved = run("resolve", str(COMPOSE / "gpt2_medium.yaml"))
    assert "n_embd: 1024" in resolved.stdout and "specs/gpt2.yaml:" in resolved.stdout
    refused = run("fmt", str(COMPOSE / "gpt2_medium.yaml"))
    assert refused.returncode == 1 and "extends or imports other specs" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_load_cache_follows_the_base_file(project, monkeypatch, tmp_path_factory):
    monkeypatch.setenv("ARCHCC_CACHE", str(tmp_path_factory.mktemp("cache")))
    child = _write(project, "specs/child.yaml",
                   "extends: gpt2.yaml\nname: child\nparams: {n_layer: 1, n_embd: 32, "
                   "n_head: 2, vocab_size: 50}\n")
    first = archcc.load(child)
    base = project / "specs" / "gpt2.yaml"
    base.write_text(base.read_text().replace("n_positions: 1024", "n_positions: 64"))
    second = archcc.load(child)
    assert (first.Config().n_positions, second.Config().n_positions) == (1024, 64)
