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
    (["n_layer=!!python/name:os.system"], "bad --set value: YAML tag '!!python/name:os.system'"),
    (["n_layer=1\x002"], "bad --set value: character U+0000 is not allowed in YAML"),
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


# ------------------------------------------------------------------------- derived blocks


def test_a_derived_block_changes_only_what_it_says(tmp_path):
    """``Wide: {extends: Block, layers: {mlp: {hidden: 8 * n_embd}}}`` is GPT-2's block with
    a wider MLP: one more class, mixed with Block by a pattern, inherited values located in
    the base, and the KV cache still threads through both."""
    spec = COMPOSE / "wide_lm.yaml"
    module = archcc.build(spec, out_dir=tmp_path)
    model = module.Model().eval()
    assert [type(b).__name__ for b in model.h] == ["Block", "Block", "Wide"] * 2
    assert model.h[0].mlp.up.weight.shape == (4 * 32, 32)
    assert model.h[2].mlp.up.weight.shape == (8 * 32, 32)
    assert type(model.h[2].attn) is type(model.h[0].attn)  # one attention class, reused
    ids = torch.randint(0, 101, (2, 5), generator=torch.Generator().manual_seed(0))
    assert torch.equal(module.generate(model, ids, 6, eos_token_id=None),
                       module.generate(model, ids, 6, eos_token_id=None, use_cache=False))

    resolved = resolve_spec(spec)
    wide = resolved.split("  Wide:")[1].split("model:")[0]
    assert "hidden: 8 * n_embd                      # tests/specs/compose/wide_lm.yaml:10" in wide
    assert "act: gelu_tanh                          # specs/gpt2.yaml:24" in wide
    assert "forward: |                                  # specs/gpt2.yaml:25" in wide
    assert "extends" not in wide


def test_a_set_on_the_base_block_reaches_what_derives_from_it():
    compiled = compile_spec(COMPOSE / "wide_lm.yaml", sets=["blocks.Block.layers.attn.heads=4"])
    assert compiled.source.count("CausalSelfAttention(config.n_embd, 4") == 2
    wider = compile_spec(COMPOSE / "wide_lm.yaml", sets=["blocks.Wide.layers.mlp.hidden=64"])
    assert "MLP(config.n_embd, 64" in wider.source
    with pytest.raises(ArchccError) as info:  # Wide does not write attn: its base does
        load_spec(COMPOSE / "wide_lm.yaml", ["blocks.Wide.layers.attn.heads=4"])
    assert "set blocks.Block.layers.attn.heads (it reaches both)" in str(info.value)


MLP_PAIR = """\
archcc: 1
name: m
params: {d: 16}
inputs:
  x: {shape: [B, T, d]}
blocks:
  Mlp:
    layers:
      ln: {op: layernorm, dim: d}
      ff: {op: ffn, dim: d, hidden: 2 * d}
    forward: |
      return x + ff(ln(x))
  Wide:
    extends: Mlp
    layers:
      ff: {hidden: 8 * d}
model:
  layers:
    h: {pattern: MW, blocks: {M: Mlp, W: Wide}}
  forward: |
    return h(x)
"""


def test_arch_blocks_extend_like_yaml_blocks(tmp_path):
    yaml_spec = _write(tmp_path, "m.yaml", MLP_PAIR)
    arch_spec = _write(tmp_path, "m.arch", """\
archcc 1
spec m
params {
  d = 16
}
input x: float32[B, T, d]

block Mlp(x) {
  ln = layernorm(dim = d)
  ff = ffn(dim = d, hidden = 2 * d)
  forward {
    return x + ff(ln(x))
  }
}

block Wide() extends Mlp {
  ff = ffn(hidden = 8 * d)
}

model {
  h = repeat("MW", M = Mlp, W = Wide)
  forward {
    return h(x)
  }
}
""")
    from_yaml, from_arch = load_spec(yaml_spec), load_spec(arch_spec)
    assert from_arch.spec == from_yaml.spec
    assert from_arch.derived_blocks == ("Wide",) and from_arch.composed
    assert from_arch.spec.blocks["Wide"].layers["ff"].hidden == "8 * d"
    assert from_arch.where.key(("blocks", "Wide", "layers", "ff", "hidden")).line == 17
    assert from_arch.where.key(("blocks", "Wide", "layers", "ln")).line == 9  # Mlp's


@pytest.mark.parametrize(("wide", "message"), [
    ("{extends: Blok}", "unknown block 'Blok'"),
    ("{extends: Wide}", "block cycle: Wide -> Wide"),
    ("{extends: [Block]}", "extends names a block"),
    ("{extends: Tall}\n  Tall: {extends: Wide}", "block cycle: Wide -> Tall -> Wide"),
    ("{extends: Block, layers: {mlp: {hiden: 8}}}", "unknown key 'hiden'"),
])
def test_bad_block_bases_are_located_errors(project, wide, message):
    child = _write(project, "specs/child.yaml",
                   f"extends: gpt2.yaml\nname: child\nblocks:\n  Wide: {wide}\n")
    rendered = _error(child)
    assert message in rendered, rendered
    assert rendered.startswith(str(Path("specs") / "child.yaml")) or \
        "specs/child.yaml" in rendered.split(" error")[0], rendered
    if message.startswith("unknown block"):
        assert "did you mean 'Block'?" in rendered
    if message.startswith("unknown key"):
        assert "did you mean 'hidden'?" in rendered


def test_fmt_refuses_a_derived_block(tmp_path):
    """fmt rewrites one file from its validated spec: that would inline Wide's base."""
    spec = _write(tmp_path, "m.yaml", MLP_PAIR)
    refused = subprocess.run([sys.executable, "-m", "archcc", "fmt", str(spec)], cwd=ROOT,
                             capture_output=True, text=True)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "derives block Wide with extends" in refused.stderr
    assert spec.read_text() == MLP_PAIR


def test_a_childs_rename_rules_come_before_its_bases(tmp_path):
    """Rename rules apply first-match: under extends the child's own rules are tried first,
    so a base's catch-all cannot shadow them."""
    (tmp_path / "pyproject.toml").write_text("")
    base = (ROOT / "specs" / "gpt2.yaml").read_text()
    named = "      transformer.h: h\n      transformer.wte: wte\n      transformer.wpe: wpe\n" \
            "      transformer.ln_f: ln_f\n"
    assert named in base
    (tmp_path / "base.yaml").write_text(base.replace(named, '      transformer: ""\n'))
    child = tmp_path / "child.yaml"
    child.write_text("extends: base.yaml\nname: child\ncheckpoint:\n  hf:\n    rename:\n"
                     "      transformer.wte: wte\n")
    rules = list(load_spec(child).spec.checkpoint["hf"].rename)
    assert rules[0] == "transformer.wte" and rules[-1] == "transformer"
