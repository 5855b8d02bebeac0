"""`archcc import hf` for decoder LLMs: every family's spec, assembled from its parts, against
its transformers class.

Each case writes a tiny config with transformers' own ``to_json_file``, imports it (with
``--mask``: the forward takes an attention mask), builds it at -O0 and -O2, loads the
reference's state_dict strictly through ``convert_state_dict(sd, "hf")`` (norm weights and
biases redrawn so they matter) and compares logits on a batch padded on the left in one row
and on the right in the other, 12 tokens long (past every window of 4), at the real tokens
(eager and sdpa differ on padded rows). The reference runs eager attention, so -O0 (the
unfused primitives) agrees to the bit in all but dynamic NTK (float32 vs float64 base).
"""

from __future__ import annotations

import pytest
import torch

import archcc
from archcc.importers import import_hf
from archcc.importers.decoder_parts import DEFAULTS, PARTS, default

transformers = pytest.importorskip("transformers")

BASE = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
            num_attention_heads=4, max_position_embeddings=256)
LLAMA3 = dict(rope_type="llama3", rope_theta=5e5, factor=8.0, low_freq_factor=1.0,
              high_freq_factor=4.0, original_max_position_embeddings=16)
# case -> (model_type, config kwargs)
CASES = {
    "llama": ("llama", dict(num_key_value_heads=2, head_dim=24, attention_bias=True,
                            mlp_bias=True, rope_parameters=LLAMA3)),
    "llama_yarn": ("llama", dict(num_key_value_heads=2, rope_parameters=dict(
        rope_type="yarn", rope_theta=1e4, factor=4.0, original_max_position_embeddings=64))),
    "llama_linear_mqa": ("llama", dict(num_key_value_heads=1, rope_parameters=dict(
        rope_type="linear", rope_theta=1e4, factor=4.0))),
    "llama_dynamic": ("llama", dict(num_key_value_heads=2, max_position_embeddings=8,
                                    rope_parameters=dict(rope_type="dynamic", rope_theta=1e4,
                                                         factor=2.0))),
    "mistral": ("mistral", dict(num_key_value_heads=2, sliding_window=4)),
    "qwen2": ("qwen2", dict(num_key_value_heads=2, use_sliding_window=True, sliding_window=4,
                            max_window_layers=1)),
    "qwen3": ("qwen3", dict(num_key_value_heads=2, head_dim=16)),
    "gemma": ("gemma", dict(num_key_value_heads=2, head_dim=16)),
    "gemma2": ("gemma2", dict(num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=24,
                              sliding_window=4)),
    "phi3": ("phi3", dict(num_key_value_heads=2, pad_token_id=0, partial_rotary_factor=0.5)),
    "gpt_neox": ("gpt_neox", dict(rotary_pct=0.5)),
    "gpt_neox_sequential": ("gpt_neox", dict(rotary_pct=0.5, use_parallel_residual=False)),
    "olmo2": ("olmo2", dict(num_key_value_heads=2)),
}


def reference(case: str, attn: str = "eager"):
    model_type, kwargs = CASES[case]
    config = transformers.AutoConfig.for_model(model_type, **{**BASE, **kwargs})
    torch.manual_seed(0)
    ref = transformers.AutoModelForCausalLM.from_config(config, attn_implementation=attn)
    with torch.no_grad():
        for key, param in ref.named_parameters():
            if "norm" in key or key.endswith("bias"):
                param.normal_(0.0 if key.endswith("bias") else 0.5, 0.3)
    return config, ref.eval()


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """``imported(case, opt_level, mask)`` -> the generated module, built once."""
    cache: dict = {}

    def get(case: str, opt_level: int, mask: bool = True):
        if (case, opt_level, mask) not in cache:
            folder = tmp_path_factory.mktemp(case)
            config, _ = reference(case)
            config.to_json_file(folder / "config.json")
            spec = import_hf(folder / "config.json", folder / f"{case}.yaml", mask=mask)
            cache[case, opt_level, mask] = archcc.build(spec, folder, opt_level=opt_level)
        return cache[case, opt_level, mask]

    return get


@pytest.mark.parametrize("opt_level", [0, 2])
@pytest.mark.parametrize("case", list(CASES))
def test_family_matches_hf_with_padding(imported, case, opt_level):
    module = imported(case, opt_level)
    _, ref = reference(case)
    ours = module.Model(module.Config()).eval()
    ours.load_state_dict(module.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    ids = torch.randint(1, 128, (2, 12))
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[0, :3] = False  # left padding
    mask[1, -2:] = False  # right padding
    with torch.no_grad():
        out = ours(ids, mask)
        expected = ref(ids, attention_mask=mask.long(), use_cache=False).logits
    # -O0 is HF's eager arithmetic, bit for bit except dynamic NTK's base (HF: float32
    # tensors, here Python floats); -O2's SDPA kernels sum in another order
    tolerance = 1e-6 if opt_level == 0 else 1e-5
    torch.testing.assert_close(out[mask], expected[mask], atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("case", ["gemma2", "qwen2", "phi3", "gpt_neox"])
def test_generate_matches_hf_and_the_cache(imported, case):
    """Mixed local/global layers (Gemma 2's cycle, Qwen2's pattern) and the fused layouts,
    through the generation facet: greedy tokens equal HF's, cached logits the recomputed."""
    module = imported(case, 2, mask=False)
    _, ref = reference(case)
    ours = module.Model(module.Config()).eval()
    ours.load_state_dict(module.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    prompt = torch.randint(1, 128, (2, 6))
    with torch.no_grad():
        tokens = module.generate(ours, prompt, max_new_tokens=14, eos_token_id=None)
        expected = ref.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                                max_new_tokens=14, min_new_tokens=14, eos_token_id=None,
                                pad_token_id=0)
        assert torch.equal(tokens, expected)
        full, cache = ours(tokens), module.KVCache()
        steps = [ours(tokens[:, :6], cache=cache)[:, -1]]
        steps += [ours(tokens[:, t:t + 1], cache=cache)[:, 0] for t in range(6, 20)]
    torch.testing.assert_close(torch.stack(steps, 1), full[:, 5:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model_type", list(PARTS))
def test_family_defaults_are_transformers_defaults(model_type):
    """Keys a config.json may leave out take the transformers config class's default (the
    dataclass field's, before __post_init__ derives anything from the others)."""
    import dataclasses

    config = transformers.AutoConfig.for_model(model_type)
    fields = {f.name: f.default for f in dataclasses.fields(type(config))}
    parts = PARTS[model_type]
    keys = set(parts.defaults) | {k for k in DEFAULTS if k in fields}
    for key in sorted(keys):
        if key in ("rope_theta", "rotary_pct"):  # now kept in rope_parameters
            name = "rope_theta" if key == "rope_theta" else "partial_rotary_factor"
            actual = config.rope_parameters[name]
        else:
            actual = fields[key]
        assert default(parts, key) == actual, f"{model_type}.{key}"


REFUSED = {  # config.json text -> (the key the error points at, words of its message)
    "longrope": ('"rope_parameters": {"rope_type": "longrope", "rope_theta": 10000.0}',
                 "rope_parameters.rope_type", "rope type 'longrope' is not supported"),
    "dropout": ('"attention_dropout": 0.1', "attention_dropout", "no dropout at that place"),
    "partial": ('"partial_rotary_factor": 0.5', "partial_rotary_factor",
                "LlamaForCausalLM rotates all of each head"),
    "activation": ('"hidden_act": "relu"', "hidden_act", '"relu" is not supported'),
    "quantized": ('"quantization_config": {"quant_method": "gptq"}', "quantization_config",
                  "quantized"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_field_the_spec_cannot_honour_is_a_located_refusal(tmp_path, case):
    from archcc.diagnostics import ArchccError

    entry, key, words = REFUSED[case]
    text = ('{\n  "model_type": "llama",\n  "hidden_size": 64,\n  "num_attention_heads": 4,\n'
            f'  {entry}\n}}\n')
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(ArchccError) as error:
        import_hf(tmp_path / "config.json", tmp_path / "refused.yaml")
    diagnostic = error.value.diagnostics[0]
    assert diagnostic.path == key and words in diagnostic.message
    assert diagnostic.loc.line == 5 and not (tmp_path / "refused.yaml").exists()
