"""Generated DDPM UNet vs diffusers UNet2DModel: ResNet blocks with the time embedding
injected, skips pushed on the way down and popped on the way up, attention where the block
types say, up/down sampling — one generated file for 2, 3 and 4 resolutions (a Config)."""

import dataclasses

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from tests.conftest import full_size  # noqa: E402

# google/ddpm-cifar10-32's UNet2DModel config (the spec's defaults)
DDPM_CIFAR10 = dict(
    sample_size=32, in_channels=3, out_channels=3, layers_per_block=2,
    block_out_channels=(128, 256, 256, 256), norm_num_groups=32, norm_eps=1e-6,
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=None, downsample_padding=0, flip_sin_to_cos=False, freq_shift=1)
CASES = {
    # the same topology at a small size; 2 attention heads of 16 channels
    "4 resolutions": dict(DDPM_CIFAR10, sample_size=16, block_out_channels=(16, 32, 32, 32),
                          norm_num_groups=8, attention_head_dim=16),
    # attention in the lowest resolution, one layer per block, the mid block scaled
    "2 resolutions": dict(DDPM_CIFAR10, sample_size=16, block_out_channels=(16, 32),
                          layers_per_block=1, norm_num_groups=8, attention_head_dim=8,
                          down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                          up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                          mid_block_scale_factor=1.4142),
    # attention first and last, channels that grow at every level, one head
    "3 resolutions": dict(DDPM_CIFAR10, sample_size=16, block_out_channels=(8, 16, 24),
                          norm_num_groups=4, norm_eps=1e-5, freq_shift=0,
                          down_block_types=("AttnDownBlock2D", "DownBlock2D",
                                            "AttnDownBlock2D"),
                          up_block_types=("AttnUpBlock2D", "UpBlock2D", "AttnUpBlock2D")),
}


def _config(unet, cfg: dict):
    """diffusers' kwargs are the Config's names (its None head width is 0 here)."""
    names = {f.name for f in dataclasses.fields(unet.Config)}
    ours = {k: v for k, v in cfg.items() if k in names}
    ours["attention_head_dim"] = cfg["attention_head_dim"] or 0
    return unet.Config(**ours)


def _pair(unet, cfg):
    ref = diffusers.UNet2DModel(**cfg).eval()
    with torch.no_grad():  # GroupNorms start at ones/zeros: make them count
        for name, p in ref.named_parameters():
            if "norm" in name:
                p.normal_()
    ours = unet.Model(_config(unet, cfg)).eval()
    ours.load_state_dict(unet.convert_state_dict(ref.state_dict(), "diffusers"), strict=True)
    return ours, ref


@pytest.mark.parametrize("opt_level", [0, 2])
@pytest.mark.parametrize("case", sorted(CASES))
def test_sample_matches_diffusers(compiled, case, opt_level):
    unet = compiled("ddpm_unet", opt_level)
    cfg = CASES[case]
    ours, ref = _pair(unet, cfg)
    sample, timestep = unet.example_inputs(batch=2, config=_config(unet, cfg))
    assert sample.shape == (2, 3, 16, 16) and timestep.dtype == torch.int64
    timestep = torch.tensor([3, 817])  # two very different noise levels
    with torch.no_grad():
        out = ours(sample, timestep)
        expected = ref(sample, timestep).sample
    assert out.shape == sample.shape
    torch.testing.assert_close(out, expected)
    assert len(ours.down_blocks) == len(cfg["block_out_channels"])
    # the time embedding matters: another timestep gives another prediction
    with torch.no_grad():
        assert not torch.allclose(ours(sample, torch.tensor([500, 500])), out)


def test_parameter_names_are_complete(compiled):
    """Every diffusers tensor lands on one of ours and none is left over (strict load)."""
    unet = compiled("ddpm_unet")
    ours, ref = _pair(unet, CASES["4 resolutions"])
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    keys = ours.state_dict()
    assert "up_blocks.2.layers.1.attn.to_out.weight" in keys
    assert not any(k.startswith("up_blocks.1.layers.0.attn") for k in keys)  # UpBlock2D


def test_skips_balance(compiled):
    """The down path pushes n * (layers_per_block + 1) skips; the up path pops them all."""
    unet = compiled("ddpm_unet")
    model = unet.Model(_config(unet, CASES["3 resolutions"])).eval()
    pushed = []
    for block in model.down_blocks:
        block.register_forward_hook(lambda m, args, out: pushed.append(len(args[2])))
    for block in model.up_blocks:
        block.register_forward_hook(lambda m, args, out: pushed.append(len(args[2])))
    with torch.no_grad():
        model(torch.randn(1, 3, 16, 16), torch.tensor([10]))
    assert pushed == [3, 6, 9, 6, 3, 0]


@pytest.mark.skipif(not full_size(), reason="published size: set ARCHCC_FULL=1")
def test_full_size(compiled):
    unet = compiled("ddpm_unet")
    ours, ref = _pair(unet, DDPM_CIFAR10)
    sample, timestep = unet.example_inputs(batch=2)
    with torch.no_grad():
        out = ours(sample, timestep)
        expected = ref(sample, timestep).sample
    count = sum(p.numel() for p in ours.parameters())
    print(f"ddpm_unet full: max abs err {(out - expected).abs().max().item():.3g}, "
          f"params {count}")
    assert count == sum(p.numel() for p in ref.parameters())
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
