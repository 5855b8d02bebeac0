"""Generated ConvNeXt vs transformers ConvNextForImageClassification: 2, 3 and 4 stages at
-O0 and -O2, strict load through convert_state_dict(sd, "hf"). Norms, biases and layer
scales are re-drawn (they start at ones, zeros and 1e-6), so every one of them counts."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from tests.conftest import full_size  # noqa: E402

CASES = {  # stages: (hidden_sizes, depths, image side)
    2: ([8, 16], [2, 1], 32),
    3: ([8, 16, 24], [1, 2, 1], 64),
    4: ([8, 16, 24, 32], [1, 1, 3, 1], 96),
}


def redraw(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias") or "layer_scale" in name:
                p.normal_(0, 0.5)


def pair(convnext, hidden_sizes, depths, side, **extra):
    config = transformers.ConvNextConfig(num_stages=len(depths), hidden_sizes=hidden_sizes,
                                         depths=depths, num_labels=10, **extra)
    ref = transformers.ConvNextForImageClassification(config).eval()
    redraw(ref)
    ours = convnext.Model(convnext.Config(num_stages=len(depths), hidden_sizes=tuple(hidden_sizes),
                                          depths=tuple(depths), num_labels=10, image_size=side,
                                          **extra)).eval()
    ours.load_state_dict(convnext.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    return ours, ref


@pytest.mark.parametrize("opt_level", [0, 2])
@pytest.mark.parametrize("stages", sorted(CASES))
def test_logits_match_transformers(compiled, opt_level, stages):
    hidden_sizes, depths, side = CASES[stages]
    ours, ref = pair(compiled("convnext", opt_level), hidden_sizes, depths, side)
    pixels = torch.randn(2, 3, side, side)
    with torch.no_grad():
        torch.testing.assert_close(ours(pixels), ref(pixels).logits)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    assert len(ours.stages) == stages


def test_drop_path_rates_and_eps_follow_the_config(compiled):
    """Stochastic depth grows linearly over all blocks (HF: linspace(0, rate, sum(depths))),
    and a non-default pooled-norm eps reaches the last LayerNorm only."""
    convnext = compiled("convnext")
    ours, ref = pair(convnext, [8, 16, 24], [1, 2, 1], 64, drop_path_rate=0.3,
                     layer_norm_eps=1e-6, layer_scale_init_value=0.5)
    ours_rates = [layer.drop_path.p for stage in ours.stages for layer in stage.layers]
    ref_rates = [getattr(layer.drop_path, "drop_prob", 0.0) for stage in ref.convnext.encoder.stages
                 for layer in stage.layers]  # rate 0: nn.Identity
    assert ours_rates == pytest.approx(ref_rates) and ours_rates[-1] == pytest.approx(0.3)
    assert ours.layernorm.eps == 1e-6 and ours.embeddings_norm.eps == 1e-6
    fresh = convnext.Model(convnext.Config(layer_scale_init_value=0.5, num_stages=2,
                                           hidden_sizes=(8, 16), depths=(1, 1)))
    assert torch.equal(fresh.stages[1].layers[0].layer_scale_parameter, torch.full((16,), 0.5))
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(pixels), ref(pixels).logits)


def test_one_class_per_block_and_stage_loops(compiled):
    """The generated file loops over stages and layers: one class each, no unrolled copies."""
    import inspect
    import re

    convnext = compiled("convnext")
    source = inspect.getsource(convnext)
    assert source.count("class ConvNextLayer(") == 1 and source.count("class ConvNextStage(") == 1
    assert re.search(r"for \w+ in self\.stages:", source)
    assert re.search(r"for \w+ in self\.layers:", source)


@pytest.mark.skipif(not full_size(), reason="published size: set ARCHCC_FULL=1")
def test_full_size(compiled):
    """ConvNeXt-T (facebook/convnext-tiny-224's config): 28,589,128 parameters."""
    convnext = compiled("convnext")
    ref = transformers.ConvNextForImageClassification(
        transformers.ConvNextConfig(num_labels=1000)).eval()
    redraw(ref)
    ours = convnext.Model(convnext.Config()).eval()
    ours.load_state_dict(convnext.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    pixels = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(pixels), ref(pixels).logits, atol=1e-4, rtol=1e-4)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
