"""Image ops (conv2d, groupnorm, up/down sampling, timesteps, resblock) against diffusers'
blocks and torch, at the facets specs/ddpm_unet.yaml does not use; their shape rules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from archcc.api import compile_spec

diffusers = pytest.importorskip("diffusers")
from diffusers.models.embeddings import get_timestep_embedding  # noqa: E402
from diffusers.models.resnet import Downsample2D, ResnetBlock2D  # noqa: E402

SPEC = Path(__file__).parent / "specs" / "image_ops.yaml"


@pytest.fixture(scope="module")
def ops(tmp_path_factory):
    import archcc

    module = archcc.build(SPEC, out_dir=tmp_path_factory.mktemp("image_ops"))
    model = module.Model(module.Config()).eval()
    x, t = module.example_inputs(batch=2)
    with torch.no_grad():
        return model, x, t, model(x, t)


def test_grouped_strided_conv_groupnorm_and_nearest_upsampling(ops):
    model, x, _, (y, *_) = ops
    expected = F.conv2d(x, model.grouped.weight, stride=2, padding=2, groups=4)
    expected = F.group_norm(expected, 4, eps=1e-3)
    expected = F.interpolate(expected, scale_factor=3, mode="nearest")
    assert y.shape == (2, 16, 21, 21)  # floor((12 + 4 - 3) / 2) + 1 = 7, times 3
    torch.testing.assert_close(y, expected)


def test_downsampling_matches_diffusers(ops):
    model, x, _, (_, down, pool, *_) = ops
    ref = Downsample2D(8, use_conv=True, padding=1, name="op").eval()  # as in UNet blocks
    ref.load_state_dict(model.down.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(down, ref(x))
        torch.testing.assert_close(pool, Downsample2D(8, use_conv=False)(x))
    assert down.shape == pool.shape == (2, 8, 6, 6)


def test_resblock_without_time_embedding_matches_diffusers(ops):
    model, x, _, (_, _, _, res, _) = ops
    ref = ResnetBlock2D(in_channels=8, out_channels=16, temb_channels=None, groups=4,
                        non_linearity="relu").eval()
    ref.load_state_dict(model.res.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(res, ref(x, None))


def test_timesteps_follow_get_timestep_embedding(ops):
    """cos first, no frequency shift, scaled angles, a short max period: every facet."""
    _, _, t, (*_, emb) = ops
    expected = get_timestep_embedding(t, 6, flip_sin_to_cos=True, downscale_freq_shift=0,
                                      scale=2, max_period=500)
    torch.testing.assert_close(emb, expected, rtol=0, atol=0)


@pytest.mark.parametrize("flip,shift", [(False, 1), (True, 0)])
def test_timesteps_defaults_and_ddpm_convention_are_bit_exact(tmp_path, flip, shift):
    import archcc

    text = SPEC.read_text().replace(
        "flip_sin_to_cos: true, downscale_freq_shift: 0, scale: 2, max_period: 500",
        f"flip_sin_to_cos: {str(flip).lower()}, downscale_freq_shift: {shift}")
    (tmp_path / "spec.yaml").write_text(text)
    module = archcc.build(tmp_path / "spec.yaml", out_dir=tmp_path)
    t = torch.tensor([0, 1, 999, 250])
    emb = module.Model().times(t)
    expected = get_timestep_embedding(t, 6, flip_sin_to_cos=flip, downscale_freq_shift=shift)
    torch.testing.assert_close(emb, expected, rtol=0, atol=0)


def test_inferred_shapes_are_the_real_ones(ops):
    """The shape comments come from conv_side(); torch agrees on every output."""
    model, x, t, outs = ops
    program = compile_spec(SPEC).program
    ctx_subs = {"channels": 8, "side": 12, "temb_dim": 6}
    g = program.model.graph
    returned = g.nodes[g.graph["output"]]["inputs"]
    for node, out in zip(returned, outs, strict=True):
        shape = [int(d.subs({s: ctx_subs.get(str(s), 2) for s in d.free_symbols}))
                 if hasattr(d, "free_symbols") else int(d) for d in g.nodes[node]["shape"]]
        assert tuple(shape) == tuple(out.shape), node
