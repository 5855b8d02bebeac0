"""specs/mixtral.yaml against transformers' MixtralForCausalLM: tiny random configs, strict
loads, fp32, eager attention and experts; logits at -O0 and -O2, greedy generation, and
cached against uncached logits over 40 steps."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

SMALL = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, num_local_experts=4,
             num_experts_per_tok=2, max_position_embeddings=256)


def reference(**overrides):
    """A random tiny MixtralForCausalLM; weights wide enough that routing is decisive."""
    cfg = transformers.MixtralConfig(**{**SMALL, **overrides}, initializer_range=0.08)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(
        cfg, attn_implementation="eager", experts_implementation="eager",
        dtype=torch.float32).eval()
    with torch.no_grad():  # norms start at 1: redraw them so a wrong norm shows
        for name, p in model.named_parameters():
            if name.endswith("layernorm.weight") or name == "model.norm.weight":
                p.copy_(1 + 0.2 * torch.randn_like(p))
    return model


def ours(compiled, ref, opt_level: int = 2, **overrides):
    module = compiled("mixtral", opt_level)
    cfg = ref.config
    config = module.Config(**{**SMALL, **overrides},
                           rope_theta=cfg.rope_parameters["rope_theta"])
    model = module.Model(config).eval()
    model.load_state_dict(module.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    return module, model


@pytest.mark.parametrize("opt_level", [0, 2])
def test_logits_match(compiled, opt_level):
    ref = reference()
    _, model = ours(compiled, ref, opt_level)
    ids = torch.randint(0, SMALL["vocab_size"], (3, 37))
    with torch.no_grad():
        want = ref(input_ids=ids, use_cache=False).logits
        torch.testing.assert_close(model(ids), want, rtol=1e-4, atol=1e-4)


def test_single_expert_per_token(compiled):
    """top-1 routing (Switch-style k) through the same generated class."""
    ref = reference(num_experts_per_tok=1)
    _, model = ours(compiled, ref, num_experts_per_tok=1)
    ids = torch.randint(0, SMALL["vocab_size"], (2, 19))
    with torch.no_grad():
        torch.testing.assert_close(model(ids), ref(input_ids=ids, use_cache=False).logits,
                                   rtol=1e-4, atol=1e-4)


def test_greedy_generate_equals_transformers(compiled):
    ref = reference()
    module, model = ours(compiled, ref)
    ids = torch.randint(0, SMALL["vocab_size"], (2, 11))
    with torch.no_grad():
        want = ref.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                            max_new_tokens=24, min_new_tokens=24, eos_token_id=None,
                            pad_token_id=0)
    got = module.generate(model, ids, 24, eos_token_id=None)
    assert torch.equal(got, want)


def test_cached_and_uncached_logits_agree_over_40_steps(compiled):
    ref = reference()
    module, model = ours(compiled, ref)
    ids = torch.randint(0, SMALL["vocab_size"], (2, 9))
    cache = module.KVCache()
    with torch.no_grad():
        step = model(ids, cache=cache)[:, -1]
        for _ in range(40):
            token = step.argmax(dim=-1, keepdim=True)
            ids = torch.cat([ids, token], dim=1)
            step = model(token, cache=cache)[:, -1]
            torch.testing.assert_close(step, model(ids)[:, -1], rtol=1e-4, atol=1e-4)


def test_aux_loss_equals_transformers(compiled):
    """load_balancing_loss(model) is MixtralForCausalLM's aux_loss (output_router_logits),
    and with a padding mask its load_balancing_loss_func over the same router logits."""
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    ref = reference()
    module, model = ours(compiled, ref)
    ids = torch.randint(0, SMALL["vocab_size"], (2, 13))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0
    with torch.no_grad():
        out = ref(input_ids=ids, output_router_logits=True, use_cache=False)
        model.train()(ids)
        torch.testing.assert_close(module.load_balancing_loss(model), out.aux_loss)
        want = load_balancing_loss_func(out.router_logits, SMALL["num_local_experts"],
                                        SMALL["num_experts_per_tok"], mask)
        torch.testing.assert_close(module.load_balancing_loss(model, mask), want)


def test_bfloat16_matches_transformers_defaults_to_the_bit(compiled):
    """HF built in bfloat16 with its defaults (sdpa attention, grouped_mm experts) vs ours
    cast by .to(bfloat16): the routing weights and the sum over experts in float32 as HF."""
    module = compiled("mixtral")
    cfg = transformers.MixtralConfig(**SMALL, initializer_range=0.08)
    torch.manual_seed(0)
    ref = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).eval()
    assert ref.config._experts_implementation == "grouped_mm"
    model = module.Model(module.Config(**SMALL)).eval()
    model.load_state_dict(module.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    model = model.to(torch.bfloat16)
    ids = torch.randint(0, SMALL["vocab_size"], (2, 40))
    with torch.no_grad():
        assert torch.equal(model(ids), ref(input_ids=ids, use_cache=False).logits)


def test_published_size_on_the_meta_device():
    """Mixtral 8x7B: 46.7B parameters, two experts' FLOPs per token, never allocated."""
    from pathlib import Path

    from archcc.inspect import summarize

    summary = summarize(Path(__file__).resolve().parents[2] / "specs" / "mixtral.yaml",
                        dims={"T": 1})
    assert summary.totals["params"] == 46_702_792_704
    assert 25e9 < summary.totals["flops"] < 26e9  # dense experts would be 93e9


def test_hub_files_load_strictly(compiled, tmp_path):
    """save_pretrained (and the hub) keep one tensor per expert, block_sparse_moe.experts.{e}
    .w1/w3/w2: the hf layout renames them and the MoE class stacks them on load."""
    from safetensors.torch import load_file

    ref = reference()
    ref.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    assert "model.layers.1.block_sparse_moe.experts.3.w2.weight" in state
    module = compiled("mixtral")
    model = module.Model(module.Config(**SMALL)).eval()
    model.load_state_dict(module.convert_state_dict(state, "hf"), strict=True)
    ids = torch.randint(0, SMALL["vocab_size"], (2, 15))
    with torch.no_grad():
        torch.testing.assert_close(model(ids), ref(input_ids=ids, use_cache=False).logits,
                                   rtol=1e-4, atol=1e-4)
