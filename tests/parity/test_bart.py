"""Generated BART vs Hugging Face BartModel: learned positions offset by 2, layernorm on the
embeddings, post-norm layers, cross attention over a padded source, scaled embeddings."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from tests.conftest import full_size  # noqa: E402

SMALL = dict(vocab_size=99, max_position_embeddings=40, d_model=64, encoder_layers=2,
             decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
             encoder_ffn_dim=128, decoder_ffn_dim=128)
# bart-base's config.json (BartConfig() defaults are bart-large)
BASE = dict(vocab_size=50265, max_position_embeddings=1024, d_model=768, encoder_layers=6,
            decoder_layers=6, encoder_attention_heads=12, decoder_attention_heads=12,
            encoder_ffn_dim=3072, decoder_ffn_dim=3072)


def _pair(bart, sizes, scale_embedding=False):
    config = transformers.BartConfig(**{**BASE, **sizes}, scale_embedding=scale_embedding)
    ref = transformers.BartModel(config).eval()
    scale = sizes.get("d_model", 768) ** 0.5 if scale_embedding else 1.0
    ours = bart.Model(bart.Config(**sizes, embed_scale=scale)).eval()
    ours.load_state_dict(bart.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    return ours, ref


def _inputs(bart, sizes, batch=3, S=14, T=9):
    ids, mask, dec = bart.example_inputs(batch, bart.Config(**sizes), S=S, T=T)
    mask = mask.clone()
    mask[0, -4:] = False  # padding in the first source sequence
    return ids, mask, dec


@pytest.mark.parametrize("opt_level", [0, 1])
@pytest.mark.parametrize("scale_embedding", [False, True])
def test_last_hidden_state_matches_hf(compiled, opt_level, scale_embedding):
    bart = compiled("bart", opt_level)
    ours, ref = _pair(bart, SMALL, scale_embedding)
    ids, mask, dec = _inputs(bart, SMALL)
    with torch.no_grad():
        out = ours(ids, mask, dec)
        expected = ref(input_ids=ids, attention_mask=mask.long(), decoder_input_ids=dec)
    torch.testing.assert_close(out, expected.last_hidden_state)


def test_padding_is_hidden_from_the_decoder(compiled):
    bart = compiled("bart")
    ours, _ = _pair(bart, SMALL)
    ids, mask, dec = _inputs(bart, SMALL, batch=1)
    other = ids.clone()
    other[0, -4:] = (other[0, -4:] + 1) % SMALL["vocab_size"]
    with torch.no_grad():
        torch.testing.assert_close(ours(ids, mask, dec), ours(other, mask, dec))


@pytest.mark.skipif(not full_size(), reason="published size: set ARCHCC_FULL=1")
def test_full_size(compiled):
    bart = compiled("bart")
    ours, ref = _pair(bart, {})
    ids, mask, dec = _inputs(bart, {}, batch=2, S=64, T=32)
    with torch.no_grad():
        out = ours(ids, mask, dec)
        expected = ref(input_ids=ids, attention_mask=mask.long(),
                       decoder_input_ids=dec).last_hidden_state
    n_ours = sum(p.numel() for p in ours.parameters())
    n_ref = sum(p.numel() for p in ref.parameters())
    print(f"bart-base: max abs err {(out - expected).abs().max().item():.3g}, "
          f"params {n_ours} (hf {n_ref})")
    assert n_ours == n_ref
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
