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
         "swin": ROOT / "specs" / "swin.yaml",
         "arch": ROOT / "examples" / "gpt2.arch",
         "seq2seq": ROOT / "specs" / "seq2seq_luong.yaml",
         "llama": ROOT / "specs" / "llama.yaml", "mistral": ROOT / "specs" / "mistral.yaml",
         "convnext": ROOT / "specs" / "convnext.yaml", "resnet": ROOT / "specs" / "resnet.yaml"}

FFN = "{op: ffn, dim: n_embd, hidden: 4 * n_embd, act: gelu_tanh, dropout: dropout}"
MOE = "{op: moe, dim: n_embd, hidden: 4 * n_embd, "

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
    "layer_call_arity": ("return lm_head(ln_f(x))", "return lm_head(ln_f(x, x))"),
    "layer_call_keyword": ("return lm_head(ln_f(x))", "return lm_head(ln_f(x, bogus=1))"),
    "function_of_numbers": ("return lm_head(ln_f(x))", "return lm_head(ln_f(x)) * sigmoid(2)"),
    "float_function_of_ints": ("x = drop(wte(input_ids)",
                               "x = drop(wte(input_ids) + gelu(input_ids)"),
    "negative_dropout": ("dropout: 0.1", "dropout: -0.5"),
    "list_epsilon": ("layer_norm_epsilon: 1.0e-5", "layer_norm_epsilon: [1.0e-5, 1.0e-6]"),
    "layout_target_missing": ("c_attn: h.{i}.attn.qkv", "c_attn: h.{i}.atn.qkv"),
    "layout_rule_shadowed": ("    rename:\n      transformer.h.{i}.attn.c_attn",
                             "    rename:\n      transformer.h: h\n      "
                             "transformer.h.{i}.attn.c_attn"),
    "layout_transpose_missing": ("transpose: [h.*.attn.qkv.weight",
                                 "transpose: [h.*.attn.qkvv.weight"),
    "reference_layout_unknown": ("layout: hf}", "layout: hff}"),
    # proved against transformers.GPT2LMHeadModel's own keys (skipped without transformers)
    "reference_key_not_produced": ("      transformer.h.{i}.mlp.c_proj: h.{i}.mlp.down\n", ""),
    "reference_shape_mismatch": ("transpose: [h.*.attn.qkv.weight, ", "transpose: ["),
    "generate_unknown_input": ("kind: causal_lm,", "kind: causal_lm, input: ids,"),
    "generate_seq2seq_one_input": ("kind: causal_lm", "kind: seq2seq"),
    # hostile text (tests/test_fuzz.py finds these by mutation)
    "yaml_tag": ("n_head: 12", 'n_head: !!python/object/apply:os.system ["true"]'),
    "yaml_bad_typed_value": ("n_head: 12", "n_head: !!int twelve"),
    "yaml_control_character": ("n_head: 12", "n_head: 1\x0c2"),
    "yaml_line_separator_in_comment": ("# names follow", "# names\u2028follow"),
    "yaml_number_too_long": ("n_embd: 768", "n_embd: " + "7" * 50),
    "yaml_nests_too_deeply": ("dims: {T: 16}", "dims: {T: " + "[" * 40 + "]" * 40 + "}"),
    # mixture of experts (the GPT-2 MLP replaced by op: moe)
    "moe_top_k_exceeds_experts": (FFN, MOE + "experts: 4, top_k: 8}"),
    "moe_zero_experts": (FFN, MOE + "experts: 0, top_k: 2}"),
    "moe_topk_softmax_unnormalised": (FFN, MOE + "experts: 4, top_k: 2, "
                                      "routing: topk_softmax, normalize: false}"),
    "moe_shared_gate_without_shared_expert": (FFN, MOE + "experts: 4, top_k: 2, "
                                              "shared_gate: false}"),
    "moe_unknown_routing": (FFN, MOE + "experts: 4, top_k: 2, routing: top1}"),
    "moe_width_mismatch": (FFN, MOE.replace("dim: n_embd", "dim: 2 * n_embd")
                           + "experts: 4, top_k: 2}"),
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
    # a block argument's default is checked though every use passes its own value
    "block_default_out_of_range": ("convnext", "args: {dim: null, drop_prob: 0.0}",
                                   "args: {dim: null, drop_prob: 5.0}"),
    # ... and so are the blocks built inside it there (ResNet-50 never builds a basic layer)
    "block_default_nested": ("resnet", "args: {cin: 64, cout: 64, stride: 1}",
                             "args: {cin: 64, cout: -1, stride: 1}"),
    "block_call_missing_argument": ("resnet", "args: {cin: cin, cout: cout, stride: stride},\n"
                                    "                 when: cin != cout or stride != 1}\n"
                                    "      convs:\n", "args: {cout: cout, stride: stride},\n"
                                    "                 when: cin != cout or stride != 1}\n"
                                    "      convs:\n"),
    "padding_idx_out_of_range": ("bert", "hidden_size, padding_idx: 0}",
                                 "hidden_size, padding_idx: 99999}"),
    "init_negative_std": ("mistral", "initializer_range: 0.02", "initializer_range: -0.5"),
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
    # structure: stage loops over list params, blocks with arguments, skip stacks
    "list_length_mismatch": ("swin", "num_heads: [3, 6, 12, 24]", "num_heads: [3, 6, 12]"),
    "over_not_a_list": ("swin", "over: [depths, num_heads]", "over: [depths, embed_dim]"),
    "recursive_block_arguments": (
        "swin", "      downsample: {op: patch_merge",
        "      inner: {block: SwinTransformerStage, when: dim > 96, args: {dim: dim // 2,\n"
        "              depth: depth, num_heads: num_heads, grid: 2 * grid}}\n"
        "      downsample: {op: patch_merge"),
    "unknown_block_argument": ("swin", "depth: depths[i]", "depht: depths[i]"),
    "missing_block_argument": ("swin", "        grid: img_size // patch_size // 2 ** i\n", ""),
    "list_index_out_of_range": ("swin", "num_heads: num_heads[i]", "num_heads: num_heads[i + 1]"),
    "instance_check_names_the_stage": ("swin", "num_heads: [3, 6, 12, 24]",
                                       "num_heads: [3, 6, 12, 25]"),
    "argument_named_like_a_layer": ("swin", "merge: false}", "downsample: false}"),
    "block_used_as_op": ("swin", "head: {block: ClassifierHead}", "head: {op: ClassifierHead}"),
    "when_needs_one_input": ("unet", "      resnet: {op: resblock, in: in_channels,",
                             "      resnet: {op: resblock, when: attention, in: in_channels,"),
    "pop_from_empty_stack": ("unet", "    skips = stack()\n",
                             "    skips = stack()\n    first = pop(skips)\n"),
    "stack_used_as_tensor": ("unet", "cat(x, pop(skips), dim=1)", "cat(x, skips, dim=1)"),
    "arch_control_character_in_string": ("arch", '"GPT-2 language', '"GPT-2\x0blanguage'),
    "arch_bad_escape": ("arch", '"GPT-2 language', '"GPT-2 \\q language'),
    "arch_odd_character": ("arch", "x = x + attn(ln_1(x))", "x = x + attn(\x0cln_1(x))"),
    "arch_error_after_line_separator": ("arch", "  forward {\n    x = x + attn(ln_1(x))",
                                        "  forward {\n    # note\u2028more\n"
                                        "    x = x + atn(ln_1(x))"),
    "arch_number_too_long": ("arch", "n_layer = 12", "n_layer = " + "1" * 50),
    "arch_value_nests_too_deeply": ("arch", "hidden = 4 * n_embd",
                                    "hidden = " + "[" * 120 + "1" + "]" * 120),
    # image and two-tower models
    "conv_groups_divide": ("unet", "kernel: 3, padding: 1}", "kernel: 3, padding: 1, groups: 2}"),
    "conv_kernel_too_large": ("unet", "out_channels, kernel: 3", "out_channels, kernel: 40"),
    "conv_channels_mismatch": ("unet", "x = conv_in(sample)", "x = conv_in(conv_in(sample))"),
    # a skip pushed after the downsampling: the up path meets it at the wrong resolution
    "skip_port_resolution": ("unet", "push(skips, x)\n      x = layers(x, temb, skips)\n"
                             "      return downsample(x)", "x = layers(x, temb, skips)\n"
                             "      x = downsample(x)\n      push(skips, x)\n      return x"),
    "resblock_needs_temb": ("unet", "x = attn(resnet(x, temb))", "x = attn(resnet(x))"),
    "resblock_channels": ("unet", "x = attn(resnet(x, temb))",
                          "x = attn(resnet(cat(x, x, dim=1), temb))"),
    "image_attention_heads": ("unet", 'heads: "out_channels // attention_head_dim if '
                              'attention_head_dim else 1"', "heads: 3"),
    "timesteps_odd_dim": ("unet", '{op: timesteps, dim: "block_out_channels[0]"',
                          '{op: timesteps, dim: "block_out_channels[0] + 1"'),
    "downsample_padding": ("unet", "channels: out_channels, padding: 0,",
                           "channels: out_channels, padding: 2,"),
    "token_at_needs_indices": ("clip", "token_at(t, eos)", "token_at(t, input_ids)"),
    # decoder LLMs: grouped-query heads, windows, rotary positions
    "kv_heads_divide_heads": ("llama", "num_key_value_heads: 8", "num_key_value_heads: 5"),
    "sliding_window_not_positive": ("mistral", "sliding_window: 4096", "sliding_window: 0"),
    "sliding_window_needs_causal": ("mistral", "causal: true", "causal: false"),
    "unknown_rope_scaling": ("llama", "scaling: llama3", "scaling: ntk"),
    "rope_scaling_needs_its_fields": ("llama", ",\n               original_max_positions: "
                                      "rope_original_max_position_embeddings}", "}"),
    "rotary_dim_odd": ("mistral", "rope: {op: rotary, theta", "rope: {op: rotary, dim: 33, theta"),
    "rotary_dim_exceeds_head": ("mistral", "rope: {op: rotary, theta",
                                "rope: {op: rotary, dim: 256, theta"),
    "softcap_not_positive": ("mistral", "sliding_window: sliding_window",
                             "sliding_window: sliding_window\n        softcap: -30.0"),
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
    if name.startswith("reference_") and name != "reference_layout_unknown":
        pytest.importorskip("transformers")
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


# name -> (bytes to replace in specs/gpt2.yaml, replacement): text no editor would save
BYTE_CASES = {
    "invalid_utf8": (b"n_head: 12", b"n_head: 1\xff2"),
    "invalid_utf8_after_non_ascii": (b"name: gpt2", b"name: \xc3\xa9\xed\xa0\x80"),
}


@pytest.mark.parametrize("name", sorted(BYTE_CASES))
def test_bad_bytes_message(tmp_path, name, capsys, monkeypatch):
    old, new = BYTE_CASES[name]
    raw = BASES["gpt2"].read_bytes()
    assert old in raw
    (tmp_path / "spec.yaml").write_bytes(raw.replace(old, new, 1))
    monkeypatch.chdir(tmp_path)
    assert main(["check", "spec.yaml"]) == 1
    stderr = capsys.readouterr().err
    assert stderr.startswith("spec.yaml:") and "Traceback" not in stderr
    check_golden(f"errors/{name}.txt", stderr)


# name -> config.json text for `archcc import hf`: each refused at its key
IMPORT_CASES = {
    "import_remote_code": '{\n  "model_type": "gpt2",\n  "auto_map": {"AutoModel": '
                          '"modeling_x.X"}\n}\n',
    "import_trust_remote_code": '{\n  "model_type": "clip",\n  "text_config": {\n'
                                '    "trust_remote_code": true\n  }\n}\n',
    "import_duplicate_key": '{\n  "model_type": "gpt2",\n  "n_layer": 2,\n  "n_layer": 24\n}\n',
    "import_nan": '{\n  "model_type": "gpt2",\n  "resid_pdrop": NaN\n}\n',
    "import_nests_too_deeply": '{\n  "model_type": "gpt2",\n  "n_layer": ' + "[" * 40
                               + "]" * 40 + "\n}\n",
    "import_nested_config_not_object": '{\n  "model_type": "clip",\n  "text_config": 5\n}\n',
    "import_token_list": '{\n  "model_type": "gpt2",\n  "eos_token_id": [50256, 0]\n}\n',
    "import_probability": '{\n  "model_type": "gpt2",\n  "resid_pdrop": 1.5,\n'
                          '  "embd_pdrop": 1.5,\n  "attn_pdrop": 1.5\n}\n',
    "import_does_not_build": '{\n  "model_type": "gpt2",\n  "n_embd": 64,\n  "n_head": 5\n}\n',
    "import_no_model_type": '{\n  "hidden_size": 8\n}\n',
}


@pytest.mark.parametrize("name", sorted(IMPORT_CASES))
def test_bad_config_message(tmp_path, name, capsys, monkeypatch):
    (tmp_path / "config.json").write_text(IMPORT_CASES[name], encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["import", "hf", "config.json", "-o", "out.yaml"]) == 1
    stderr = capsys.readouterr().err
    assert stderr.startswith("config.json:") and "Traceback" not in stderr
    assert not (tmp_path / "out.yaml").exists()
    check_golden(f"errors/{name}.txt", stderr)
