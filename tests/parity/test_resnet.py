"""Generated ResNet vs transformers ResNetForImageClassification: basic and bottleneck layers,
the stride on the 3x3 (v1.5) or the first 1x1 (v1), a strided first stage, 2 to 4 stages, at
-O0 and -O2, strict load through convert_state_dict(sd, "hf"). Batch-norm statistics,
weights and biases are re-drawn, so eval mode uses non-trivial running statistics."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from tests.conftest import full_size  # noqa: E402

CASES = {
    "basic": dict(layer_type="basic", hidden_sizes=[8, 16, 32], depths=[2, 1, 1]),
    "bottleneck": dict(layer_type="bottleneck", hidden_sizes=[32, 64], depths=[2, 1]),
    "v1_strided_first": dict(layer_type="bottleneck", hidden_sizes=[16, 32, 48, 64],
                             depths=[1, 2, 1, 1], downsample_in_bottleneck=True,
                             downsample_in_first_stage=True),
}


def redraw(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "normalization" in name or name.endswith("bias"):
                p.normal_(0, 0.5)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.normal_()
            elif name.endswith("running_var"):
                b.uniform_(0.5, 2.0)


def pair(resnet, case: str, side: int = 64):
    sizes = CASES[case]
    config = transformers.ResNetConfig(embedding_size=8, num_labels=10, **sizes)
    ref = transformers.ResNetForImageClassification(config).eval()
    redraw(ref)
    ours = resnet.Model(resnet.Config(
        embedding_size=8, num_labels=10, image_size=side, layer_type=sizes["layer_type"],
        hidden_sizes=tuple(sizes["hidden_sizes"]), depths=tuple(sizes["depths"]),
        downsample_in_bottleneck=sizes.get("downsample_in_bottleneck", False),
        downsample_in_first_stage=sizes.get("downsample_in_first_stage", False))).eval()
    ours.load_state_dict(resnet.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    return ours, ref


@pytest.mark.parametrize("opt_level", [0, 2])
@pytest.mark.parametrize("case", sorted(CASES))
def test_logits_match_transformers(compiled, opt_level, case):
    ours, ref = pair(compiled("resnet", opt_level), case)
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(pixels), ref(pixels).logits)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    assert len(ours.stages) == len(CASES[case]["depths"])


def test_shortcuts_exist_where_transformers_builds_them(compiled):
    """A projection shortcut where channels or stride change, nn.Identity elsewhere."""
    ours, ref = pair(compiled("resnet"), "basic")
    for stage, theirs in zip(ours.stages, ref.resnet.encoder.stages, strict=True):
        for layer, their in zip(stage.layers, theirs.layers, strict=True):
            assert type(layer.shortcut).__name__ == type(their.shortcut).__name__
    assert type(ours.stages[0].layers[0].shortcut).__name__ == "Identity"  # 8 -> 8, stride 1
    assert type(ours.stages[1].layers[0].shortcut).__name__ == "ResNetShortCut"


def test_training_step_matches_transformers(compiled):
    """Train mode: batch statistics normalise and every BN's running statistics move the
    same way in both models (all three buffers are compared after one step)."""
    ours, ref = pair(compiled("resnet"), "bottleneck")
    ours.train()
    ref.train()
    pixels = torch.randn(4, 3, 64, 64)
    torch.testing.assert_close(ours(pixels), ref(pixels).logits)
    theirs = compiled("resnet").convert_state_dict(ref.state_dict(), "hf")
    for key, value in ours.state_dict().items():
        torch.testing.assert_close(value, theirs[key], msg=key)


@pytest.mark.skipif(not full_size(), reason="published size: set ARCHCC_FULL=1")
def test_full_size(compiled):
    """ResNet-50 (microsoft/resnet-50's config): 25,557,032 parameters."""
    resnet = compiled("resnet")
    ref = transformers.ResNetForImageClassification(
        transformers.ResNetConfig(num_labels=1000)).eval()
    redraw(ref)
    ours = resnet.Model(resnet.Config()).eval()
    ours.load_state_dict(resnet.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    pixels = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(pixels), ref(pixels).logits, atol=1e-4, rtol=1e-4)


def test_set_a_string_param_by_its_bare_value(tmp_path):
    """--set layer_type=basic quotes the value (the param is a string), so ResNet-18 is one
    flag away: 11,689,512 parameters, as torchvision's resnet18."""
    from pathlib import Path

    import archcc

    spec = Path(__file__).parents[2] / "specs" / "resnet.yaml"
    sets = ["layer_type=basic", "depths=[2,2,2,2]", "hidden_sizes=[64,128,256,512]"]
    resnet18 = archcc.build(spec, out_dir=tmp_path, sets=sets)
    assert resnet18.Config().layer_type == "basic"
    with torch.device("meta"):
        model = resnet18.Model()
    assert sum(p.numel() for p in model.parameters()) == 11_689_512
