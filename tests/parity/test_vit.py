"""Generated ViT vs Hugging Face ViTModel: patchify, CLS token, learned positions, pooler."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from tests.conftest import full_size  # noqa: E402

SMALL = dict(image_size=32, patch_size=8, num_channels=3, hidden_size=64, num_hidden_layers=2,
             num_attention_heads=4, intermediate_size=128)


def _pair(vit, sizes):
    ref = transformers.ViTModel(transformers.ViTConfig(**sizes)).eval()
    ours = vit.Model(vit.Config(**sizes)).eval()
    ours.load_state_dict(vit.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    return ours, ref


@pytest.mark.parametrize("opt_level", [0, 1])
def test_hidden_state_and_pooler_match_hf(compiled, opt_level):
    vit = compiled("vit", opt_level)
    ours, ref = _pair(vit, SMALL)
    (pixels,) = vit.example_inputs(batch=2, config=vit.Config(**SMALL))
    assert pixels.shape == (2, 3, 32, 32)
    with torch.no_grad():
        hidden, pooled = ours(pixels)
        expected = ref(pixel_values=pixels)
    assert hidden.shape == (2, 17, 64)  # 16 patches + CLS
    torch.testing.assert_close(hidden, expected.last_hidden_state)
    torch.testing.assert_close(pooled, expected.pooler_output)


@pytest.mark.skipif(not full_size(), reason="published size: set ARCHCC_FULL=1")
def test_full_size(compiled):
    vit = compiled("vit")
    ours, ref = _pair(vit, {})
    (pixels,) = vit.example_inputs(batch=2)
    with torch.no_grad():
        hidden, _ = ours(pixels)
        expected = ref(pixel_values=pixels).last_hidden_state
    print(f"vit full: max abs err {(hidden - expected).abs().max().item():.3g}, "
          f"params {sum(p.numel() for p in ours.parameters())}")
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    torch.testing.assert_close(hidden, expected, atol=1e-4, rtol=1e-4)
