"""specs/llama.yaml and specs/mistral.yaml vs Hugging Face LlamaForCausalLM and
MistralForCausalLM: logits, greedy generate() token for token (past the sliding window),
cached vs recomputed steps, and the KV cache's size.

Tiny sizes with non-trivial weights (norm weights redrawn), loaded strictly through
``convert_state_dict(sd, "hf")``. The bundled llama spec keeps Llama 3's rope scaling.
"""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from tests.conftest import full_size  # noqa: E402

LLAMA = dict(vocab_size=101, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-5,
             rope_theta=500000.0, rope_factor=8.0, rope_low_freq_factor=1.0,
             rope_high_freq_factor=4.0, rope_original_max_position_embeddings=16)
MISTRAL = dict(vocab_size=101, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, sliding_window=5, rms_norm_eps=1e-5,
               max_position_embeddings=128)


def _hf_config(name: str, sizes: dict):
    if name == "llama":
        rope = {"rope_type": "llama3", "rope_theta": sizes["rope_theta"],
                "factor": sizes["rope_factor"], "low_freq_factor": sizes["rope_low_freq_factor"],
                "high_freq_factor": sizes["rope_high_freq_factor"],
                "original_max_position_embeddings": sizes["rope_original_max_position_embeddings"]}
        plain = {k: v for k, v in sizes.items() if not k.startswith("rope_")}
        return transformers.LlamaConfig(**plain, rope_parameters=rope, tie_word_embeddings=True,
                                        max_position_embeddings=128)
    return transformers.MistralConfig(**sizes)


def pair(module, name: str, sizes: dict, attn: str = "eager"):
    """(ours, reference) with the reference's weights, norm weights made non-trivial."""
    torch.manual_seed(0)
    ref = transformers.AutoModelForCausalLM.from_config(_hf_config(name, sizes),
                                                        attn_implementation=attn).eval()
    with torch.no_grad():
        for key, param in ref.named_parameters():
            if "norm" in key:
                param.normal_(1.0, 0.3)
    ours = module.Model(module.Config(**sizes)).eval()
    ours.load_state_dict(module.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    return ours, ref


CASES = [("llama", LLAMA), ("mistral", MISTRAL)]


@pytest.mark.parametrize("opt_level", [0, 2])
@pytest.mark.parametrize(("name", "sizes"), CASES, ids=["llama", "mistral"])
def test_logits_match_hf(compiled, name, sizes, opt_level):
    module = compiled(name, opt_level)
    ours, ref = pair(module, name, sizes)
    ids = torch.randint(0, 101, (3, 23))  # longer than mistral's window of 5
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), ref(ids, use_cache=False).logits,
                                   atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("name", "sizes"), CASES, ids=["llama", "mistral"])
def test_bfloat16_matches_hf_to_the_bit(compiled, name, sizes):
    """HF built in bfloat16 (rotary frequencies kept float32) vs ours cast by .to(bfloat16):
    RMSNorm in float32, cos/sin from float32 angles, the same SDPA call."""
    module = compiled(name)
    torch.manual_seed(0)
    ref = transformers.AutoModelForCausalLM.from_config(
        _hf_config(name, sizes), attn_implementation="sdpa", dtype=torch.bfloat16).eval()
    ours = module.Model(module.Config(**sizes)).eval()
    ours.load_state_dict(module.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    ours = ours.to(torch.bfloat16)
    assert ours.layers[0].self_attn.rotary.inv_freq.dtype == torch.float32
    ids = torch.randint(0, 101, (2, 40))
    with torch.no_grad():
        assert torch.equal(ours(ids), ref(ids, use_cache=False).logits)


@pytest.mark.parametrize(("name", "sizes"), CASES, ids=["llama", "mistral"])
def test_greedy_generate_matches_hf_token_for_token(compiled, name, sizes):
    module = compiled(name)
    ours, ref = pair(module, name, sizes, attn="sdpa")
    prompt = torch.randint(0, 101, (2, 7))
    with torch.no_grad():
        tokens = module.generate(ours, prompt, max_new_tokens=24, eos_token_id=None)
        expected = ref.generate(prompt, do_sample=False, max_new_tokens=24, min_new_tokens=24,
                                eos_token_id=None, pad_token_id=0)
    assert tokens.shape == (2, 31)  # 31 positions: far past the window of 5
    assert torch.equal(tokens, expected)


@pytest.mark.parametrize("opt_level", [0, 2])
@pytest.mark.parametrize(("name", "sizes"), CASES, ids=["llama", "mistral"])
def test_cached_steps_match_recomputing_over_40_steps(compiled, name, sizes, opt_level):
    module = compiled(name, opt_level)
    model = module.Model(module.Config(**sizes)).eval()
    ids = torch.randint(0, 101, (2, 46))
    cache = module.KVCache()
    with torch.no_grad():
        full = model(ids)
        first = model(ids[:, :6], cache=cache)
        torch.testing.assert_close(first, full[:, :6], atol=1e-5, rtol=1e-5)
        for t in range(6, 46):
            step = model(ids[:, t:t + 1], cache=cache)
            torch.testing.assert_close(step[:, 0], full[:, t], atol=1e-5, rtol=1e-5)
    assert cache.length == 46


def test_the_cache_keeps_kv_heads_and_no_more_than_the_window(compiled):
    mistral = compiled("mistral")
    model = mistral.Model(mistral.Config(**MISTRAL)).eval()
    cache = mistral.KVCache()
    with torch.no_grad():
        model(torch.randint(0, 101, (1, 12)), cache=cache)
        for _ in range(3):
            model(torch.randint(0, 101, (1, 1)), cache=cache)
    for keys, values, *_ in cache.kv.values():
        assert keys.shape == values.shape == (1, 2, 4, 16)  # 2 kv heads, window - 1 keys
    llama = compiled("llama")
    model, cache = llama.Model(llama.Config(**LLAMA)).eval(), llama.KVCache()
    with torch.no_grad():
        model(torch.randint(0, 101, (1, 12)), cache=cache)
    assert {tuple(k.shape) for k, *_ in cache.kv.values()} == {(1, 2, 12, 16)}


def test_multi_query_is_the_same_file(compiled):
    llama = compiled("llama")
    sizes = {**LLAMA, "num_key_value_heads": 1}
    ours, ref = pair(llama, "llama", sizes)
    assert ours.layers[0].self_attn.kv.weight.shape == (2 * 16, 64)  # one key, one value head
    ids = torch.randint(0, 101, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), ref(ids, use_cache=False).logits,
                                   atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not full_size(), reason="published size: set ARCHCC_FULL=1")
@pytest.mark.parametrize("name", ["llama", "mistral"])
def test_full_size(compiled, name):
    module = compiled(name)
    with torch.device("meta"):
        ours = module.Model(module.Config())
    print(f"{name} full: params {sum(p.numel() for p in ours.parameters()):,}")
