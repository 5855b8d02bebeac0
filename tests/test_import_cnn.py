"""archcc import hf for ConvNeXt, ResNet and ALBERT: any number of stages, both ResNet layer
types, ALBERT's layer groups, each a round trip through transformers (its own
``to_json_file``, random weights re-drawn, strict load through ``convert_state_dict``), and
located refusals for what the family specs cannot build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import archcc
from archcc.cli import main
from archcc.diagnostics import ArchccError
from archcc.importers import import_hf

transformers = pytest.importorskip("transformers")


def _import(tmp_path: Path, config, suffix: str = ".yaml"):
    config.to_json_file(tmp_path / "config.json")
    spec = import_hf(tmp_path / "config.json", tmp_path / f"imported{suffix}")
    return archcc.build(spec, out_dir=tmp_path / "generated")


def _redraw(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name.lower() or name.endswith("bias") or "layer_scale" in name:
                p.normal_(0, 0.5)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.normal_()
            elif name.endswith("running_var"):
                b.uniform_(0.5, 2.0)


def _load(module, ref):
    _redraw(ref)
    ours = module.Model(module.Config()).eval()  # the imported sizes are the defaults
    ours.load_state_dict(module.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    return ours


@pytest.mark.parametrize("suffix", [".yaml", ".arch"])
def test_convnext_with_three_stages(tmp_path, suffix):
    config = transformers.ConvNextConfig(num_stages=3, hidden_sizes=[8, 16, 24], depths=[1, 2, 1],
                                         num_labels=7, image_size=64, layer_scale_init_value=0.1,
                                         drop_path_rate=0.2)
    convnext = _import(tmp_path, config, suffix)
    assert convnext.Config().hidden_sizes == (8, 16, 24) and convnext.Config().depths == (1, 2, 1)
    ref = transformers.ConvNextForImageClassification(config).eval()
    ours = _load(convnext, ref)
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(pixels), ref(pixels).logits)


@pytest.mark.parametrize("layer_type,extra", [
    ("basic", {}),
    ("bottleneck", {"downsample_in_bottleneck": True, "downsample_in_first_stage": True}),
])
def test_resnet_both_layer_types(tmp_path, layer_type, extra):
    sizes = [8, 16] if layer_type == "basic" else [16, 32, 64]
    config = transformers.ResNetConfig(embedding_size=8, hidden_sizes=sizes,
                                       depths=[2] + [1] * (len(sizes) - 1),
                                       layer_type=layer_type, num_labels=5, **extra)
    resnet = _import(tmp_path, config)
    assert resnet.Config().layer_type == layer_type
    ref = transformers.ResNetForImageClassification(config).eval()
    ours = _load(resnet, ref)
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(pixels), ref(pixels).logits)


def test_albert_with_groups_and_its_own_pad_token(tmp_path):
    config = transformers.AlbertConfig(vocab_size=90, embedding_size=16, hidden_size=32,
                                       num_hidden_layers=6, num_hidden_groups=3,
                                       inner_group_num=2, num_attention_heads=4,
                                       intermediate_size=48, max_position_embeddings=32,
                                       pad_token_id=5)
    albert = _import(tmp_path, config)
    ref = transformers.AlbertForMaskedLM(config).eval()
    ours = _load(albert, ref)
    assert ours.word_embeddings.padding_idx == 5
    assert ref.albert.embeddings.word_embeddings.padding_idx == 5
    input_ids, mask, token_type_ids = albert.example_inputs(batch=2, T=10)
    mask[0, -3:] = False
    with torch.no_grad():
        expected = ref(input_ids, attention_mask=mask.long(), token_type_ids=token_type_ids)
        torch.testing.assert_close(ours(input_ids, mask, token_type_ids), expected.logits)


def test_defaults_match_transformers():
    """Keys absent from config.json take the config class's default: the tables say so."""
    from archcc.importers import hf_structured as fam
    from archcc.importers.config import ConfigFile

    cases = {"convnext": transformers.ConvNextConfig, "resnet": transformers.ResNetConfig,
             "albert": transformers.AlbertConfig}
    for family, cls in cases.items():
        params = getattr(fam, family)(ConfigFile("config.json", {}))["params"]
        reference = cls()
        for key, value in params.items():
            if key == "layer_type":
                value = json.loads(value)
            if isinstance(value, list):
                value = tuple(value)
            if hasattr(reference, key) and key != "num_labels":
                expected = getattr(reference, key)
                expected = tuple(expected) if isinstance(expected, list) else expected
                assert expected == value, (family, key)


def _error(tmp_path: Path, data: dict) -> str:
    (tmp_path / "config.json").write_text(json.dumps(data, indent=2))
    out = tmp_path / "out.yaml"
    with pytest.raises(ArchccError) as info:
        import_hf(tmp_path / "config.json", out)
    assert not out.exists()  # nothing half-written
    return str(info.value)


REFUSED = {  # config -> the located message
    "convnext_activation": ({"model_type": "convnext", "hidden_act": "relu"},
                            "config.json:3:3: error: hidden_act:"),
    "convnext_no_layer_scale": ({"model_type": "convnext", "layer_scale_init_value": 0.0},
                                "config.json:3:3: error: layer_scale_init_value: 0.0 turns the "
                                "layer scale off"),
    "convnext_num_stages": ({"model_type": "convnext", "num_stages": 3},
                            "config.json:3:3: error: num_stages: num_stages (3) is not the "
                            "number of depths and hidden_sizes (4)"),
    "lists_disagree": ({"model_type": "resnet", "hidden_sizes": [8, 16], "depths": [1]},
                       "config.json:7:3: error: depths: 1 depths for 2 hidden_sizes"),
    "not_a_list": ({"model_type": "resnet", "depths": 3},
                   "config.json:3:3: error: depths: expected a list of positive integers"),
    "resnet_layer_type": ({"model_type": "resnet", "layer_type": "preact"},
                          "config.json:3:3: error: layer_type: \"preact\" is not supported"),
    "resnet_activation": ({"model_type": "resnet", "hidden_act": "gelu"},
                          "config.json:3:3: error: hidden_act:"),
    "albert_activation": ({"model_type": "albert", "hidden_act": "relu"},
                          "config.json:3:3: error: hidden_act:"),
    "albert_groups": ({"model_type": "albert", "num_hidden_layers": 2, "num_hidden_groups": 3},
                      "config.json:4:3: error: num_hidden_groups: 3 groups for 2 layers"),
    "albert_untied": ({"model_type": "albert", "tie_word_embeddings": False},
                      "config.json:3:3: error: tie_word_embeddings:"),
    "albert_dropouts": ({"model_type": "albert", "hidden_dropout_prob": 0.1},
                        "error: attention_probs_dropout_prob: 0.0 differs from "
                        "hidden_dropout_prob (0.1)"),
    "albert_heads": ({"model_type": "albert", "hidden_size": 30, "num_attention_heads": 4},
                     "the imported spec does not build"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refusals_point_at_their_key(tmp_path, case):
    data, expected = REFUSED[case]
    assert expected in _error(tmp_path, data)


def test_cli_import_then_build(tmp_path, capsys):
    config = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                                       layer_type="basic")
    config.to_json_file(tmp_path / "config.json")
    out = tmp_path / "tiny_resnet.arch"
    assert main(["import", "hf", str(tmp_path / "config.json"), "-o", str(out)]) == 0
    assert 'layer_type = "basic"' in out.read_text()  # a string param, quoted
    assert main(["build", str(out), "-o", str(tmp_path / "gen")]) == 0
    assert "wrote" in capsys.readouterr().out


TINY = {  # Config for `archcc bench`'s reference: built from the same Config fields
    "convnext": dict(num_stages=3, hidden_sizes=(8, 16, 24), depths=(1, 1, 1), image_size=32,
                     num_labels=4),
    "resnet": dict(embedding_size=8, hidden_sizes=(8, 16), depths=(1, 1), layer_type="basic",
                   image_size=32, num_labels=4),
    "albert": dict(vocab_size=50, hidden_size=16, num_attention_heads=2, intermediate_size=32,
                   num_hidden_layers=3, max_position_embeddings=20),
}


@pytest.mark.parametrize("family", sorted(TINY))
def test_bench_reference_is_the_same_model(compiled, family):
    """`reference:` names the transformers class; built from our Config's fields it takes our
    weights strictly and gives our outputs (what `archcc bench --backends reference` times)."""
    from archcc.parser import load_spec
    from archcc.runtime.reference import first_tensor, reference_model

    module = compiled(family)
    spec = Path(__file__).parents[1] / "specs" / f"{family}.yaml"
    model = module.Model(module.Config(**TINY[family])).eval()
    ref = reference_model(load_spec(spec).spec.reference, model, module)
    inputs = module.example_inputs(batch=2, config=model.config)
    with torch.no_grad():
        torch.testing.assert_close(first_tensor(model(*inputs)), first_tensor(ref(*inputs)))
