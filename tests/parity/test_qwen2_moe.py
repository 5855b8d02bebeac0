"""tests/specs/qwen2_moe.yaml against transformers' Qwen2MoeForCausalLM: q/k/v biases, MoE
layers with a gated shared expert and unnormalised routing weights, a dense layer from
mlp_only_layers; tiny random weights, strict loads, fp32, eager attention and experts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import archcc

transformers = pytest.importorskip("transformers")

SPEC = Path(__file__).resolve().parents[1] / "specs" / "qwen2_moe.yaml"
SIZES = dict(vocab_size=128, hidden_size=64, intermediate_size=80, moe_intermediate_size=32,
             shared_expert_intermediate_size=48, num_experts=6, num_experts_per_tok=2,
             num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6)


def reference():
    cfg = transformers.Qwen2MoeConfig(**SIZES, num_hidden_layers=3, mlp_only_layers=[1],
                                      norm_topk_prob=False, initializer_range=0.08,
                                      max_position_embeddings=256)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(
        cfg, attn_implementation="eager", experts_implementation="eager",
        dtype=torch.float32).eval()
    with torch.no_grad():  # norms start at 1 and biases at 0: redraw them so both count
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module", params=[0, 2])
def built(request, tmp_path_factory):
    return archcc.build(SPEC, out_dir=tmp_path_factory.mktemp("qwen2_moe"),
                        opt_level=request.param)


def load(module, ref):
    model = module.Model().eval()
    model.load_state_dict(module.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    return model


def test_logits_match(built):
    ref = reference()
    model = load(built, ref)
    ids = torch.randint(0, SIZES["vocab_size"], (3, 29))
    with torch.no_grad():
        torch.testing.assert_close(model(ids), ref(input_ids=ids, use_cache=False).logits,
                                   rtol=1e-4, atol=1e-4)


def test_greedy_generate_and_cache(built):
    ref = reference()
    model = load(built, ref)
    ids = torch.randint(0, SIZES["vocab_size"], (2, 7))
    with torch.no_grad():
        want = ref.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                            max_new_tokens=20, min_new_tokens=20, eos_token_id=None,
                            pad_token_id=0)
        assert torch.equal(built.generate(model, ids, 20, eos_token_id=None), want)
        assert torch.equal(built.generate(model, ids, 20, eos_token_id=None, use_cache=False),
                           want)


def test_aux_loss_covers_the_moe_layers_only(built):
    """The dense layer has no router; the loss pools the two MoE layers, as transformers'."""
    ref = reference()
    model = load(built, ref)
    ids = torch.randint(0, SIZES["vocab_size"], (2, 11))
    with torch.no_grad():
        out = ref(input_ids=ids, output_router_logits=True, use_cache=False)
        model.train()(ids)
    assert len(out.router_logits) == 2
    torch.testing.assert_close(built.load_balancing_loss(model), out.aux_loss)


def test_hub_files_load_strictly(built, tmp_path):
    """save_pretrained keeps one tensor per expert (mlp.experts.{e}.gate_proj, ...)."""
    from safetensors.torch import load_file

    ref = reference()
    ref.save_pretrained(tmp_path)
    model = built.Model().eval()
    state = load_file(tmp_path / "model.safetensors")
    model.load_state_dict(built.convert_state_dict(state, "hf"), strict=True)
    ids = torch.randint(0, SIZES["vocab_size"], (2, 10))
    with torch.no_grad():
        torch.testing.assert_close(model(ids), ref(input_ids=ids, use_cache=False).logits,
                                   rtol=1e-4, atol=1e-4)
