"""`archcc import hf` for the mixture-of-experts decoders (Mixtral, Qwen2-MoE), assembled from
the same family parts as the dense ones plus their ``Experts`` row, against transformers.

As in test_llm_import.py: a tiny config written by transformers' ``to_json_file``, imported
with ``--mask``, built at -O0 and -O2, the reference's state_dict loaded strictly through
``convert_state_dict(sd, "hf")`` (norms and biases redrawn), logits compared on a batch padded
on the left in one row and on the right in the other, at the real tokens.
"""

from __future__ import annotations

import pytest
import torch

import archcc
from archcc.diagnostics import ArchccError
from archcc.importers import import_hf

transformers = pytest.importorskip("transformers")

BASE = dict(vocab_size=128, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=256, initializer_range=0.08)
QWEN = dict(intermediate_size=80, moe_intermediate_size=32, shared_expert_intermediate_size=48,
            num_experts=6, num_experts_per_tok=2)
# case -> (model_type, config kwargs, the layer layout the spec must have)
CASES = {
    "mixtral": ("mixtral", dict(intermediate_size=96, num_hidden_layers=2, num_local_experts=4,
                                num_experts_per_tok=2), "repeat"),
    "mixtral_window": ("mixtral", dict(intermediate_size=96, num_hidden_layers=2,
                                       num_local_experts=4, num_experts_per_tok=1,
                                       sliding_window=4), "repeat"),
    "qwen2_moe": ("qwen2_moe", dict(QWEN, num_hidden_layers=2), "repeat"),
    "qwen2_moe_normalized_step2": ("qwen2_moe", dict(QWEN, num_hidden_layers=4,
                                                     decoder_sparse_step=2,
                                                     norm_topk_prob=True), "cycle"),
    "qwen2_moe_mlp_only": ("qwen2_moe", dict(QWEN, num_hidden_layers=3, mlp_only_layers=[1]),
                           "pattern"),
}


def reference(case: str):
    model_type, kwargs, _ = CASES[case]
    config = transformers.AutoConfig.for_model(model_type, **{**BASE, **kwargs})
    torch.manual_seed(0)
    ref = transformers.AutoModelForCausalLM.from_config(
        config, attn_implementation="eager", experts_implementation="eager")
    with torch.no_grad():
        for key, param in ref.named_parameters():
            if "norm" in key or key.endswith("bias"):
                param.normal_(0.0 if key.endswith("bias") else 0.5, 0.3)
    return config, ref.eval()


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """``imported(case, opt_level, mask)`` -> (spec path, generated module), built once."""
    cache: dict = {}

    def get(case: str, opt_level: int, mask: bool = True):
        if (case, opt_level, mask) not in cache:
            folder = tmp_path_factory.mktemp(case)
            config, _ = reference(case)
            config.to_json_file(folder / "config.json")
            spec = import_hf(folder / "config.json", folder / f"{case}.yaml", mask=mask)
            cache[case, opt_level, mask] = spec, archcc.build(spec, folder, opt_level=opt_level)
        return cache[case, opt_level, mask]

    return get


def load(module, ref):
    ours = module.Model(module.Config()).eval()
    ours.load_state_dict(module.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    return ours


@pytest.mark.parametrize("opt_level", [0, 2])
@pytest.mark.parametrize("case", list(CASES))
def test_family_matches_hf_with_padding(imported, case, opt_level):
    spec, module = imported(case, opt_level)
    assert f"{CASES[case][2]}:" in spec.read_text()  # every layer, a cycle, a pattern
    _, ref = reference(case)
    ours = load(module, ref)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    ids = torch.randint(1, 128, (2, 12))
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[0, :3] = False  # left padding
    mask[1, -2:] = False  # right padding
    with torch.no_grad():
        out = ours(ids, mask)
        expected = ref(ids, attention_mask=mask.long(), use_cache=False).logits
    torch.testing.assert_close(out[mask], expected[mask], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", ["mixtral", "qwen2_moe_mlp_only"])
def test_generate_matches_hf_and_the_cache(imported, case):
    _, module = imported(case, 2, mask=False)
    _, ref = reference(case)
    ours = load(module, ref)
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


@pytest.mark.parametrize("case", ["mixtral", "qwen2_moe_mlp_only"])
def test_hub_files_load_strictly(imported, case, tmp_path):
    """The files save_pretrained writes keep one tensor per expert (Mixtral's
    block_sparse_moe.experts.{e}.w1, Qwen2-MoE's mlp.experts.{e}.gate_proj): they load too."""
    from safetensors.torch import load_file

    _, module = imported(case, 2)
    _, ref = reference(case)
    ref.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    assert not any("gate_up_proj" in key for key in state)
    ours = module.Model(module.Config()).eval()
    ours.load_state_dict(module.convert_state_dict(state, "hf"), strict=True)
    ids = torch.randint(1, 128, (2, 9))
    mask = torch.ones_like(ids, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids, mask), ref(ids, use_cache=False).logits,
                                   atol=1e-5, rtol=1e-5)


def test_aux_loss_and_its_coefficient(imported):
    """The imported Config carries router_aux_loss_coef; the loss is transformers'."""
    _, module = imported("qwen2_moe_mlp_only", 2, mask=False)
    _, ref = reference("qwen2_moe_mlp_only")
    ours = load(module, ref)
    ids = torch.randint(1, 128, (2, 9))
    labels = torch.randint(1, 128, (2, 9))
    with torch.no_grad():
        out = ref(ids, labels=labels, output_router_logits=True, use_cache=False)
        logits = ours.train()(ids)
    lm = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten())
    loss = lm + module.Config().router_aux_loss_coef * module.load_balancing_loss(ours)
    torch.testing.assert_close(loss, out.loss)


REFUSED = {  # model_type, config.json entry -> (the key the error points at, words)
    "jitter": ("mixtral", '"router_jitter_noise": 0.1', "router_jitter_noise",
               "router jitter"),
    "top_k": ("mixtral", '"num_experts_per_tok": 9', "num_experts_per_tok",
              "9 experts per token of 8"),
    "qkv_bias": ("qwen2_moe", '"qkv_bias": false', "qkv_bias", "without q/k/v biases"),
    "window": ("qwen2_moe", '"use_sliding_window": true', "use_sliding_window",
               "sliding-window layers"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_field_the_spec_cannot_honour_is_a_located_refusal(tmp_path, case):
    model_type, entry, key, words = REFUSED[case]
    text = (f'{{\n  "model_type": "{model_type}",\n  "hidden_size": 64,\n'
            f'  "num_attention_heads": 4,\n  {entry}\n}}\n')
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(ArchccError) as error:
        import_hf(tmp_path / "config.json", tmp_path / "refused.yaml")
    diagnostic = error.value.diagnostics[0]
    assert diagnostic.path == key and words in diagnostic.message, diagnostic
    assert diagnostic.loc.line == 5 and not (tmp_path / "refused.yaml").exists()
