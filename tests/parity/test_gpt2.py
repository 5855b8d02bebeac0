"""Generated GPT-2 vs Hugging Face GPT2LMHeadModel, weights carried by convert_state_dict."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from tests.conftest import full_size  # noqa: E402

SMALL = dict(vocab_size=101, n_positions=32, n_embd=64, n_head=4, n_layer=2)
FULL = dict(vocab_size=50257, n_positions=1024, n_embd=768, n_head=12, n_layer=12)


def _pair(gpt2, sizes):
    ref = transformers.GPT2LMHeadModel(transformers.GPT2Config(**sizes)).eval()
    ours = gpt2.Model(gpt2.Config(**sizes)).eval()
    ours.load_state_dict(gpt2.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    return ours, ref


@pytest.mark.parametrize("opt_level", [0, 1, 2])
def test_logits_match_hf(compiled, opt_level):
    gpt2 = compiled("gpt2", opt_level)
    ours, ref = _pair(gpt2, SMALL)
    (input_ids,) = gpt2.example_inputs(batch=3, config=gpt2.Config(**SMALL), T=17)
    with torch.no_grad():
        torch.testing.assert_close(ours(input_ids), ref(input_ids).logits)


def test_parameter_count_and_tying(compiled):
    gpt2 = compiled("gpt2")
    ours, ref = _pair(gpt2, SMALL)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    assert ours.lm_head.weight is ours.wte.weight


@pytest.mark.skipif(not full_size(), reason="published size: set ARCHCC_FULL=1")
def test_full_size(compiled):
    gpt2 = compiled("gpt2")
    ours, ref = _pair(gpt2, FULL)
    (input_ids,) = gpt2.example_inputs(batch=2, T=64)
    with torch.no_grad():
        out, expected = ours(input_ids), ref(input_ids).logits
    print(f"gpt2 full: max abs err {(out - expected).abs().max().item():.3g}, "
          f"params {sum(p.numel() for p in ours.parameters())}")
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
