"""The error catalogue: bad specs give one exact, located message each, exit 1, no traceback,
and nothing written. Expected texts live in tests/golden/errors/ (re-record: make golden)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from archcc.cli import main
from tests.golden_util import check_golden

ROOT = Path(__file__).parents[1]
GPT2 = (ROOT / "specs" / "gpt2.yaml").read_text()
BASES = {"gpt2": ROOT / "specs" / "gpt2.yaml", "bert": ROOT / "specs" / "bert.yaml",
         "transformer": ROOT / "specs" / "transformer.yaml",
         "clip": ROOT / "specs" / "clip.yaml", "unet": ROOT / "specs" / "ddpm_unet.yaml",
         "arch": ROOT / "examples" / "gpt2.arch",
         "seq2seq": ROOT / "specs" / "seq2seq_luong.yaml"}

# name -> (text to replace in specs/gpt2.yaml, replacement); see OTHER_CASES for other bases
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
    "unknown_block_base": ("blocks:\n  Block:", "blocks:\n  Wide: {extends: Blok}\n  Block:"),
    "tie_unknown": ("tie: wte", "tie: wpe2"),
    "tie_shape": ("tie: wte", "tie: wpe"),
    "unclosed_paren": ("x = x + attn(ln_1(x))", "x = x + attn(ln_1(x)"),
    "dsl_bad_char": ("x = x + attn(ln_1(x))", "x = x + attn(ln_1(x)) $"),
    "layer_not_called": ("return lm_head(ln_f(x))", "return lm_head + x"),
    "reserved_name": ("ln_f: {op: layernorm", "print: {op: layernorm"),
    "confusable_name": ("ln_f: {op: layernorm", "ln_\u0192: {op: layernorm"),
    "bad_checkpoint_rule": ("transformer.wte: wte", "transformer.wte: \"x; import os\""),
    "init_unknown_scheme": ("linear: normal(initializer_range)",
                            "linear: gaussian(initializer_range)"),
    "init_bad_argument": ("linear: normal(initializer_range)",
                          "linear: normal(initializer_range, sdt = 1)"),
    "init_unknown_param": ("embedding: normal(initializer_range)",
                           "embedding: normal(init_range)"),
    "init_unknown_path": ("h.*.mlp.down.weight: normal", "h.*.mlp.dwn.weight: normal"),
    "use_before_assignment": ("x = h(x)", "y = h(z)\n    z = x"),
    "statement_after_return": ("return lm_head(ln_f(x))", "return lm_head(ln_f(x))\n    x = h(x)"),
    "assign_to_layer": ("x = h(x)", "h = h(x)"),
    "bad_dtype": ("dtype: int64", "dtype: int32"),
    "bool_param_as_size": ("n_layer: 12", "n_layer: true"),
    "float_repeat_count": ("times: n_layer", "times: n_layer / 5"),
    "embedding_of_floats": ("x = drop(wte(input_ids)", "x = drop(wte(wpe(positions(input_ids)))"),
    "unknown_function": ("return lm_head(ln_f(x))", "return lm_head(layer_norm(x))"),
    "generate_unknown_input": ("kind: causal_lm,", "kind: causal_lm, input: ids,"),
    "generate_seq2seq_one_input": ("kind: causal_lm", "kind: seq2seq"),
}

# name -> (base, old, new) for mistakes another example shows best
OTHER_CASES = {
    "decoder_dot_needs_equal_widths": ("seq2seq", "score: general", "score: dot"),
    "decoder_input_feed_needs_current": ("seq2seq", "attend: current", "attend: previous"),
    "decoder_state_shape": ("seq2seq", "decoder(tgt, memory, s0,", "decoder(tgt, memory, h,"),
    "decoder_state_arity": ("seq2seq", "decoder(tgt, memory, s0,", "decoder(tgt, memory,"),
    "cross_attention_needs_memory": ("transformer", "x = cross_attn(x, memory)",
                                     "x = cross_attn(x)"),
    "mask_shape_mismatch": ("bert", "x = encoder(x, mask=attention_mask)",
                            "x = encoder(x, mask=token_type_ids[:, 1:])"),
    "unknown_call_keyword": ("bert", "x = attention(x, mask=mask)", "x = attention(x, msk=mask)"),
    "repeat_changes_shape": ("bert", "x = mlp(x)", "x = mlp(x)\n      x = x[:, 1:]"),
    "block_cycle": ("transformer", "  DecoderLayer:\n    inputs: [x, memory]\n    layers:\n",
                    "  DecoderLayer:\n    inputs: [x, memory]\n    layers:\n      loop: "
                    "{repeat: DecoderLayer, times: 2}\n"),
    "repeat_wrong_arity": ("transformer", "x = decoder_norm(decoder(x, memory))",
                           "x = decoder_norm(decoder(x))"),
    "arch_missing_brace": ("arch", "  forward {\n    x = x + attn", "  forward\n    x = x + attn"),
    "arch_missing_comma": ("arch", "act = gelu_tanh,", "act = gelu_tanh"),
    "arch_positional_layer_arg": ("arch", "ln_f = layernorm(dim = n_embd",
                                  "ln_f = layernorm(n_embd"),
    "arch_duplicate_layer": ("arch", "  ln_2 = layernorm", "  ln_1 = layernorm"),
    "arch_repeat_without_block": ("arch", "repeat(Block, times = n_layer)",
                                  "repeat(times = n_layer)"),
    "arch_unknown_section": ("arch", "dims {", "dimensions {"),
    "arch_unclosed_string": ("arch", '"GPT-2 language', '"GPT-2 language\n'),
    "arch_unknown_op": ("arch", "attn = attention(", "attn = atention("),
    "arch_expression_error": ("arch", "hidden = 4 * n_embd", "hidden = 4 * * n_embd"),
    "arch_duplicate_param": ("arch", "  n_layer = 12", "  n_layer = 12\n  n_layer = 24"),
    "arch_shape_mismatch": ("arch", "ln_2 = layernorm(dim = n_embd", "ln_2 = layernorm(dim = 3"),
    # image and two-tower models
    "conv_groups_divide": ("unet", "kernel: 3, padding: 1}", "kernel: 3, padding: 1, groups: 2}"),
    "conv_kernel_too_large": ("unet", "out_channels, kernel: 3", "out_channels, kernel: 40"),
    "conv_channels_mismatch": ("unet", "h0 = conv_in(sample)", "h0 = conv_in(conv_in(sample))"),
    "skip_port_resolution": ("unet", "cat(x, h9, dim=1)", "cat(x, h8, dim=1)"),
    "resblock_needs_temb": ("unet", "h1 = down0_res0(h0, temb)", "h1 = down0_res0(h0)"),
    "resblock_channels": ("unet", "h1 = down0_res0(h0, temb)", "h1 = down0_res0(sample, temb)"),
    "image_attention_heads": ("unet", "heads: ch1 // attention_head_dim", "heads: 3"),
    "timesteps_odd_dim": ("unet", "{op: timesteps, dim: ch0", "{op: timesteps, dim: ch0 + 1"),
    "downsample_padding": ("unet", "channels: ch0, padding: 0}", "channels: ch0, padding: 2}"),
    "token_at_needs_indices": ("clip", "token_at(t, argmax(input_ids))", "token_at(t, input_ids)"),
}


def _run(tmp_path: Path, name: str, capsys, monkeypatch) -> tuple[int, str, Path]:
    """In-process for speed; tests/test_cli.py covers the real subprocess path."""
    base, old, new = OTHER_CASES[name] if name in OTHER_CASES else ("gpt2", *CASES[name])
    text = BASES[base].read_text()
    assert old in text, f"case {name}: {old!r} not in {BASES[base].name}"
    spec = tmp_path / ("spec" + BASES[base].suffix)
    spec.write_text(text.replace(old, new, 1), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code = main(["build", spec.name, "-o", "out"])
    return code, capsys.readouterr().err, tmp_path / "out"


def test_catalogue_size():
    assert len(CASES) + len(OTHER_CASES) >= 40


@pytest.mark.parametrize("name", sorted(CASES) + sorted(OTHER_CASES))
def test_bad_spec_message(tmp_path, name, capsys, monkeypatch):
    code, stderr, out = _run(tmp_path, name, capsys, monkeypatch)
    assert code == 1, stderr
    assert "Traceback" not in stderr
    assert stderr.startswith(("spec.yaml:", "spec.arch:")), stderr
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
