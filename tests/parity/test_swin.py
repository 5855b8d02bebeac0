"""Generated Swin vs timm SwinTransformer (swin_tiny_patch4_window7_224's class), full forward:
windowed attention, cyclic shift masks, relative position bias tables, patch merging, four
stages of different widths and heads."""

import pytest
import torch

timm = pytest.importorskip("timm")

from tests.conftest import full_size  # noqa: E402

# Swin-T's layout (224 px, patch 4, window 7: grids 56, 28, 14, 7) at a quarter of its width
SMALL = dict(embed_dim=24, depth_0=2, depth_1=2, depth_2=2, depth_3=2, heads_0=1, heads_1=2,
             heads_2=3, heads_3=4, num_classes=10)
TIMM_SMALL = dict(embed_dim=24, depths=(2, 2, 2, 2), num_heads=(1, 2, 3, 4), num_classes=10)


def _pair(swin, sizes, timm_sizes):
    if timm_sizes:  # swin_tiny_patch4_window7_224 fixes its sizes; the class is the same
        from timm.models.swin_transformer import SwinTransformer

        ref = SwinTransformer(img_size=224, patch_size=4, window_size=7, **timm_sizes).eval()
    else:
        ref = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False).eval()
    with torch.no_grad():  # timm starts the bias tables near zero: make them count
        for name, p in ref.named_parameters():
            if name.endswith("relative_position_bias_table"):
                p.normal_()
    ours = swin.Model(swin.Config(**sizes)).eval()
    ours.load_state_dict(swin.convert_state_dict(ref.state_dict(), "timm"), strict=True)
    return ours, ref


@pytest.mark.parametrize("opt_level", [0, 1, 2])
def test_logits_match_timm(compiled, opt_level):
    """Batch 2: at -O1 and up the windows fold into SDPA's batch, the shift mask expanded."""
    swin = compiled("swin", opt_level)
    ours, ref = _pair(swin, SMALL, TIMM_SMALL)
    pixels = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        logits = ours(pixels)
        torch.testing.assert_close(logits, ref(pixels))
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())


def test_shift_mask_and_relative_index_match_timm(compiled):
    swin = compiled("swin")
    ours, ref = _pair(swin, SMALL, TIMM_SMALL)
    shifted, theirs = ours.stage_0[1].attn, ref.layers[0].blocks[1]
    assert shifted.shift == theirs.shift_size[0] == 3
    torch.testing.assert_close(shifted.attn_mask[:, 0], theirs.attn_mask)
    assert torch.equal(shifted.relative_position_index, theirs.attn.relative_position_index)
    assert not hasattr(ours.stage_0[0].attn, "attn_mask")  # even layers do not shift
    assert ref.layers[3].blocks[1].shift_size == (0, 0)  # 7 x 7 grid = one window
    assert "ShiftedBlock_3" not in type(ours.stage_3[1]).__name__


@pytest.mark.skipif(not full_size(), reason="published size: set ARCHCC_FULL=1")
def test_full_size(compiled):
    """swin_tiny_patch4_window7_224 at its published size: 28,288,354 parameters."""
    swin = compiled("swin")
    ours, ref = _pair(swin, {}, {})
    pixels = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        logits, expected = ours(pixels), ref(pixels)
    n_ours = sum(p.numel() for p in ours.parameters())
    print(f"swin_tiny_patch4_window7_224 (timm): max abs err "
          f"{(logits - expected).abs().max().item():.3g}, params {n_ours}")
    assert n_ours == sum(p.numel() for p in ref.parameters())
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
