"""Generated MLP-Mixer vs timm MlpMixer (mixer_b16_224's class): token-mixing MLP over the
transposed sequence, channel-mixing MLP, mean pooling."""

import pytest
import torch

timm = pytest.importorskip("timm")

from tests.conftest import full_size  # noqa: E402

SMALL = dict(img_size=32, patch_size=8, embed_dim=64, num_blocks=2, num_classes=10)


def _pair(mixer, sizes):
    if sizes:  # mixer_b16_224 fixes its sizes; the class is the same
        from timm.models.mlp_mixer import MlpMixer

        ref = MlpMixer(**sizes).eval()
    else:
        ref = timm.create_model("mixer_b16_224", pretrained=False).eval()
    ours = mixer.Model(mixer.Config(**sizes)).eval()
    ours.load_state_dict(mixer.convert_state_dict(ref.state_dict(), "timm"), strict=True)
    return ours, ref


@pytest.mark.parametrize("opt_level", [0, 1])
def test_logits_match_timm(compiled, opt_level):
    mixer = compiled("mlp_mixer", opt_level)
    ours, ref = _pair(mixer, SMALL)
    (pixels,) = mixer.example_inputs(batch=2, config=mixer.Config(**SMALL))
    with torch.no_grad():
        logits = ours(pixels)
        torch.testing.assert_close(logits, ref(pixels))
    assert logits.shape == (2, 10)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())


@pytest.mark.skipif(not full_size(), reason="published size: set ARCHCC_FULL=1")
def test_full_size(compiled):
    """mixer_b16_224 at its published size: 59,880,472 parameters."""
    mixer = compiled("mlp_mixer")
    ours, ref = _pair(mixer, {})
    (pixels,) = mixer.example_inputs(batch=2)
    with torch.no_grad():
        logits, expected = ours(pixels), ref(pixels)
    n_ours = sum(p.numel() for p in ours.parameters())
    print(f"mixer_b16_224 (timm): max abs err {(logits - expected).abs().max().item():.3g}, "
          f"params {n_ours}")
    assert n_ours == sum(p.numel() for p in ref.parameters())
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
