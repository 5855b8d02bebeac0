"""archcc import hf / timm: round trips through the reference library.

Each test writes a tiny config (transformers' own ``to_json_file``) or names a timm model
with tiny kwargs, imports it, builds the spec, builds the reference from the same config
with random weights, loads its state_dict through ``convert_state_dict`` and compares
outputs. The generated ``Config()`` defaults must already be the imported sizes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

import archcc
from archcc.cli import main
from archcc.diagnostics import ArchccError
from archcc.importers import import_diffusers, import_hf, import_timm

transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")


def _hf(tmp_path: Path, config, name: str = "imported", suffix: str = ".yaml"):
    """config -> config.json -> imported spec -> built module."""
    config.to_json_file(tmp_path / "config.json")
    spec = import_hf(tmp_path / "config.json", tmp_path / f"{name}{suffix}")
    return archcc.build(spec, out_dir=tmp_path / "generated")


def _load(module, ref, layout: str = "hf"):
    ours = module.Model(module.Config()).eval()
    ours.load_state_dict(module.convert_state_dict(ref.state_dict(), layout), strict=True)
    return ours


def _padded(mask: torch.Tensor) -> torch.Tensor:
    mask = mask.clone()
    mask[0, -3:] = False  # padding in the first sequence
    return mask


# ------------------------------------------------------------------------ Hugging Face


def test_gpt2_round_trip(tmp_path):
    config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=101,
                                     n_positions=32, eos_token_id=100)
    gpt2 = _hf(tmp_path, config, "tiny_gpt2")
    assert gpt2.Config().n_embd == 64 and gpt2.Config().n_layer == 2
    ref = transformers.GPT2LMHeadModel(config).eval()
    ours = _load(gpt2, ref)
    (input_ids,) = gpt2.example_inputs(batch=2, T=17)
    with torch.no_grad():
        torch.testing.assert_close(ours(input_ids), ref(input_ids).logits)
    # the generation facet follows the config's token ids
    import inspect

    assert inspect.signature(gpt2.generate).parameters["eos_token_id"].default == 100


def test_bert_round_trip(tmp_path):
    config = transformers.BertConfig(vocab_size=99, hidden_size=64, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=96,
                                     max_position_embeddings=40, type_vocab_size=3,
                                     layer_norm_eps=1e-7)
    bert = _hf(tmp_path, config)
    ref = transformers.BertModel(config).eval()
    ours = _load(bert, ref)
    input_ids, mask, token_type_ids = bert.example_inputs(batch=3, T=12)
    token_type_ids[:, 6:] = 2
    mask = _padded(mask)
    with torch.no_grad():
        hidden, pooled = ours(input_ids, mask, token_type_ids)
        expected = ref(input_ids=input_ids, token_type_ids=token_type_ids,
                       attention_mask=mask.long())
    torch.testing.assert_close(hidden, expected.last_hidden_state)
    torch.testing.assert_close(pooled, expected.pooler_output)


def test_roberta_round_trip_with_its_own_pad_token(tmp_path):
    config = transformers.RobertaConfig(vocab_size=99, hidden_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, intermediate_size=96,
                                        max_position_embeddings=40, type_vocab_size=1,
                                        pad_token_id=3)
    roberta = _hf(tmp_path, config)
    assert roberta.Config().pad_token_id == 3
    ref = transformers.RobertaModel(config).eval()
    ours = _load(roberta, ref)
    assert ours.word_embeddings.padding_idx == 3 == ref.embeddings.word_embeddings.padding_idx
    input_ids, mask, token_type_ids = roberta.example_inputs(batch=3, T=12)
    input_ids[input_ids == 3] = 4
    input_ids[0, -3:] = 3  # right padding: positions of pads stay at the pad row
    mask = _padded(mask)
    with torch.no_grad():
        hidden, _ = ours(input_ids, mask, token_type_ids)
        expected = ref(input_ids=input_ids, attention_mask=mask.long(),
                       token_type_ids=token_type_ids).last_hidden_state
    torch.testing.assert_close(hidden, expected)


def test_distilbert_round_trip(tmp_path):
    config = transformers.DistilBertConfig(vocab_size=99, dim=64, n_layers=2, n_heads=4,
                                           hidden_dim=96, max_position_embeddings=40)
    distilbert = _hf(tmp_path, config)
    ref = transformers.DistilBertModel(config).eval()
    ours = _load(distilbert, ref)
    input_ids, mask = distilbert.example_inputs(batch=3, T=12)
    mask = _padded(mask)
    with torch.no_grad():
        hidden = ours(input_ids, mask)
        expected = ref(input_ids=input_ids, attention_mask=mask.long()).last_hidden_state
    torch.testing.assert_close(hidden[mask], expected[mask])


T5_SMALL = dict(vocab_size=99, d_model=64, d_kv=16, d_ff=96, num_layers=2,
                num_decoder_layers=1, num_heads=4, relative_attention_num_buckets=8,
                relative_attention_max_distance=16)


@pytest.mark.parametrize("variant", [{}, {"feed_forward_proj": "gated-gelu",
                                          "tie_word_embeddings": False}],
                         ids=["t5", "t5_v1_1"])
def test_t5_round_trip(tmp_path, variant):
    config = transformers.T5Config(**T5_SMALL, **variant)
    t5 = _hf(tmp_path, config)
    assert t5.Config().num_decoder_layers == 1
    ref = transformers.T5ForConditionalGeneration(config).eval()
    ours = _load(t5, ref)
    ids, mask, dec = t5.example_inputs(batch=3, S=14, T=9)
    mask = _padded(mask)
    with torch.no_grad():
        logits = ours(ids, mask, dec)
        expected = ref(input_ids=ids, attention_mask=mask.long(), decoder_input_ids=dec).logits
    # v1.1's gelu_new spells the tanh formula out; F.gelu(approximate="tanh") rounds apart
    tol = {"atol": 1e-4, "rtol": 1e-4} if variant else {}
    torch.testing.assert_close(logits, expected, **tol)


def test_bart_round_trip_with_scaled_embeddings(tmp_path):
    config = transformers.BartConfig(vocab_size=99, max_position_embeddings=40, d_model=64,
                                     encoder_layers=2, decoder_layers=1,
                                     encoder_attention_heads=4, decoder_attention_heads=2,
                                     encoder_ffn_dim=96, decoder_ffn_dim=80,
                                     scale_embedding=True)
    bart = _hf(tmp_path, config)
    assert bart.Config().embed_scale == 8.0
    ref = transformers.BartModel(config).eval()
    ours = _load(bart, ref)
    ids, mask, dec = bart.example_inputs(batch=3, S=14, T=9)
    mask = _padded(mask)
    with torch.no_grad():
        hidden = ours(ids, mask, dec)
        expected = ref(input_ids=ids, attention_mask=mask.long(), decoder_input_ids=dec)
    torch.testing.assert_close(hidden, expected.last_hidden_state)


def test_vit_round_trip_takes_labels_from_id2label(tmp_path):
    config = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=64,
                                    num_hidden_layers=2, num_attention_heads=4,
                                    intermediate_size=96, num_labels=7)
    vit = _hf(tmp_path, config, suffix=".arch")  # either front end
    assert vit.Config().num_labels == 7
    ref = transformers.ViTForImageClassification(config).eval()
    ours = _load(vit, ref)
    (pixels,) = vit.example_inputs(batch=2)
    with torch.no_grad():
        hidden, logits = ours(pixels)
        torch.testing.assert_close(logits, ref(pixel_values=pixels).logits)
        torch.testing.assert_close(hidden, ref.vit(pixel_values=pixels).last_hidden_state)


def test_clip_round_trip(tmp_path):
    text = dict(vocab_size=99, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=20, eos_token_id=98)
    vision = dict(image_size=32, patch_size=8, hidden_size=40, intermediate_size=52,
                  num_hidden_layers=1, num_attention_heads=4)
    config = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=24)
    clip = _hf(tmp_path, config)
    ref = transformers.CLIPModel(config).eval()
    ours = _load(clip, ref)
    input_ids, pixels = clip.example_inputs(batch=2, N=3, T=11)
    input_ids[:, -1] = 98  # EOS, the largest id, ends every text
    with torch.no_grad():
        per_image, per_text, _, _ = ours(input_ids, pixels)
        expected = ref(input_ids=input_ids, pixel_values=pixels)
    torch.testing.assert_close(per_image, expected.logits_per_image)
    torch.testing.assert_close(per_text, expected.logits_per_text)


def test_defaults_match_transformers():
    """Keys absent from config.json take the config class's default: the tables say so."""
    from archcc.importers import hf_families as fam
    from archcc.importers.config import ConfigFile

    cases = {"gpt2": transformers.GPT2Config, "bert": transformers.BertConfig,
             "roberta": transformers.RobertaConfig, "distilbert": transformers.DistilBertConfig,
             "t5": transformers.T5Config, "bart": transformers.BartConfig,
             "vit": transformers.ViTConfig}
    for family, cls in cases.items():
        params = getattr(fam, family)(ConfigFile("config.json", {}))["params"]
        reference = cls()
        for key, value in params.items():
            if hasattr(reference, key):
                assert getattr(reference, key) == value, (family, key)
    params = fam.clip(ConfigFile("config.json", {}))["params"]
    clip = transformers.CLIPConfig()
    assert params["text_hidden_size"] == clip.text_config.hidden_size
    assert params["vision_num_hidden_layers"] == clip.vision_config.num_hidden_layers
    assert params["projection_dim"] == clip.projection_dim


# -------------------------------------------------------------------------------- timm


def test_timm_vit_round_trip(tmp_path):
    kwargs = dict(img_size=32, patch_size=8, depth=2, embed_dim=64, num_heads=4,
                  num_classes=10)
    spec = import_timm("vit_small_patch16_224", tmp_path / "vit_s.yaml",
                       [f"{k}={v}" for k, v in kwargs.items()])
    vit = archcc.build(spec, out_dir=tmp_path / "generated")
    ref = timm.create_model("vit_small_patch16_224", pretrained=False, **kwargs).eval()
    with torch.no_grad():  # timm starts CLS token and positions near zero: make them count
        ref.cls_token.normal_()
        ref.pos_embed.normal_()
    ours = _load(vit, ref, "timm")
    (pixels,) = vit.example_inputs(batch=2)
    with torch.no_grad():
        torch.testing.assert_close(ours(pixels)[1], ref(pixels))


def test_timm_mixer_round_trip(tmp_path):
    kwargs = dict(img_size=32, num_classes=5)  # timm takes no other size kwargs here
    spec = import_timm("mixer_s16_224", tmp_path / "mixer.yaml",
                       [f"{k}={v}" for k, v in kwargs.items()])
    mixer = archcc.build(spec, out_dir=tmp_path / "generated")
    ref = timm.create_model("mixer_s16_224", pretrained=False, **kwargs).eval()
    ours = _load(mixer, ref, "timm")
    (pixels,) = mixer.example_inputs(batch=2)
    with torch.no_grad():
        torch.testing.assert_close(ours(pixels), ref(pixels))


@pytest.mark.parametrize("stages", [
    ["embed_dim=24", "depths=2,2,1,1", "num_heads=1,2,3,4"],
    ["img_size=64", "embed_dim=16", "depths=2,2,2", "num_heads=1,2,4", "window_size=4"],
    ["img_size=32", "embed_dim=16", "depths=2,2", "num_heads=1,2", "window_size=4"],
    ["img_size=512", "embed_dim=16", "depths=1,1,1,1,2", "num_heads=1,1,2,2,4",
     "window_size=4"],
])
def test_timm_swin_round_trip(tmp_path, stages):
    """timm's Swin names import with any number of stages: 5, 4, 3 or 2."""
    args = [*stages, "num_classes=4"]
    spec = import_timm("swin_tiny_patch4_window7_224", tmp_path / "swin.yaml", args)
    swin = archcc.build(spec, out_dir=tmp_path / "generated")
    kwargs = {k: tuple(int(v) for v in value.split(",")) if "," in value else int(value)
              for k, _, value in (a.partition("=") for a in args)}
    ref = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, **kwargs).eval()
    ours = _load(swin, ref, "timm")
    size = kwargs.get("img_size", 224)
    pixels = torch.randn(1, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(ours(pixels), ref(pixels))


def test_timm_table_matches_timm():
    """Every name's sizes as timm builds them (on the meta device: nothing allocated)."""
    from archcc.importers.timm_names import MODELS

    for name, (family, kw) in MODELS.items():
        with torch.device("meta"):
            model = timm.create_model(name, pretrained=False)
        assert model.num_classes == kw["num_classes"], name
        assert model.embed_dim == kw["embed_dim"], name
        if family == "swin":
            assert tuple(len(layer.blocks) for layer in model.layers) == kw["depths"], name
            heads = tuple(layer.blocks[0].attn.num_heads for layer in model.layers)
            assert heads == kw["num_heads"] and model.patch_embed.img_size == (224, 224), name
            continue
        stem = model.patch_embed if family == "vit" else model.stem
        assert stem.img_size == (kw["img_size"],) * 2, name
        assert stem.patch_size == (kw["patch_size"],) * 2, name
        if family == "vit":
            assert len(model.blocks) == kw["depth"], name
            assert model.blocks[0].attn.num_heads == kw["num_heads"], name
            assert model.blocks[0].mlp.fc1.out_features == kw["embed_dim"] * kw["mlp_ratio"]
        else:
            assert len(model.blocks) == kw["num_blocks"], name


def test_timm_published_size_has_timm_parameter_count(tmp_path):
    """swin_small at its published size, counted on the meta device on both sides."""
    from archcc.inspect import summarize

    spec = import_timm("swin_small_patch4_window7_224", tmp_path / "swin_s.yaml")
    with torch.device("meta"):
        ref = timm.create_model("swin_small_patch4_window7_224", pretrained=False)
    expected = sum(p.numel() for p in ref.parameters())
    assert summarize(spec, {"B": 1}).totals["params"] == expected == 49_606_258


# ------------------------------------------------------------------------------ errors


def _config(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def _error(tmp_path: Path, data: dict) -> str:
    out = tmp_path / "out.yaml"
    with pytest.raises(ArchccError) as info:
        import_hf(_config(tmp_path, data), out)
    assert not out.exists()  # nothing half-written
    return str(info.value)


def test_unknown_model_type_lists_supported(tmp_path):
    message = _error(tmp_path, {"hidden_size": 8, "model_type": "mamba"})
    assert "config.json:3:3: error: model_type: model_type 'mamba' is not supported" in message
    assert "gpt2, bert, roberta, distilbert, t5, bart, vit, clip, convnext, resnet, albert, " \
           "llama, mistral" in message


def test_unsupported_values_point_at_their_key(tmp_path):
    message = _error(tmp_path, {"model_type": "gpt2", "n_embd": 64, "activation_function": "relu"})
    assert "config.json:4:3: error: activation_function:" in message and "relu" in message
    message = _error(tmp_path, {"model_type": "bert", "is_decoder": True})
    assert "config.json:3:3: error: is_decoder:" in message
    message = _error(tmp_path, {"model_type": "t5", "d_model": 64, "num_heads": 4})
    assert "d_kv: d_kv (64) * num_heads (4) is not d_model (64)" in message
    message = _error(tmp_path, {"model_type": "t5", "feed_forward_proj": "gated-gelu"})
    assert "matches neither T5 nor T5 v1.1" in message
    spec = import_hf(_config(tmp_path, {"model_type": "clip", "text_config": {"eos_token_id": 5}}),
                     tmp_path / "clip_eos.yaml")  # honoured: the pooling reads it
    assert "eos_token_id: 5" in Path(spec).read_text()
    message = _error(tmp_path, {"model_type": "gpt2", "n_layer": 2.5})
    assert "config.json:3:3: error: n_layer: expected an integer, got 2.5" in message


def test_configs_that_cannot_build_are_refused(tmp_path):
    message = _error(tmp_path, {"model_type": "gpt2", "n_embd": 64, "n_head": 5})
    assert "the imported spec does not build" in message and "heads (5)" in message


def test_a_config_larger_than_the_family_budget_imports(tmp_path):
    """specs/gpt2.yaml's budget describes GPT-2 small; gpt2-medium's config still imports."""
    out = import_hf(_config(tmp_path, {"model_type": "gpt2", "n_embd": 1024, "n_layer": 24,
                                       "n_head": 16}), tmp_path / "medium.yaml")
    assert "budget" not in out.read_text() and "n_layer: 24" in out.read_text()


def test_invalid_json_is_located(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{\n  "model_type": "gpt2",\n}\n')
    with pytest.raises(ArchccError, match=r"config.json:3:1: error: not valid JSON"):
        import_hf(path, tmp_path / "out.yaml")


def test_timm_errors(tmp_path):
    with pytest.raises(ArchccError, match="did you mean 'vit_base_patch16_224'"):
        import_timm("vit_base_patch16_225", tmp_path / "x.yaml")
    with pytest.raises(ArchccError, match="'global_pool=avg' is not a kwarg"):
        import_timm("vit_base_patch16_224", tmp_path / "x.yaml", ["global_pool=avg"])
    with pytest.raises(ArchccError, match="depths has 2 stages and num_heads 4"):
        import_timm("swin_tiny_patch4_window7_224", tmp_path / "x.yaml", ["depths=2,2"])
    with pytest.raises(ArchccError, match="expected comma-separated integers > 0"):
        import_timm("swin_tiny_patch4_window7_224", tmp_path / "x.yaml", ["depths=2,x"])
    assert not (tmp_path / "x.yaml").exists()


# --------------------------------------------------------------------------------- CLI


def test_cli_import_then_check(tmp_path, capsys):
    config = _config(tmp_path, {"model_type": "distilbert", "dim": 32, "n_heads": 2,
                                "n_layers": 1, "hidden_dim": 48, "vocab_size": 50})
    out = tmp_path / "my_distilbert.yaml"
    assert main(["import", "hf", str(config), "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert "name: my_distilbert" in out.read_text()
    assert "extends" not in out.read_text()  # standalone: works wherever it is written
    assert main(["check", str(out)]) == 0
    assert main(["import", "timm", "mixer_b16_224", "num_classes=3", "-o",
                 str(tmp_path / "m.arch"), "--name", "mixer3"]) == 0
    assert "spec mixer3" in (tmp_path / "m.arch").read_text()


def test_cli_errors_exit_1_without_traceback(tmp_path, capsys):
    config = _config(tmp_path, {"model_type": "gpt2", "tie_word_embeddings": False})
    assert main(["import", "hf", str(config), "-o", str(tmp_path / "g.yaml")]) == 1
    err = capsys.readouterr().err
    assert "config.json:3:3: error: tie_word_embeddings:" in err and "Traceback" not in err
    assert "hint: specs/gpt2.yaml is built with tie_word_embeddings = true" in err
    assert main(["import", "hf", str(config), "-o", str(tmp_path / "g.txt")]) == 1
    assert "is not a spec file name" in capsys.readouterr().err


# ----------------------------------------------------------------------- installed wheel


def test_a_wheel_install_imports_outside_the_checkout(tmp_path):
    """The family specs ship in the package (archcc/specs), so a pip-installed archcc
    imports with no checkout in sight: built from a copy of the sources, installed into a
    folder, run from another."""
    pytest.importorskip("setuptools")
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    source = tmp_path / "source"
    shutil.copytree(root / "archcc", source / "archcc",  # the specs link becomes files
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", str(source), "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "wheel")], check=True, cwd=tmp_path)
    wheel = next((tmp_path / "wheel").glob("archcc-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(tmp_path / "site"),
                    str(wheel)], check=True, cwd=tmp_path)

    work = tmp_path / "work"
    work.mkdir()
    (work / "config.json").write_text(json.dumps(
        {"model_type": "gpt2", "n_layer": 1, "n_embd": 32, "n_head": 2, "vocab_size": 50}))
    run = subprocess.run([sys.executable, "-c", "import archcc, sys; print(archcc.__file__); "
                          "from archcc.cli import main; sys.exit(main(sys.argv[1:]))",
                          "import", "hf", "config.json", "-o", "tiny.yaml"],
                         cwd=work, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(str(tmp_path / "site" / "archcc"))
    assert "wrote tiny.yaml" in run.stdout
    assert archcc.build(work / "tiny.yaml", out_dir=tmp_path / "generated").Config().n_layer == 1


# ----------------------------------------------------------------------------- diffusers

UNETS = {
    # the class defaults: sines flipped, symmetric padding, 8-channel heads, attention x3
    "defaults, 4 resolutions": dict(sample_size=16, block_out_channels=[16, 32, 32, 48],
                                    norm_num_groups=8),
    "2 resolutions, one head": dict(sample_size=8, block_out_channels=[8, 16],
                                    layers_per_block=1, norm_num_groups=4,
                                    attention_head_dim=None, downsample_padding=0,
                                    down_block_types=["AttnDownBlock2D", "DownBlock2D"],
                                    up_block_types=["UpBlock2D", "AttnUpBlock2D"]),
    "3 resolutions, ddpm style": dict(sample_size=16, block_out_channels=[8, 16, 16],
                                      norm_num_groups=4, norm_eps=1e-6, freq_shift=1,
                                      flip_sin_to_cos=False, downsample_padding=0,
                                      attention_head_dim=None, in_channels=1, out_channels=2,
                                      down_block_types=["DownBlock2D", "AttnDownBlock2D",
                                                        "DownBlock2D"],
                                      up_block_types=["UpBlock2D", "AttnUpBlock2D",
                                                      "UpBlock2D"]),
}


@pytest.mark.parametrize("case", sorted(UNETS))
@pytest.mark.parametrize("via", ["diffusers", "hf"])
def test_diffusers_unet_round_trip(tmp_path, case, via):
    """A saved UNet2DModel config imports (`archcc import diffusers`, or `import hf`, which
    routes it), builds, and loads that model's state_dict strictly, output for output."""
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.UNet2DModel(**UNETS[case]).eval()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if "norm" in name:
                p.normal_()
    ref.save_config(tmp_path)
    importer = import_diffusers if via == "diffusers" else import_hf
    spec = importer(tmp_path / "config.json", tmp_path / "unet.yaml")
    unet = archcc.build(spec, out_dir=tmp_path / "generated")
    ours = _load(unet, ref, "diffusers")
    sample, _ = unet.example_inputs(batch=2)
    timestep = torch.tensor([7, 900])
    with torch.no_grad():
        torch.testing.assert_close(ours(sample, timestep), ref(sample, timestep).sample)


def test_diffusers_configs_the_spec_cannot_build_are_refused(tmp_path):
    message = _error_diffusers(tmp_path, {"_class_name": "UNet2DModel", "sample_size": 8,
                                          "act_fn": "gelu"})
    assert "act_fn:" in message and "not supported" in message
    message = _error_diffusers(tmp_path, {"_class_name": "UNet2DModel", "sample_size": 8,
                                          "block_out_channels": [8, 16],
                                          "down_block_types": ["CrossAttnDownBlock2D",
                                                               "DownBlock2D"]})
    assert "'CrossAttnDownBlock2D' is not supported" in message
    message = _error_diffusers(tmp_path, {"_class_name": "UNet2DModel", "sample_size": 8,
                                          "block_out_channels": [8, 16, 32]})
    assert "4 block types for 3 block_out_channels" in message


def _error_diffusers(tmp_path: Path, data: dict) -> str:
    out = tmp_path / "out.yaml"
    with pytest.raises(ArchccError) as info:
        import_diffusers(_config(tmp_path, data), out)
    assert not out.exists()
    return str(info.value)
