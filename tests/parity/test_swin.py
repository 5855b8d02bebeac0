"""Generated Swin vs timm SwinTransformer, full forward, strict load of timm's own keys:
windowed attention, cyclic shift masks, relative position bias tables, patch merging, and
stages looped over `depths`/`num_heads` — one generated file serves 2, 3 and 4 stages, and
grids no larger than the window (timm clamps the window and stops shifting)."""

import pytest
import torch

timm = pytest.importorskip("timm")

from tests.conftest import full_size  # noqa: E402

# (timm kwargs) -> Config: the names are timm's, so the same dict builds both
CASES = {
    # Swin-T's layout (224 px, patch 4, window 7: grids 56, 28, 14, 7) at a quarter of its width
    "4 stages": dict(img_size=224, embed_dim=24, depths=(2, 2, 2, 2), num_heads=(1, 2, 3, 4),
                     window_size=7, num_classes=10),
    # grids 8, 4 with window 4: stage 1 is one window, so it does not shift
    "2 stages": dict(img_size=32, embed_dim=16, depths=(2, 2), num_heads=(1, 2), window_size=4,
                     num_classes=10),
    # grids 16, 8, 4 with window 8: stage 1 does not shift, stage 2 clamps the window to 4
    "3 stages, clamped": dict(img_size=64, embed_dim=16, depths=(2, 4, 2),
                              num_heads=(1, 2, 4), window_size=8, num_classes=7),
}


def _pair(swin, kwargs):
    from timm.models.swin_transformer import SwinTransformer

    ref = SwinTransformer(patch_size=4, **kwargs).eval()
    with torch.no_grad():  # timm starts the bias tables near zero: make them count
        for name, p in ref.named_parameters():
            if name.endswith("relative_position_bias_table") or "norm" in name \
                    or name.endswith("bias"):
                p.normal_()
    ours = swin.Model(swin.Config(**kwargs)).eval()
    ours.load_state_dict(swin.convert_state_dict(ref.state_dict(), "timm"), strict=True)
    return ours, ref


@pytest.mark.parametrize("opt_level", [0, 2])
@pytest.mark.parametrize("case", sorted(CASES))
def test_logits_match_timm(compiled, case, opt_level):
    """Batch 2: at -O1 and up the windows fold into SDPA's batch, the shift mask expanded."""
    swin = compiled("swin", opt_level)
    kwargs = CASES[case]
    ours, ref = _pair(swin, kwargs)
    pixels = torch.randn(2, 3, kwargs["img_size"], kwargs["img_size"])
    with torch.no_grad():
        torch.testing.assert_close(ours(pixels), ref(pixels))
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    assert len(ours.layers) == len(kwargs["depths"])


def test_shift_masks_windows_and_relative_index_match_timm(compiled):
    swin = compiled("swin")
    for case in CASES.values():
        ours, ref = _pair(swin, case)
        for stage, theirs in zip(ours.layers, ref.layers, strict=True):
            for block, their in zip(stage.blocks, theirs.blocks, strict=True):
                assert getattr(block.attn, "shift", 0) == their.shift_size[0]
                assert block.attn.window == their.window_size[0]
                assert torch.equal(block.attn.relative_position_index,
                                   their.attn.relative_position_index)
                if their.attn_mask is None:  # no shift: the plain class, no roll, no mask
                    assert type(block.attn).__name__ == "WindowAttention"
                else:
                    assert type(block.attn).__name__ == "ShiftedWindowAttention"
                    torch.testing.assert_close(block.attn.attn_mask[:, 0], their.attn_mask)
    assert isinstance(ours.layers[0].downsample, torch.nn.Identity)


def test_swin_s_is_a_config(compiled):
    """Swin-S is Swin-T with 18 blocks in stage 2: a Config, not another spec."""
    swin = compiled("swin")
    with torch.device("meta"):
        tiny = swin.Model(swin.Config())
        small = swin.Model(swin.Config(depths=(2, 2, 18, 2)))
    assert [len(s.blocks) for s in small.layers] == [2, 2, 18, 2]
    count = sum(p.numel() for p in small.parameters())
    assert count == 49_606_258 and sum(p.numel() for p in tiny.parameters()) == 28_288_354


@pytest.mark.skipif(not full_size(), reason="published size: set ARCHCC_FULL=1")
def test_full_size(compiled):
    """swin_tiny_patch4_window7_224 at its published size: 28,288,354 parameters."""
    swin = compiled("swin")
    ours, ref = _pair(swin, {})
    pixels = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        logits, expected = ours(pixels), ref(pixels)
    n_ours = sum(p.numel() for p in ours.parameters())
    print(f"swin_tiny_patch4_window7_224 (timm): max abs err "
          f"{(logits - expected).abs().max().item():.3g}, params {n_ours}")
    assert n_ours == sum(p.numel() for p in ref.parameters())
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
