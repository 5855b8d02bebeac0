"""Generated ViT vs Hugging Face ViTForImageClassification and timm VisionTransformer:
patchify with CLS token and learned positions, pre-norm encoder, CLS-token classifier."""

import pytest
import torch

transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")

from tests.conftest import full_size  # noqa: E402

SMALL = dict(image_size=32, patch_size=8, num_channels=3, hidden_size=64, num_hidden_layers=2,
             num_attention_heads=4, intermediate_size=128, num_labels=10)
# the same model in timm's words (vit_base_patch16_224 is this at 224/16/768/12/12)
TIMM_SMALL = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4,
                  num_classes=10)


def _hf_pair(vit, sizes):
    ref = transformers.ViTForImageClassification(transformers.ViTConfig(**sizes)).eval()
    ours = vit.Model(vit.Config(**sizes)).eval()
    ours.load_state_dict(vit.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    return ours, ref


def _timm_pair(vit, sizes, timm_sizes):
    ref = timm.create_model("vit_base_patch16_224", pretrained=False, **timm_sizes).eval()
    with torch.no_grad():  # timm starts CLS token and positions near zero: make them count
        ref.cls_token.normal_()
        ref.pos_embed.normal_()
    ours = vit.Model(vit.Config(**sizes, layer_norm_eps=1e-6)).eval()
    ours.load_state_dict(vit.convert_state_dict(ref.state_dict(), "timm"), strict=True)
    return ours, ref


@pytest.mark.parametrize("opt_level", [0, 1, 2])
def test_hidden_state_and_logits_match_hf(compiled, opt_level):
    vit = compiled("vit", opt_level)
    ours, ref = _hf_pair(vit, SMALL)
    (pixels,) = vit.example_inputs(batch=2, config=vit.Config(**SMALL))
    assert pixels.shape == (2, 3, 32, 32)
    with torch.no_grad():
        hidden, logits = ours(pixels)
        expected = ref.vit(pixel_values=pixels).last_hidden_state
        expected_logits = ref(pixel_values=pixels).logits
    assert hidden.shape == (2, 17, 64)  # 16 patches + CLS
    torch.testing.assert_close(hidden, expected)
    torch.testing.assert_close(logits, expected_logits)


def test_features_and_logits_match_timm(compiled):
    vit = compiled("vit")
    ours, ref = _timm_pair(vit, dict(SMALL, intermediate_size=256), TIMM_SMALL)
    (pixels,) = vit.example_inputs(batch=2, config=vit.Config(**SMALL))
    with torch.no_grad():
        hidden, logits = ours(pixels)
        torch.testing.assert_close(hidden, ref.forward_features(pixels))
        torch.testing.assert_close(logits, ref(pixels))


@pytest.mark.skipif(not full_size(), reason="published size: set ARCHCC_FULL=1")
def test_full_size(compiled):
    vit = compiled("vit")
    ours, ref = _hf_pair(vit, {"num_labels": 1000})  # ViTConfig's own default head has 2
    (pixels,) = vit.example_inputs(batch=2)
    with torch.no_grad():
        hidden, _ = ours(pixels)
        expected = ref.vit(pixel_values=pixels).last_hidden_state
    print(f"vit full (hf): max abs err {(hidden - expected).abs().max().item():.3g}, "
          f"params {sum(p.numel() for p in ours.parameters())}")
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    torch.testing.assert_close(hidden, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.skipif(not full_size(), reason="published size: set ARCHCC_FULL=1")
def test_full_size_timm(compiled):
    """vit_base_patch16_224 at its published size: 86,567,656 parameters."""
    vit = compiled("vit")
    ours, ref = _timm_pair(vit, {}, {})
    (pixels,) = vit.example_inputs(batch=2)
    with torch.no_grad():
        _, logits = ours(pixels)
        expected = ref(pixels)
    n_ours = sum(p.numel() for p in ours.parameters())
    print(f"vit_base_patch16_224 (timm): max abs err "
          f"{(logits - expected).abs().max().item():.3g}, params {n_ours}")
    assert n_ours == sum(p.numel() for p in ref.parameters())
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
