"""Generated DistilBERT vs Hugging Face DistilBertModel: no token types, a padding mask,
learned and sinusoidal position tables."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from tests.conftest import full_size  # noqa: E402

SMALL = dict(vocab_size=99, dim=64, n_layers=2, n_heads=4, hidden_dim=128,
             max_position_embeddings=40)


def _pair(distilbert, sizes, sinusoidal=False):
    config = transformers.DistilBertConfig(**sizes, sinusoidal_pos_embds=sinusoidal)
    ref = transformers.DistilBertModel(config).eval()
    ours = distilbert.Model(distilbert.Config(**sizes)).eval()
    ours.load_state_dict(distilbert.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    return ours, ref


def _inputs(distilbert, sizes, batch=3, T=12):
    input_ids, mask = distilbert.example_inputs(batch, distilbert.Config(**sizes), T=T)
    mask = mask.clone()
    mask[0, -4:] = False  # padding in the first sequence
    return input_ids, mask


@pytest.mark.parametrize("opt_level", [0, 2])
@pytest.mark.parametrize("sinusoidal", [False, True])
def test_hidden_state_matches_hf(compiled, opt_level, sinusoidal):
    distilbert = compiled("distilbert", opt_level)
    ours, ref = _pair(distilbert, SMALL, sinusoidal)
    input_ids, mask = _inputs(distilbert, SMALL)
    with torch.no_grad():
        hidden = ours(input_ids, mask)
        expected = ref(input_ids=input_ids, attention_mask=mask.long()).last_hidden_state
    torch.testing.assert_close(hidden[mask], expected[mask])


def test_mask_hides_padding(compiled):
    """Whatever sits in the padded slots, the real tokens' states do not change."""
    distilbert = compiled("distilbert")
    ours, _ = _pair(distilbert, SMALL)
    input_ids, mask = _inputs(distilbert, SMALL)
    other = input_ids.clone()
    other[0, -4:] = (other[0, -4:] + 1) % SMALL["vocab_size"]
    with torch.no_grad():
        a, b = ours(input_ids, mask), ours(other, mask)
    torch.testing.assert_close(a[mask], b[mask])
    assert not torch.allclose(a[0, -4:], b[0, -4:])


@pytest.mark.skipif(not full_size(), reason="published size: set ARCHCC_FULL=1")
def test_full_size(compiled):
    distilbert = compiled("distilbert")
    ours, ref = _pair(distilbert, {})
    input_ids, mask = _inputs(distilbert, {}, batch=2, T=128)
    with torch.no_grad():
        hidden = ours(input_ids, mask)
        expected = ref(input_ids=input_ids, attention_mask=mask.long()).last_hidden_state
    n_ours = sum(p.numel() for p in ours.parameters())
    n_ref = sum(p.numel() for p in ref.parameters())
    print(f"distilbert-base: max abs err {(hidden - expected)[mask].abs().max().item():.3g}, "
          f"params {n_ours} (hf {n_ref})")
    assert n_ours == n_ref
    torch.testing.assert_close(hidden[mask], expected[mask], atol=1e-4, rtol=1e-4)
