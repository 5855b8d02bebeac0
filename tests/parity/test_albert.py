"""Generated ALBERT vs transformers AlbertForMaskedLM: factorised embeddings, layer groups
shared across depth (group int(i / (L / G)) at step i, every inner layer of it), post-norm
layers, the tied MLM decoder; padding masks; -O0 and -O2; strict load through
convert_state_dict(sd, "hf")."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from tests.conftest import full_size  # noqa: E402

SMALL = dict(vocab_size=100, embedding_size=16, hidden_size=32, num_attention_heads=4,
             intermediate_size=64, max_position_embeddings=64)
CASES = {  # (num_hidden_layers, num_hidden_groups, inner_group_num)
    "one_shared_layer": (4, 1, 1),
    "groups_of_two": (6, 3, 2),
    "float_grouping": (18, 14, 1),  # int(i / (18 / 14)) != i * 14 // 18 at i = 9
}


def redraw(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name or name.endswith("bias"):
                p.normal_(0, 0.5)


def pair(albert, layers: int, groups: int, inner: int):
    sizes = dict(SMALL, num_hidden_layers=layers, num_hidden_groups=groups,
                 inner_group_num=inner)
    ref = transformers.AlbertForMaskedLM(transformers.AlbertConfig(**sizes)).eval()
    redraw(ref)
    ours = albert.Model(albert.Config(**sizes)).eval()
    ours.load_state_dict(albert.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    return ours, ref


@pytest.mark.parametrize("opt_level", [0, 2])
@pytest.mark.parametrize("case", sorted(CASES))
def test_logits_match_transformers(compiled, opt_level, case):
    ours, ref = pair(compiled("albert", opt_level), *CASES[case])
    input_ids = torch.randint(1, 100, (3, 12))
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, 7:] = 1
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[1, 8:] = False  # padding in one row
    with torch.no_grad():
        for m in (mask, torch.ones_like(mask)):
            expected = ref(input_ids, attention_mask=m.long(), token_type_ids=token_type_ids)
            torch.testing.assert_close(ours(input_ids, m, token_type_ids), expected.logits)
        # left out, the mask is all ones and the token types zeros, as in transformers
        torch.testing.assert_close(ours(input_ids), ref(input_ids).logits)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())


def test_sharing_keeps_only_the_groups_weights(compiled):
    """12 steps over 1 group of 1 layer: one layer's weights, applied 12 times; the decoder
    is the word embedding (and its bias HF's predictions.bias)."""
    albert = compiled("albert")
    ours, ref = pair(albert, 12, 1, 1)
    assert len(ours.albert_layer_groups) == 1
    assert len(ours.albert_layer_groups[0].albert_layers) == 1
    assert ours.decoder.weight is ours.word_embeddings.weight
    torch.testing.assert_close(ours.decoder.bias, ref.predictions.bias)
    import inspect

    source = inspect.getsource(type(ours).forward)
    assert "for i in range(self.config.num_hidden_layers):" in source


def test_a_saved_checkpoint_without_tied_aliases_loads(compiled):
    """save_pretrained drops predictions.decoder.bias (HF ties it to predictions.bias)."""
    albert = compiled("albert")
    ours, ref = pair(albert, 2, 1, 1)
    state = {k: v for k, v in ref.state_dict().items() if k != "predictions.decoder.bias"}
    ours.load_state_dict(albert.convert_state_dict(state, "hf"), strict=True)


@pytest.mark.skipif(not full_size(), reason="published size: set ARCHCC_FULL=1")
def test_full_size(compiled):
    """albert-base-v2's sizes: 11,221,680 parameters (the tied decoder counted once)."""
    albert = compiled("albert")
    ref = transformers.AlbertForMaskedLM(transformers.AlbertConfig(
        hidden_size=768, num_attention_heads=12, intermediate_size=3072)).eval()
    redraw(ref)
    ours = albert.Model(albert.Config()).eval()
    ours.load_state_dict(albert.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    input_ids = torch.randint(1, 30000, (2, 32))
    mask = torch.ones(2, 32, dtype=torch.bool)
    with torch.no_grad():
        expected = ref(input_ids, attention_mask=mask.long()).logits
        torch.testing.assert_close(ours(input_ids, mask, torch.zeros_like(input_ids)), expected,
                                   atol=1e-4, rtol=1e-4)
