"""Generated RoBERTa vs Hugging Face RobertaModel: position ids that start after the pad id
and skip pads, a padding mask, pooled output."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from tests.conftest import full_size  # noqa: E402

SMALL = dict(vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=128, max_position_embeddings=40)
PAD = 1
# roberta-base's config.json differs from RobertaConfig()'s defaults in these
BASE = dict(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1,
            layer_norm_eps=1e-5)


def _pair(roberta, sizes):
    ref = transformers.RobertaModel(transformers.RobertaConfig(**{**BASE, **sizes})).eval()
    ours = roberta.Model(roberta.Config(**sizes)).eval()
    ours.load_state_dict(roberta.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    return ours, ref


def _inputs(roberta, sizes, batch=3, T=12):
    input_ids, mask, token_type_ids = roberta.example_inputs(batch, roberta.Config(**sizes), T=T)
    input_ids = input_ids.clamp(min=PAD + 1)  # no accidental pads
    mask = mask.clone()
    input_ids[0, -4:], mask[0, -4:] = PAD, False  # right padding in the first sequence
    input_ids[1, :3], mask[1, :3] = PAD, False  # left padding in the second
    return input_ids, mask, token_type_ids


@pytest.mark.parametrize("opt_level", [0, 2])
def test_hidden_state_and_pooler_match_hf(compiled, opt_level):
    roberta = compiled("roberta", opt_level)
    ours, ref = _pair(roberta, SMALL)
    input_ids, mask, token_type_ids = _inputs(roberta, SMALL)
    with torch.no_grad():
        hidden, pooled = ours(input_ids, mask, token_type_ids)
        expected = ref(input_ids=input_ids, attention_mask=mask.long(),
                       token_type_ids=token_type_ids)
    real = mask  # HF's padded query rows attend differently (finfo.min, not -inf); skip them
    torch.testing.assert_close(hidden[real], expected.last_hidden_state[real])
    torch.testing.assert_close(pooled[2], expected.pooler_output[2])


def test_left_padding_shifts_positions(compiled):
    """The same tokens after three pads give the same hidden states: positions skip pads."""
    roberta = compiled("roberta")
    ours, _ = _pair(roberta, SMALL)
    ids = torch.randint(PAD + 1, SMALL["vocab_size"], (1, 6))
    padded = torch.cat([torch.full((1, 3), PAD), ids], dim=1)
    mask = padded != PAD
    with torch.no_grad():
        plain, _ = ours(ids, torch.ones_like(ids, dtype=torch.bool), torch.zeros_like(ids))
        shifted, _ = ours(padded, mask, torch.zeros_like(padded))
    torch.testing.assert_close(shifted[:, 3:], plain)


@pytest.mark.skipif(not full_size(), reason="published size: set ARCHCC_FULL=1")
def test_full_size(compiled):
    roberta = compiled("roberta")
    ours, ref = _pair(roberta, {})
    input_ids, mask, token_type_ids = _inputs(roberta, {}, batch=2, T=128)
    token_type_ids.zero_()
    with torch.no_grad():
        hidden, _ = ours(input_ids, mask, token_type_ids)
        expected = ref(input_ids=input_ids, attention_mask=mask.long()).last_hidden_state
    n_ours = sum(p.numel() for p in ours.parameters())
    n_ref = sum(p.numel() for p in ref.parameters())
    print(f"roberta-base: max abs err {(hidden - expected)[mask].abs().max().item():.3g}, "
          f"params {n_ours} (hf {n_ref})")
    assert n_ours == n_ref
    torch.testing.assert_close(hidden[mask], expected[mask], atol=1e-4, rtol=1e-4)
