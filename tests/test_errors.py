"""The error catalogue: bad specs give one exact, located message each, exit 1, no traceback,
and nothing written. Expected texts live in tests/golden/errors/ (re-record: make golden)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from archcc.cli import main
from tests.golden_util import check_golden

GPT2 = (Path(__file__).parents[1] / "specs" / "gpt2.yaml").read_text()

# name -> (text to replace in specs/gpt2.yaml, replacement)
CASES = {
    "yaml_syntax": ("n_head: 12", "n_head: [12"),
    "duplicate_key": ("  n_layer: 12", "  n_layer: 12\n  n_layer: 24"),
    "unknown_op": ("op: attention", "op: atention"),
    "unknown_key": ("causal: true", "causal: true, casual: true"),
    "missing_field": ("{op: ffn, dim: n_embd, hidden: 4 * n_embd,", "{op: ffn, dim: n_embd,"),
    "wrong_type": ("causal: true", "causal: maybe"),
    "no_op": ("ln_f: {op: layernorm,", "ln_f: {"),
    "undefined_layer": ("x = x + mlp(ln_2(x))", "x = x + mlp(ln2(x))"),
    "undefined_name": ("x = x + mlp(ln_2(x))", "x = y + mlp(ln_2(x))"),
    "unknown_param": ("hidden: 4 * n_embd", "hidden: 4 * n_emb"),
    "param_cycle": ("  n_head: 12", "  n_head: n_head2 // 2\n  n_head2: 2 * n_head"),
    "division_by_zero": ("hidden: 4 * n_embd", "hidden: n_embd // (n_head - 12)"),
    "non_integer_size": ("hidden: 4 * n_embd", "hidden: n_embd / 5"),
    "heads_divide_dim": ("heads: n_head", "heads: 10"),
    "residual_shape_mismatch": ("ln_2: {op: layernorm, dim: n_embd",
                                "ln_2: {op: layernorm, dim: 2 * n_embd"),
    "bad_repeat_count": ("times: n_layer", "times: 0"),
    "absurd_size": ("n_embd: 768", "n_embd: 10 ** 12"),
    "unknown_block": ("repeat: Block", "repeat: Blok"),
    "tie_unknown": ("tie: wte", "tie: wpe2"),
    "tie_shape": ("tie: wte", "tie: wpe"),
    "unclosed_paren": ("x = x + attn(ln_1(x))", "x = x + attn(ln_1(x)"),
    "dsl_bad_char": ("x = x + attn(ln_1(x))", "x = x + attn(ln_1(x)) $"),
    "layer_not_called": ("return lm_head(ln_f(x))", "return lm_head + x"),
    "reserved_name": ("ln_f: {op: layernorm", "print: {op: layernorm"),
    "confusable_name": ("ln_f: {op: layernorm", "ln_\u0192: {op: layernorm"),
    "bad_checkpoint_rule": ("transformer: \"\"", "transformer: \"x; import os\""),
}


def _run(tmp_path: Path, name: str, capsys, monkeypatch) -> tuple[int, str, Path]:
    """In-process for speed; tests/test_cli.py covers the real subprocess path."""
    old, new = CASES[name]
    assert old in GPT2, f"case {name}: {old!r} not in gpt2.yaml"
    spec = tmp_path / "spec.yaml"
    spec.write_text(GPT2.replace(old, new, 1), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code = main(["build", "spec.yaml", "-o", "out"])
    return code, capsys.readouterr().err, tmp_path / "out"


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_spec_message(tmp_path, name, capsys, monkeypatch):
    code, stderr, out = _run(tmp_path, name, capsys, monkeypatch)
    assert code == 1, stderr
    assert "Traceback" not in stderr
    assert stderr.startswith("spec.yaml:"), stderr
    assert not out.exists() or not any(out.iterdir()), "nothing may be written on failure"
    check_golden(f"errors/{name}.txt", stderr)


def test_several_independent_errors_reported_together(tmp_path):
    spec = tmp_path / "spec.yaml"
    text = GPT2.replace("heads: n_head", "heads: 10").replace("tie: wte", "tie: wpe2")
    spec.write_text(text.replace("x = x + mlp(ln_2(x))", "x = x + mlp(ln2(x))"))
    proc = subprocess.run([sys.executable, "-m", "archcc", "check", str(spec)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert proc.stderr.count("error:") == 3, proc.stderr
