"""The ops of hierarchical CNNs (batch norm, pooling, depthwise conv, channels-first and
channels-last LayerNorm, layer scale, drop path) against torch, timm and transformers modules,
in eval and in training; their shape rules on odd sides; their located errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archcc
from archcc.api import compile_spec
from archcc.diagnostics import ArchccError

SPECS = Path(__file__).parent / "specs"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("cnn_ops")
    return {level: archcc.build(SPECS / "cnn_ops.yaml", out_dir=out / f"O{level}",
                                opt_level=level) for level in (0, 2)}


def _model(module):
    torch.manual_seed(0)
    model = module.Model(module.Config()).eval()
    with torch.no_grad():  # every norm and gain away from its identity start
        model.bn.weight.normal_(1, 0.3)
        model.bn.bias.normal_(0, 0.3)
        model.bn.running_mean.normal_()
        model.bn.running_var.uniform_(0.5, 2.0)
        model.norm.weight.normal_(1, 0.3)
        model.norm.bias.normal_(0, 0.3)
        model.gamma.normal_()
        model.bn1d.running_mean.normal_()
        model.bn1d.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize("level", [0, 2])
def test_eval_forward_matches_torch_functional(built, level):
    model = _model(built[level])
    x, signal = built[level].example_inputs(batch=3)
    with torch.no_grad():
        y, maxpool, ceilpool, avgpool, gap, adaptive, bn1d = model(x, signal)
        h = F.batch_norm(x, model.bn.running_mean, model.bn.running_var, model.bn.weight,
                         model.bn.bias, eps=1e-3)
        h = F.conv2d(h, model.dwconv.weight, model.dwconv.bias, padding=3, groups=8)
        h = F.layer_norm(h.permute(0, 2, 3, 1), (8,), model.norm.weight, model.norm.bias,
                         eps=1e-6).permute(0, 3, 1, 2)
        torch.testing.assert_close(y, x + model.gamma.view(1, 8, 1, 1) * h)  # eval: no drop
        torch.testing.assert_close(maxpool, F.max_pool2d(x, 3, 2, 1))
        torch.testing.assert_close(ceilpool, F.max_pool2d(x, 2, ceil_mode=True))
        torch.testing.assert_close(avgpool, F.avg_pool2d(x, 3, 2, 1, count_include_pad=False))
        torch.testing.assert_close(gap, x.mean((-2, -1)))
        torch.testing.assert_close(adaptive, F.adaptive_max_pool2d(x, 3))
        torch.testing.assert_close(bn1d, F.batch_norm(signal, model.bn1d.running_mean,
                                                      model.bn1d.running_var, eps=1e-5))


def test_shape_rules_give_torch_sides_on_an_odd_image(built):
    """13 x 13: (13 + 2 - 3) // 2 + 1 = 7; ceil(13 / 2) = 7 (floor would be 6)."""
    program = compile_spec(SPECS / "cnn_ops.yaml").program
    model = program.model
    out = model.graph.nodes[model.output]
    declared = [model.graph.nodes[n]["shape"] for n in out["inputs"]]
    module = built[2]
    x, signal = module.example_inputs(batch=2)
    with torch.no_grad():
        real = [tuple(t.shape) for t in _model(module)(x, signal)]
    assert real == [(2, 8, 13, 13), (2, 8, 7, 7), (2, 8, 7, 7), (2, 8, 7, 7), (2, 8), (2, 8, 3, 3),
                    (2, 8, 5)]
    env = {**program.params, "B": 2}
    assert [tuple(int(d.subs({s: env[s.name] for s in d.free_symbols})) for d in shape)
            for shape in declared] == real


def test_batchnorm_training_updates_running_stats_as_torch(built):
    """Two training steps: batch statistics normalise, the running ones move by momentum,
    num_batches_tracked counts; all three are in state_dict() and load back."""
    model = _model(built[2]).train()
    ref = nn.BatchNorm2d(8, eps=1e-3, momentum=0.2).train()
    ref.load_state_dict(model.bn.state_dict())
    for step in range(2):
        x = torch.randn(4, 8, 13, 13) * (step + 1) + step
        torch.testing.assert_close(model.bn(x), ref(x))
    for key in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(model.bn, key), getattr(ref, key))
    assert int(model.bn.num_batches_tracked) == 2
    keys = set(model.state_dict())
    assert {"bn.running_mean", "bn.running_var", "bn.num_batches_tracked",
            "bn1d.running_mean"} <= keys
    assert "bn1d.weight" not in keys  # affine: false


def test_batchnorm_without_running_stats_keeps_no_buffers(tmp_path):
    spec = (SPECS / "cnn_ops.yaml").read_text().replace(
        "dims: 1, affine: false}", "dims: 1, track_running_stats: false}")
    (tmp_path / "s.yaml").write_text(spec)
    module = archcc.build(tmp_path / "s.yaml", out_dir=tmp_path)
    model = module.Model().eval()
    assert not any(k.startswith("bn1d.running") for k in model.state_dict())
    signal = torch.randn(3, 8, 5)
    torch.testing.assert_close(model.bn1d(signal), F.batch_norm(
        signal, None, None, model.bn1d.weight, model.bn1d.bias, training=True))


def test_drop_path_is_timm_drop_path_per_sample(built):
    """Training: timm's draws exactly (same seed); each sample keeps its whole branch,
    scaled by 1 / (1 - p), or loses it. Eval: the identity."""
    timm_layers = pytest.importorskip("timm.layers")
    module = built[2]
    ours = module.DropPath(0.25).train()
    ref = timm_layers.DropPath(0.25).train()
    x = torch.randn(64, 3, 4, 4)
    torch.manual_seed(1)
    y = ours(x)
    torch.manual_seed(1)
    torch.testing.assert_close(y, ref(x), rtol=0, atol=0)
    kept = (y != 0).flatten(1).all(dim=1)
    dropped = (y == 0).flatten(1).all(dim=1)
    assert bool((kept | dropped).all()) and 0 < int(dropped.sum()) < 64
    torch.testing.assert_close(y[kept], x[kept] / 0.75)
    assert torch.equal(ours.eval()(x), x)
    assert torch.equal(module.DropPath(0.0).train()(x), x)


def test_convnext_layer_matches_hugging_face_strict_load(tmp_path):
    """depthwise 7x7 conv, channels-last LayerNorm, layer scale, drop path, with HF's names:
    ConvNextLayer's state_dict loads strictly (layer_scale_parameter is a plain key)."""
    pytest.importorskip("transformers")
    from transformers import ConvNextConfig
    from transformers.models.convnext.modeling_convnext import ConvNextLayer

    ref = ConvNextLayer(ConvNextConfig(), dim=8).eval()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if "norm" in name or name.endswith("bias") or "layer_scale" in name:
                p.normal_(0, 0.5)
    for level in (0, 2):
        module = archcc.build(SPECS / "convnext_layer.yaml", out_dir=tmp_path / f"O{level}",
                              opt_level=level)
        ours = module.Model().eval()
        ours.load_state_dict(ref.state_dict(), strict=True)
        x = torch.randn(2, 8, 9, 9)
        with torch.no_grad():
            torch.testing.assert_close(ours(x), ref(x))
    assert ours.dwconv.weight.shape == (8, 1, 7, 7)
    assert sum(p.numel() for p in ours.dwconv.parameters()) == 8 * 49 + 8


def test_layernorm2d_is_hugging_face_and_timm_channels_first_norm(built):
    pytest.importorskip("transformers")
    timm_layers = pytest.importorskip("timm.layers")
    from transformers.models.convnext.modeling_convnext import ConvNextLayerNorm

    norm = _model(built[2]).norm
    hf = ConvNextLayerNorm(8, eps=1e-6, data_format="channels_first")
    hf.load_state_dict(norm.state_dict(), strict=True)
    timm_norm = timm_layers.LayerNorm2d(8, eps=1e-6)
    timm_norm.load_state_dict(norm.state_dict(), strict=True)
    x = torch.randn(2, 8, 5, 5)
    ours = norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(ours, hf(x))
    torch.testing.assert_close(ours, timm_norm(x))


def test_layer_scale_channels_first_is_timm_layer_scale_2d(built):
    timm_layers = pytest.importorskip("timm.layers")

    model = _model(built[2])
    ref = timm_layers.LayerScale2d(8, init_values=0.5)
    ref.gamma.data.copy_(model.gamma)
    y = torch.randn(2, 8, 3, 3)
    torch.testing.assert_close(model.gamma.view(1, 8, 1, 1) * y, ref(y))
    assert torch.equal(built[2].Model().gamma, torch.full((8,), 0.5))  # init: 0.5


# -------------------------------------------------------------------------- errors

BAD = {
    "pool_kernel_and_output": ("gap: {op: avgpool2d, output: 1}",
                               "gap: {op: avgpool2d, output: 1, kernel: 2}",
                               "kernel has no meaning with output"),
    "pool_without_window": ("gap: {op: avgpool2d, output: 1}", "gap: {op: avgpool2d}",
                            "avgpool2d needs kernel (windows) or output"),
    "pool_padding": ("kernel: 3, stride: 2, padding: 1}", "kernel: 3, stride: 2, padding: 2}",
                     "padding (2) must be at most half the kernel (3)"),
    "batchnorm_rank": ("bn1d(signal)", "bn1d(x)", "bn1d expects (B, channels) or "
                                                  "(B, channels, L)"),
    "batchnorm_channels": ("bn: {op: batchnorm, channels: channels,",
                           "bn: {op: batchnorm, channels: 2 * channels,",
                           "bn expects (B, 2*channels, H, W) (16 channels), got "
                           "(B, channels, side, side)"),
    "pool_needs_image": ("maxpool(x)", "maxpool(signal)", "maxpool: pooling needs an image "
                                                          "(B, C, H, W), got (B, channels, "
                                                          "length)"),
    "batchnorm_momentum": ("momentum: 0.2", "momentum: 2", "momentum (2) must lie in [0, 1]"),
    "layernorm2d_needs_image": ("bn1d(signal)", "norm(signal)",
                                "norm (layernorm2d) needs an image (B, C, H, W), got "
                                "(B, channels, length)"),
    "drop_path_one": ("drop_rate: 0.25", "drop_rate: 1.0", "p (1.0) must lie in [0, 1)"),
    "layer_scale_zero": ("init: 0.5", "init: 0", "init 0 would zero the branch"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_mistakes_are_located_errors(tmp_path, case):
    old, new, message = BAD[case]
    text = (SPECS / "cnn_ops.yaml").read_text()
    assert old in text
    (tmp_path / "spec.yaml").write_text(text.replace(old, new, 1))
    with pytest.raises(ArchccError) as err:
        compile_spec(tmp_path / "spec.yaml")
    rendered = str(err.value)
    assert message in rendered, rendered
    assert "spec.yaml:" in rendered


@pytest.mark.parametrize("name", ["cnn_ops", "convnext_layer"])
def test_arch_and_yaml_round_trips(name, tmp_path):
    from archcc.parser import load_spec
    from archcc.parser.writer import to_arch, to_yaml

    spec = load_spec(SPECS / f"{name}.yaml").spec
    for suffix, write in ((".arch", to_arch), (".yaml", to_yaml)):
        path = tmp_path / f"{name}{suffix}"
        path.write_text(write(spec))
        assert load_spec(path).spec == spec


def test_fx_and_export_accept_the_generated_module(built):
    """DropPath branches on self.training, a Python bool: both tracers take the eval path."""
    model = _model(built[2])
    inputs = built[2].example_inputs(batch=2)
    traced = torch.fx.symbolic_trace(model)
    exported = torch.export.export(model, inputs)
    with torch.no_grad():
        for got in (traced(*inputs), exported.module()(*inputs)):
            for a, b in zip(got, model(*inputs), strict=True):
                torch.testing.assert_close(a, b)
