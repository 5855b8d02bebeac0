"""Generated CLIP vs Hugging Face CLIPModel: two towers, EOS pooling, learned temperature."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from tests.conftest import full_size  # noqa: E402

# transformers.CLIPConfig sizes -> our flat params (text_*/vision_* prefixes)
TEXT = dict(vocab_size=99, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=20)
VISION = dict(image_size=32, patch_size=8, hidden_size=40, intermediate_size=52,
              num_hidden_layers=2, num_attention_heads=4)
PROJECTION = 24


def _ours(text: dict, vision: dict, projection: int) -> dict:
    sizes = {"vocab_size": text["vocab_size"],
             "max_position_embeddings": text["max_position_embeddings"],
             "image_size": vision["image_size"], "patch_size": vision["patch_size"],
             "projection_dim": projection}
    for tower, cfg in (("text", text), ("vision", vision)):
        for key in ("hidden_size", "intermediate_size", "num_hidden_layers",
                    "num_attention_heads"):
            sizes[f"{tower}_{key}"] = cfg[key]
    return sizes


def _pair(clip, text=TEXT, vision=VISION, projection=PROJECTION, eos_token_id=2):
    config = transformers.CLIPConfig(
        text_config=dict(text, eos_token_id=eos_token_id, bos_token_id=0, pad_token_id=1),
        vision_config=vision, projection_dim=projection)
    ref = transformers.CLIPModel(config).eval()
    with torch.no_grad():  # a temperature other than the init value, so exp() is exercised
        ref.logit_scale.fill_(1.5)
    ours = clip.Model(clip.Config(**_ours(text, vision, projection),
                                  eos_token_id=eos_token_id)).eval()
    ours.load_state_dict(clip.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    return ours, ref


def _check(ours, ref, input_ids, pixels):
    with torch.no_grad():
        per_image, per_text, text_embeds, image_embeds = ours(input_ids, pixels)
        expected = ref(input_ids=input_ids, pixel_values=pixels)
    torch.testing.assert_close(per_image, expected.logits_per_image)
    torch.testing.assert_close(per_text, expected.logits_per_text)
    torch.testing.assert_close(text_embeds, expected.text_embeds)
    torch.testing.assert_close(image_embeds, expected.image_embeds)
    return per_image


@pytest.mark.parametrize("opt_level", [0, 1])
def test_logits_and_embeddings_match_hf(compiled, opt_level):
    """eos_token_id=2 is HF's legacy path: pool at argmax(input_ids), for any ids."""
    clip = compiled("clip", opt_level)
    ours, ref = _pair(clip)
    config = clip.Config(**_ours(TEXT, VISION, PROJECTION))
    input_ids, pixels = clip.example_inputs(batch=2, config=config, N=3, T=11)
    assert input_ids.shape == (3, 11) and pixels.shape == (2, 3, 32, 32)
    per_image = _check(ours, ref, input_ids, pixels)
    assert per_image.shape == (2, 3)  # images x texts: the towers take different batches


def test_pools_at_the_eos_token(compiled):
    """With a real EOS id (the largest id, as in CLIP's tokenizer) HF pools at its first
    occurrence; argmax finds the same token, also when padding repeats it."""
    clip = compiled("clip")
    eos = TEXT["vocab_size"] - 1
    ours, ref = _pair(clip, eos_token_id=eos)
    input_ids = torch.randint(2, eos, (3, 9))
    for row, end in enumerate((8, 4, 6)):
        input_ids[row, end:] = eos
    config = clip.Config(**_ours(TEXT, VISION, PROJECTION))
    (pixels,) = clip.example_inputs(batch=2, config=config)[1:]
    _check(ours, ref, input_ids, pixels)
    # pooling is at the EOS token: changing a token after it changes nothing
    later = input_ids.clone()
    later[1, 6] = 3
    with torch.no_grad():
        torch.testing.assert_close(ours(later, pixels)[0], ours(input_ids, pixels)[0])


@pytest.mark.parametrize("opt_level", [0, 2])
def test_honours_an_end_token_that_is_not_the_largest_id(compiled, opt_level):
    """eos_token_id in mid-vocabulary: HF pools at its first occurrence, which argmax over
    the ids would miss; the generated module reads Config.eos_token_id and agrees."""
    clip = compiled("clip", opt_level)
    eos = 7
    ours, ref = _pair(clip, eos_token_id=eos)
    input_ids = torch.randint(20, TEXT["vocab_size"], (3, 9))  # larger ids than the EOS
    for row, end in enumerate((8, 2, 5)):
        input_ids[row, end] = eos
    config = clip.Config(**_ours(TEXT, VISION, PROJECTION))
    (pixels,) = clip.example_inputs(batch=2, config=config)[1:]
    _check(ours, ref, input_ids, pixels)


def test_fresh_model_starts_at_clip_temperature(compiled):
    clip = compiled("clip")
    model = clip.Model(clip.Config(**_ours(TEXT, VISION, PROJECTION)))
    assert model.logit_scale.shape == ()
    assert model.logit_scale.item() == pytest.approx(2.6592)


@pytest.mark.skipif(not full_size(), reason="published size: set ARCHCC_FULL=1")
def test_full_size(compiled):
    """CLIP ViT-B/32 (openai/clip-vit-base-patch32 shapes): the spec's defaults."""
    clip = compiled("clip")
    text = dict(vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                num_attention_heads=8, max_position_embeddings=77)
    vision = dict(image_size=224, patch_size=32, hidden_size=768, intermediate_size=3072,
                  num_hidden_layers=12, num_attention_heads=12)
    assert _ours(text, vision, 512) == {k: v for k, v in clip.Config().__dict__.items()
                                        if k in _ours(text, vision, 512)}
    ours, ref = _pair(clip, text, vision, 512, eos_token_id=2)
    input_ids, pixels = clip.example_inputs(batch=2, N=3, T=77)
    with torch.no_grad():
        per_image = ours(input_ids, pixels)[0]
        expected = ref(input_ids=input_ids, pixel_values=pixels).logits_per_image
    count = sum(p.numel() for p in ours.parameters())
    print(f"clip full: max abs err {(per_image - expected).abs().max().item():.3g}, "
          f"params {count}")
    assert count == sum(p.numel() for p in ref.parameters())
    torch.testing.assert_close(per_image, expected, atol=1e-4, rtol=1e-4)
