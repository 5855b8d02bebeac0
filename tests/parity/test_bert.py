"""Generated BERT vs Hugging Face BertModel: token types, a padding mask, pooled output."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from tests.conftest import full_size  # noqa: E402

SMALL = dict(vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=128, max_position_embeddings=40)


def _pair(bert, sizes):
    ref = transformers.BertModel(transformers.BertConfig(**sizes)).eval()
    ours = bert.Model(bert.Config(**sizes)).eval()
    ours.load_state_dict(bert.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    return ours, ref


def _inputs(bert, sizes, batch=3, T=12):
    input_ids, mask, token_type_ids = bert.example_inputs(batch, bert.Config(**sizes), T=T)
    token_type_ids[:, T // 2:] = 1
    mask = mask.clone()
    mask[0, -4:] = False  # padding in the first sequence
    return input_ids, token_type_ids, mask


@pytest.mark.parametrize("opt_level", [0, 1, 2])
def test_hidden_state_and_pooler_match_hf(compiled, opt_level):
    bert = compiled("bert", opt_level)
    ours, ref = _pair(bert, SMALL)
    input_ids, token_type_ids, mask = _inputs(bert, SMALL)
    with torch.no_grad():
        hidden, pooled = ours(input_ids, mask, token_type_ids)
        expected = ref(input_ids=input_ids, token_type_ids=token_type_ids,
                       attention_mask=mask.long())
    # padded query rows differ by design in HF (they attend to pads' neighbours); compare all
    torch.testing.assert_close(hidden, expected.last_hidden_state)
    torch.testing.assert_close(pooled, expected.pooler_output)


def test_integer_mask_accepted(compiled):
    bert = compiled("bert")
    ours, ref = _pair(bert, SMALL)
    input_ids, token_type_ids, mask = _inputs(bert, SMALL)
    with torch.no_grad():
        a, _ = ours(input_ids, mask, token_type_ids)
        b, _ = ours(input_ids, mask.long(), token_type_ids)
    torch.testing.assert_close(a, b)


@pytest.mark.skipif(not full_size(), reason="published size: set ARCHCC_FULL=1")
def test_full_size(compiled):
    bert = compiled("bert")
    ours, ref = _pair(bert, {})
    input_ids, token_type_ids, mask = _inputs(bert, {}, batch=2, T=128)
    with torch.no_grad():
        hidden, _ = ours(input_ids, mask, token_type_ids)
        expected = ref(input_ids=input_ids, token_type_ids=token_type_ids,
                       attention_mask=mask.long()).last_hidden_state
    print(f"bert full: max abs err {(hidden - expected).abs().max().item():.3g}, "
          f"params {sum(p.numel() for p in ours.parameters())}")
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    torch.testing.assert_close(hidden, expected, atol=1e-4, rtol=1e-4)


def test_optional_inputs_default_as_in_hugging_face(compiled):
    """BertModel(input_ids) means attention_mask all ones and token_type_ids zeros; so
    does the generated forward, whose arguments follow BertModel.forward's order."""
    bert = compiled("bert")
    ours, ref = _pair(bert, SMALL)
    input_ids = torch.randint(0, 50, (2, 9))
    with torch.no_grad():
        hidden, _ = ours(input_ids)
        expected = ref(input_ids).last_hidden_state
    torch.testing.assert_close(hidden, expected, atol=1e-5, rtol=1e-5)
