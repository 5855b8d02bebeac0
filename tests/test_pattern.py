"""`repeat` by pattern: layer i is the block letter i names, still one nn.ModuleList loop."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from archcc.api import compile_spec
from archcc.diagnostics import ArchccError
from archcc.inspect.budget import kv_cache_layers
from archcc.ir.build import build as build_ir
from archcc.ir.infer import infer_shapes
from archcc.ir.kv_cache import causal_kv_shapes
from archcc.parser import load_spec
from archcc.parser.writer import to_arch
from archcc.runtime.loader import import_file

SPEC = Path(__file__).parent / "specs" / "compose" / "pattern_lm.yaml"
H_LINE = "    h: {pattern: AAFAAF, blocks: {A: Attn, F: FFNBlock}}\n"


def _module(path: Path, tmp_path: Path, name: str = "pattern_lm"):
    out = tmp_path / f"{name}.py"
    out.write_text(compile_spec(path).source, encoding="utf-8")
    return import_file(out, f"test_pattern_{tmp_path.name}.{name}")


def _variant(tmp_path: Path, h_line: str, extra: str = "") -> Path:
    text = SPEC.read_text(encoding="utf-8")
    assert H_LINE in text
    path = tmp_path / "variant.yaml"
    path.write_text(text.replace(H_LINE, h_line) + extra, encoding="utf-8")
    return path


def _error(path: Path) -> tuple[int, str, str, str | None]:
    with pytest.raises(ArchccError) as info:
        compile_spec(path)
    [diag] = info.value.diagnostics
    return diag.loc.line, diag.path, diag.message, diag.hint


def test_layer_i_is_the_block_letter_i_names(tmp_path):
    mod = _module(SPEC, tmp_path)
    model = mod.Model(mod.Config()).eval()
    assert [type(block).__name__ for block in model.h] == ["Attn", "Attn", "FFNBlock",
                                                           "Attn", "Attn", "FFNBlock"]
    keys = model.state_dict().keys()
    assert "h.0.attn.qkv.weight" in keys and "h.2.mlp.up.weight" in keys
    assert "h.2.attn.qkv.weight" not in keys and "h.3.attn.proj.bias" in keys
    out = model(*mod.example_inputs(2))
    assert out.shape == (2, 8, 97) and torch.isfinite(out).all()


def test_the_generated_code_is_a_loop_not_copies():
    source = compile_spec(SPEC).source
    assert ('self.h = nn.ModuleList({"A": Attn, "F": FFNBlock}[c](config) '
            'for c in "AAFAAF")') in source
    assert "for block in self.h:" in source
    assert source.count("class Attn(") == 1 and source.count("class FFNBlock(") == 1


def test_summary_counts_each_block_of_the_pattern():
    from archcc.inspect.summary import summarize

    (h,) = [row for row in summarize(SPEC).rows if row.path == "h"]
    assert h.kind == "Attn x4 + FFNBlock x2"


def test_times_may_repeat_the_count(tmp_path):
    path = _variant(tmp_path, "    h: {pattern: AAFAAF, blocks: {A: Attn, F: FFNBlock}, "
                              "times: 6}\n")
    assert "for c in \"AAFAAF\"" in compile_spec(path).source


def test_the_kv_budget_counts_only_attention_layers():
    loaded = load_spec(SPEC)
    program = build_ir(loaded)
    infer_shapes(program)
    shapes = causal_kv_shapes(program)
    module = import_file(_write(compile_spec(SPEC).source), "test_pattern_kv.pattern_lm")
    layers = kv_cache_layers(module, shapes, 32)
    assert [c.path for c in layers] == ["h.0.attn", "h.1.attn", "h.3.attn", "h.4.attn"]
    assert sum(c.bytes for c in layers) == 4 * 2 * 4 * 8 * 32 * 4


def _write(source: str) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="archcc-pattern-")) / "pattern_lm.py"
    path.write_text(source, encoding="utf-8")
    return path


def test_generation_caches_through_mixed_layers(tmp_path):
    """An FFN-only layer first: the loop still hands every layer the cache."""
    path = _variant(tmp_path, "    h: {pattern: FAAFAA, blocks: {A: Attn, F: FFNBlock}}\n",
                    "generate: {kind: causal_lm}\n")
    mod = _module(path, tmp_path)
    torch.manual_seed(0)
    model = mod.Model(mod.Config()).eval()
    ids = mod.example_inputs(1)[0]
    cached = mod.generate(model, ids, max_new_tokens=4)
    plain = ids
    with torch.no_grad():
        for _ in range(4):  # greedy, the whole sequence every step
            plain = torch.cat([plain, model(plain)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(cached, plain)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("h", "where", "message", "hint"), [
    ("{pattern: AAXAAF, blocks: {A: Attn, F: FFNBlock}}", "model.layers.h.pattern",
     "letter 'X' (layer 2) is not in blocks", "letters: A, F; add X: <block> to `blocks`"),
    ("{pattern: AAAA, blocks: {A: Attn, F: FFNBlock}}", "model.layers.h.blocks.F",
     "letter 'F' is not used by the pattern 'AAAA'", "drop it or use it in `pattern`"),
    ("{pattern: AAF, blocks: {A: Atn, F: FFNBlock}}", "model.layers.h.blocks.A",
     "unknown block 'Atn'", "did you mean 'Attn'?"),
    ("{pattern: AAF, blocks: {A: Attn, F: FFNBlock}, times: 4}", "model.layers.h.times",
     "times (4) disagrees with the pattern's 3 layers", "the pattern's length is the layer"),
    ("{pattern: AA-F, blocks: {A: Attn, F: FFNBlock}}", "model.layers.h.pattern",
     "pattern 'AA-F' has '-' at position 2", "a pattern is one letter per layer"),
    ("{pattern: AF, blocks: {AB: Attn, F: FFNBlock}}", "model.layers.h.blocks.AB",
     "'AB' is not a pattern letter", "`blocks` maps single letters"),
    ("{pattern: AF}", "model.layers.h", "missing required field 'blocks'", "a pattern needs"),
    ("{repeat: Attn, pattern: AF, blocks: {A: Attn, F: FFNBlock}}", "model.layers.h.repeat",
     "a pattern names its blocks by letter", "drop `repeat`"),
    ("{repeat: Attn, times: 2, blocks: {A: Attn}}", "model.layers.h.repeat",
     "`blocks` goes with `pattern`", "add a pattern"),
])
def test_bad_patterns_are_located(tmp_path, h, where, message, hint):
    line, path, got, got_hint = _error(_variant(tmp_path, f"    h: {h}\n"))
    assert (line, path) == (29, where)  # the h: line
    assert got.startswith(message), got
    assert hint in (got_hint or "")


def test_a_pattern_round_trips_through_the_arch_language(tmp_path):
    spec = load_spec(SPEC).spec
    text = to_arch(spec)
    assert '  h = repeat("AAFAAF", A = Attn, F = FFNBlock)\n' in text
    arch = tmp_path / "pattern_lm.arch"
    arch.write_text(text, encoding="utf-8")
    assert load_spec(arch).spec == spec
    arch.write_text(text.replace('repeat("AAFAAF", A = Attn', 'repeat("AAFAAZ", A = Attn'))
    line, path, message, _ = _error(arch)
    assert text.splitlines()[line - 1].startswith("  h = repeat(") and \
        message == "letter 'Z' (layer 5) is not in blocks"
