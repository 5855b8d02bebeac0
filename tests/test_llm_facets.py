"""Decoder-LLM facets beyond parity: rotary under an offset (a hypothesis property), the
standalone `op: rotary`, what the optimizer fuses and what it explains, the KV cache's size
in summary and budget, and the uneven and per-head checkpoint splits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from archcc.api import compile_spec
from archcc.cli import main
from archcc.diagnostics import ArchccError
from archcc.inspect.budget import kv_cache_layers
from archcc.parser import load_spec
from archcc.parser.writer import to_arch

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- rotary


@pytest.fixture(scope="module")
def llama(compiled):
    return compiled("llama")


def _rotaries(module, dim: int, interleaved: bool):
    return [module.Rotary(dim, 10000.0, interleaved),
            module.Llama3Rotary(dim, 500000.0, 8.0, 1.0, 4.0, 16, interleaved)]


@settings(max_examples=40, deadline=None)
@given(length=st.integers(1, 40), data=st.data(), half_dim=st.integers(1, 8),
       extra=st.sampled_from([0, 4]), interleaved=st.booleans())
def test_rotary_at_offset_p_equals_the_uncached_sequence(llama, length, data, half_dim, extra,
                                                         interleaved):
    """Positions p.. of a sequence turned at once equal them turned as a cached suffix."""
    offset = data.draw(st.integers(0, length - 1))
    dim = 2 * half_dim
    x = torch.randn(2, 3, length, dim + extra)  # extra features: partial rotary passes them
    for rotary in _rotaries(llama, dim, interleaved):
        cos, sin = rotary(x)
        full = llama.apply_rotary(x, cos, sin, interleaved)
        cos_p, sin_p = rotary(x[..., offset:, :], offset)
        suffix = llama.apply_rotary(x[..., offset:, :], cos_p, sin_p, interleaved)
        assert torch.equal(suffix, full[..., offset:, :])
        assert torch.equal(full[..., dim:], x[..., dim:])


ROPE_SPEC = """
archcc: 1
name: rope_layer
dims: {T: 9}
inputs:
  x: {shape: [B, 2, T, 24]}
model:
  layers:
    rope: {op: rotary, dim: 16, theta: 10000.0}
  forward: |
    return rope(x)
"""


def test_rotary_layer_of_its_own_matches_hf(tmp_path):
    """`q = rope(q)` in hand-written attention: GPT-NeoX's partial rotary, bit for bit."""
    transformers = pytest.importorskip("transformers")
    from transformers.models.gpt_neox import modeling_gpt_neox as neox

    spec = tmp_path / "rope_layer.yaml"
    spec.write_text(ROPE_SPEC)
    from archcc.api import build

    module = build(spec, tmp_path)
    x = torch.randn(2, 2, 9, 24)
    config = transformers.GPTNeoXConfig(hidden_size=48, num_attention_heads=2,
                                        rotary_pct=16 / 24)
    rotary = neox.GPTNeoXRotaryEmbedding(config)
    cos, sin = rotary(x, torch.arange(9)[None])
    expected, _ = neox.apply_rotary_pos_emb(x, x, cos, sin)
    assert torch.equal(module.Model()(x), expected)


def test_interleaved_layout_matches_gpt_j(tmp_path):
    """`layout: interleaved` pairs features (2i, 2i + 1): GPT-J's rotate_every_two."""
    pytest.importorskip("transformers")
    from transformers.models.gptj import modeling_gptj as gptj

    from archcc.api import build

    spec = tmp_path / "rope_layer.yaml"
    spec.write_text(ROPE_SPEC.replace("theta: 10000.0}", "theta: 10000.0, layout: interleaved}"))
    module = build(spec, tmp_path)
    x = torch.randn(2, 9, 2, 24)  # GPT-J's (B, T, heads, head_dim)
    sin, cos = gptj.create_sinusoidal_positions(9, 16)[None].split(8, dim=-1)
    expected = torch.cat((gptj.apply_rotary_pos_emb(x[..., :16], sin, cos), x[..., 16:]), -1)
    assert torch.equal(module.Model()(x.transpose(1, 2)).transpose(1, 2), expected)


def test_attention_formulas_hold_for_the_decoder_facets(tmp_path):
    """params() and flops() of `op: attention` with GQA, head_dim, qk-norm and q/k/v-only
    biases equal what the generated module measures (torch.utils.flop_counter)."""
    from archcc import ops
    from archcc.inspect.measure import measure
    from archcc.runtime.loader import import_source

    entry = {"op": "attention", "dim": "d", "heads": 4, "kv_heads": 2, "head_dim": 12,
             "causal": True, "qkv": "separate", "out_bias": False, "qk_norm": "head",
             "rope": {"op": "rotary", "theta": 10000.0}, "sliding_window": 3}
    data = {"archcc": 1, "name": "facets", "params": {"d": 32}, "dims": {"T": 7},
            "inputs": {"x": {"shape": ["B", "T", "d"]}},
            "model": {"layers": {"attn": entry}, "forward": "return attn(x)\n"}}
    path = tmp_path / "facets.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    module = import_source(compile_spec(path).source, "archcc_test_facets")
    measured = measure(module, batch=2, dims={"T": 7})
    op = ops.get("attention")
    values = {**op.schema.model_validate(entry).model_dump(), "dim": 32}
    assert op.params(values) == sum(measured.params[k] for k in measured.params if k == "attn")
    assert op.flops(values, [(2, 7, 32)]) == measured.flops[""]


# --------------------------------------------------------------------- fusion, explain


def test_fused_path_shares_kv_heads_and_keeps_the_window(compiled):
    llama, mistral = compiled("llama").__file__, compiled("mistral").__file__
    for path in (llama, mistral):
        source = Path(path).read_text()
        assert "enable_gqa=True" in source and "k.repeat_interleave" not in source
    mistral_source = Path(mistral).read_text()
    assert "keep = sliding_window_mask(q, k, self.window)" in mistral_source
    assert "attn_mask=keep," in mistral_source
    assert mistral_source.count("def apply_rotary(") == 1


def test_soft_capping_stays_unfused_and_explain_says_why(tmp_path, capsys):
    spec = yaml.safe_load((ROOT / "specs" / "mistral.yaml").read_text())
    spec["blocks"]["Block"]["layers"]["self_attn"]["softcap"] = 50.0
    path = tmp_path / "capped.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert main(["build", str(path), "-o", str(tmp_path / "out"), "--explain"]) == 0
    out = capsys.readouterr().out
    assert "not fused: scores are soft-capped (tanh), which SDPA cannot do" in out
    source = (tmp_path / "out" / "mistral.py").read_text()
    assert "torch.tanh(att / self.softcap) * self.softcap" in source
    assert "scaled_dot_product_attention" not in source


# ------------------------------------------------------------------- the cache's size


def test_summary_and_budget_count_kv_heads_and_the_window(compiled):
    llama, mistral = compiled("llama"), compiled("mistral")
    llama_shapes = compile_spec(ROOT / "specs" / "llama.yaml").program.kv_shapes
    layers = kv_cache_layers(llama, llama_shapes, 1024)
    assert len(layers) == 16 and {(x.heads, x.head_dim) for x in layers} == {(8, 64)}
    assert sum(x.bytes for x in layers) == 2 * 16 * 8 * 64 * 1024 * 4
    shapes = compile_spec(ROOT / "specs" / "mistral.yaml").program.kv_shapes
    windowed = sum(x.bytes for x in kv_cache_layers(mistral, shapes, 32768))
    full = sum(x.bytes for x in kv_cache_layers(mistral, shapes, 32768, window=False))
    assert windowed == 2 * 32 * 8 * 128 * 4096 * 4 and full == 8 * windowed


def test_budget_is_checked_against_the_windowed_cache(tmp_path):
    text = (ROOT / "specs" / "mistral.yaml").read_text()
    path = tmp_path / "mistral.yaml"
    path.write_text(text.replace("max: 512MiB", "max: 511MiB"))
    with pytest.raises(ArchccError, match="536,870,912 bytes of KV cache at T=32768"):
        compile_spec(path)


# -------------------------------------------------------------------- checkpoint splits

SPLIT_SPEC = """
archcc: 1
name: split_rules
params: {heads: 2, head_dim: 3, kv_heads: 1}
inputs:
  x: {shape: [B, 6]}
model:
  layers:
    q: {op: linear, in: 6, out: heads * head_dim}
    k: {op: linear, in: 6, out: kv_heads * head_dim}
    v: {op: linear, in: 6, out: kv_heads * head_dim}
  forward: |
    return q(x), k(x), v(x)
checkpoint:
  fused:
    split:
      qkv_proj.weight: {into: [q.weight, k.weight, v.weight],
                        sizes: [heads * head_dim, kv_heads * head_dim, kv_heads * head_dim]}
      qkv_proj.bias: {into: [q.bias, k.bias, v.bias],
                      sizes: [heads * head_dim, kv_heads * head_dim, kv_heads * head_dim]}
  per_head:
    split:
      query_key_value.weight: {into: [q.weight, k.weight, v.weight], groups: heads}
      query_key_value.bias: {into: [q.bias, k.bias, v.bias], groups: heads}
"""


def test_uneven_and_per_head_splits(tmp_path):
    from archcc.api import build

    path = tmp_path / "split_rules.yaml"
    path.write_text(SPLIT_SPEC)
    module = build(path, tmp_path)
    weight, bias = torch.randn(12, 6), torch.randn(12)
    out = module.convert_state_dict({"qkv_proj.weight": weight, "qkv_proj.bias": bias}, "fused")
    assert torch.equal(out["q.weight"], weight[:6]) and torch.equal(out["k.bias"], bias[6:9])
    assert torch.equal(out["v.weight"], weight[9:])
    # per head (2 heads x [q | k | v] x 3 rows), as GPT-NeoX's query_key_value
    config = module.Config(kv_heads=2)
    weight, bias = torch.randn(18, 6), torch.randn(18)
    out = module.convert_state_dict({"query_key_value.weight": weight,
                                     "query_key_value.bias": bias}, "per_head", config)
    heads = weight.view(2, 3, 3, 6)
    assert torch.equal(out["k.weight"], heads[:, 1].reshape(6, 6))
    assert torch.equal(out["v.bias"], bias.view(2, 3, 3)[:, 2].reshape(6))
    module.Model(config).load_state_dict(out)
    # the .arch front end writes and reads the same rules
    arch = tmp_path / "split_rules.arch"
    arch.write_text(to_arch(load_spec(path).spec))
    assert load_spec(arch).spec == load_spec(path).spec


def test_split_sizes_must_match_the_parts(tmp_path):
    path = tmp_path / "split_rules.yaml"
    path.write_text(SPLIT_SPEC.replace("sizes: [heads * head_dim, kv_heads * head_dim, "
                                       "kv_heads * head_dim]}", "sizes: [heads]}", 1))
    with pytest.raises(ArchccError, match="1 sizes for 3 parts"):
        compile_spec(path)


@pytest.mark.parametrize(("name", "params", "kv_bytes"), [
    ("llama", 1_235_814_400, 2 * 16 * 8 * 64 * 16 * 4),        # Llama 3.2 1B, tied head
    ("mistral", 7_241_732_096, 2 * 32 * 8 * 128 * 16 * 4),     # Mistral 7B
])
def test_published_sizes_on_the_meta_device(name, params, kv_bytes):
    """The bundled specs at their published sizes, measured without allocating."""
    from archcc.inspect import summarize

    summary = summarize(ROOT / "specs" / f"{name}.yaml")
    assert summary.totals["params"] == params
    assert summary.kv_cache["bytes"] == kv_bytes
