"""Generated T5 vs Hugging Face T5ForConditionalGeneration (logits) and T5Model (decoder's
last hidden state): relative position buckets, RMSNorm, unscaled scores, padding masks."""

from pathlib import Path

import pytest
import torch

import archcc

transformers = pytest.importorskip("transformers")

from tests.conftest import full_size  # noqa: E402

# offsets up to 23 reach the log-spaced buckets (exact = 4 here) and the max_distance cap
SMALL = dict(vocab_size=99, d_model=64, d_ff=128, num_layers=2, num_decoder_layers=2,
             num_heads=4, relative_attention_num_buckets=16, relative_attention_max_distance=20)


def _pair(t5, sizes):
    config = transformers.T5Config(**sizes, d_kv=sizes.get("d_model", 512)
                                   // sizes.get("num_heads", 8))
    ref = transformers.T5ForConditionalGeneration(config).eval()
    ours = t5.Model(t5.Config(**sizes)).eval()
    ours.load_state_dict(t5.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    return ours, ref


def _inputs(t5, sizes, batch=3, S=24, T=20):
    ids, mask, dec = t5.example_inputs(batch, t5.Config(**sizes), S=S, T=T)
    mask = mask.clone()
    mask[0, -5:] = False  # padding in the first source sequence
    return ids, mask, dec


@pytest.mark.parametrize("opt_level", [0, 1])
def test_logits_match_hf(compiled, opt_level):
    t5 = compiled("t5", opt_level)
    ours, ref = _pair(t5, SMALL)
    ids, mask, dec = _inputs(t5, SMALL)
    with torch.no_grad():
        logits = ours(ids, mask, dec)
        expected = ref(input_ids=ids, attention_mask=mask.long(), decoder_input_ids=dec).logits
    torch.testing.assert_close(logits, expected)


def test_last_hidden_state_matches_t5model(compiled):
    t5 = compiled("t5")
    ours, ref = _pair(t5, SMALL)
    base = transformers.T5Model(ref.config).eval()
    base.load_state_dict(ref.state_dict(), strict=False)  # all but lm_head
    ids, mask, dec = _inputs(t5, SMALL)
    seen = []
    ours.decoder_norm.register_forward_hook(lambda mod, args, out: seen.append(out))
    with torch.no_grad():
        ours(ids, mask, dec)
        expected = base(input_ids=ids, attention_mask=mask.long(), decoder_input_ids=dec)
    torch.testing.assert_close(seen[0], expected.last_hidden_state)


def test_v1_1_gated_gelu_and_untied_head_match_hf(tmp_path):
    """tests/specs/compose/t5_v1_1.yaml: the same spec with `gated: true, act: gelu_tanh`."""
    spec = Path(__file__).parents[1] / "specs" / "compose" / "t5_v1_1.yaml"
    t5 = archcc.build(spec, out_dir=tmp_path)
    config = transformers.T5Config(**SMALL, d_kv=16, feed_forward_proj="gated-gelu",
                                   tie_word_embeddings=False)
    ref = transformers.T5ForConditionalGeneration(config).eval()
    ours = t5.Model(t5.Config(**SMALL)).eval()
    ours.load_state_dict(t5.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    ids, mask, dec = _inputs(t5, SMALL)
    with torch.no_grad():
        logits = ours(ids, mask, dec)
        expected = ref(input_ids=ids, attention_mask=mask.long(), decoder_input_ids=dec).logits
    # HF's gelu_new spells the tanh formula out; F.gelu(approximate="tanh") rounds differently
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_buckets_match_hf_at_every_offset(compiled, bidirectional):
    """Bucket edges are where a reordered log formula would round differently."""
    t5 = compiled("t5")
    ours = t5.Model(t5.Config()).eval()
    layer = ours.encoder_bias if bidirectional else ours.decoder_bias
    with torch.no_grad():  # table row b holds the value b: the bias then reads back buckets
        layer.table.weight.copy_(torch.arange(32.0)[:, None].expand(32, 8))
        got = layer(torch.zeros(1, 300, 1))[0, 0].long()
    offsets = torch.arange(300)[None, :] - torch.arange(300)[:, None]
    want = transformers.models.t5.modeling_t5.T5Attention._relative_position_bucket(
        offsets, bidirectional=bidirectional, num_buckets=32, max_distance=128)
    assert torch.equal(got, want)


def test_decoder_is_causal_and_mask_hides_padding(compiled):
    t5 = compiled("t5")
    ours, _ = _pair(t5, SMALL)
    ids, mask, dec = _inputs(t5, SMALL, batch=1)
    dec2, ids2 = dec.clone(), ids.clone()
    dec2[0, -1] = (dec2[0, -1] + 1) % SMALL["vocab_size"]
    ids2[0, -5:] = (ids2[0, -5:] + 1) % SMALL["vocab_size"]  # only padded source tokens
    with torch.no_grad():
        a, b, c = ours(ids, mask, dec), ours(ids, mask, dec2), ours(ids2, mask, dec)
    torch.testing.assert_close(a[:, :-1], b[:, :-1])
    assert not torch.allclose(a[:, -1], b[:, -1])
    torch.testing.assert_close(a, c)


@pytest.mark.skipif(not full_size(), reason="published size: set ARCHCC_FULL=1")
def test_full_size(compiled):
    t5 = compiled("t5")
    ours, ref = _pair(t5, {})
    ids, mask, dec = _inputs(t5, {}, batch=2, S=64, T=32)
    with torch.no_grad():
        logits = ours(ids, mask, dec)
        expected = ref(input_ids=ids, attention_mask=mask.long(), decoder_input_ids=dec).logits
    n_ours = sum(p.numel() for p in ours.parameters())
    n_ref = sum(p.numel() for p in ref.parameters())
    print(f"t5-small: max abs err {(logits - expected).abs().max().item():.3g}, "
          f"params {n_ours} (hf {n_ref})")
    assert n_ours == n_ref
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
