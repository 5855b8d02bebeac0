"""A fresh generated model starts where a fresh reference starts: every bundled spec's `init:`
against its reference, tensor by tensor (tests/init_stats.py), at -O0 and -O2 (fused q|k|v).

References that are libraries (transformers, timm, diffusers) are built as they are; the
others are the parity tests' modules with the initialisation their sources describe, cited
at each recipe below.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tests.init_stats import check

transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")
diffusers = pytest.importorskip("diffusers")


def _hf(model_class: str, config_class: str, **config):
    return getattr(transformers, model_class)(getattr(transformers, config_class)(**config))


GPT2 = dict(vocab_size=512, n_positions=128, n_embd=128, n_layer=4, n_head=4)
BERT = dict(vocab_size=512, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=256, max_position_embeddings=64)
ROBERTA = dict(BERT, max_position_embeddings=66, type_vocab_size=1, pad_token_id=1)
DISTILBERT = dict(vocab_size=512, dim=128, n_layers=2, n_heads=4, hidden_dim=256,
                  max_position_embeddings=64)
BART = dict(vocab_size=512, max_position_embeddings=64, d_model=128, encoder_layers=2,
            decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
            encoder_ffn_dim=256, decoder_ffn_dim=256)
T5 = dict(vocab_size=512, d_model=128, d_ff=256, num_layers=2, num_decoder_layers=2,
          num_heads=4)
VIT = dict(image_size=32, patch_size=4, num_channels=3, hidden_size=128, num_hidden_layers=2,
           num_attention_heads=4, intermediate_size=256, num_labels=10)
SWIN = dict(img_size=224, embed_dim=48, depths=(2, 2, 2, 2), num_heads=(2, 4, 8, 8),
            window_size=7, num_classes=10)  # timm's names are the Config's
MIXER = dict(img_size=32, patch_size=4, embed_dim=128, num_blocks=2, num_classes=10)
DDPM = dict(sample_size=16, in_channels=3, out_channels=3, layers_per_block=2,
            block_out_channels=(32, 64, 64, 64), norm_num_groups=8, norm_eps=1e-6,
            down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=32, downsample_padding=0, flip_sin_to_cos=False, freq_shift=1)


def _clip():
    from tests.parity.test_clip import _ours

    text = dict(vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=32)
    vision = dict(image_size=32, patch_size=4, hidden_size=96, intermediate_size=192,
                  num_hidden_layers=2, num_attention_heads=4)
    config = transformers.CLIPConfig(text_config=dict(text, eos_token_id=2), projection_dim=64,
                                     vision_config=vision)
    return transformers.CLIPModel(config), _ours(text, vision, 64), "hf"


def _ddpm():
    # diffusers' names are the Config's, less two settings the spec fixes
    ours = {k: v for k, v in DDPM.items() if k not in ("downsample_padding", "flip_sin_to_cos")}
    return diffusers.UNet2DModel(**DDPM), ours, "diffusers"


def _swin():
    from timm.models.swin_transformer import SwinTransformer

    ref = SwinTransformer(patch_size=4, **SWIN)
    return ref, SWIN, "timm"


def _mixer():
    from timm.models.mlp_mixer import MlpMixer

    return MlpMixer(**MIXER), MIXER, "timm"


def _word_language_model(rnn: str, sizes: dict, tie: bool):
    """pytorch/examples word_language_model/model.py: RNNModel.init_weights."""
    from tests.parity.test_lstm_lm import RNNModel

    hidden = sizes.get("n_hidden", sizes["n_embd"])
    ref = RNNModel(rnn, sizes["vocab_size"], sizes["n_embd"], hidden, sizes["n_layer"],
                   tie_weights=tie)
    with torch.no_grad():
        ref.encoder.weight.uniform_(-0.1, 0.1)
        ref.decoder.bias.zero_()
        ref.decoder.weight.uniform_(-0.1, 0.1)
    return ref


LSTM_LM = dict(vocab_size=512, n_embd=128, n_layer=2, dropout=0.0)
GRU_LM = dict(vocab_size=512, n_embd=96, n_hidden=128, n_layer=2, dropout=0.0)
TEXTCNN = dict(vocab_size=512, embed_dim=64, num_filters=32, num_classes=3, dropout=0.0)
ELMO = dict(char_vocab=64, char_dim=16, n_filters=32, n_highway=2, dim=64, vocab_size=256)
TRANSFORMER = dict(src_vocab_size=256, tgt_vocab_size=300, d_model=64, nhead=4,
                   num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=128, max_len=64)
WORD2VEC = dict(vocab_size=512, embed_dim=64)

DECODER = dict(vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, initializer_range=0.03)
MIXTRAL = dict(DECODER, intermediate_size=128, num_local_experts=4, num_experts_per_tok=2)
ALBERT = dict(vocab_size=512, embedding_size=64, hidden_size=128, num_hidden_layers=4,
              num_hidden_groups=2, inner_group_num=1, num_attention_heads=4,
              intermediate_size=256, max_position_embeddings=64, initializer_range=0.05)
CONVNEXT = dict(num_stages=2, hidden_sizes=[32, 64], depths=[2, 2], num_labels=10,
                initializer_range=0.05, layer_scale_init_value=0.25)
RESNET = dict(embedding_size=16, hidden_sizes=[32, 64], depths=[2, 1], layer_type="bottleneck",
              num_labels=10)


def _llama():
    """Llama 3.2's tied head (the spec ties lm_head to embed_tokens)."""
    return (_hf("LlamaForCausalLM", "LlamaConfig", **DECODER, head_dim=32,
                tie_word_embeddings=True), dict(DECODER, head_dim=32), "hf")


def _vision(model_class: str, config_class: str, sizes: dict):
    """A transformers vision model; the Config takes tuples and the image side."""
    ref = _hf(model_class, config_class, **sizes)
    ours = {k: tuple(v) if isinstance(v, list) else v for k, v in sizes.items()}
    return ref, dict(ours, image_size=32), "hf"


def _kim_cnn():
    """yoonkim/CNN_sentence: vectors U(-0.25, 0.25) with a zero padding row (process_data.py),
    conv W U(-0.01, 0.01) for ReLU and b 0 (LeNetConvPoolLayer), output W and b 0."""
    from tests.parity.test_textcnn import KimCNN

    ref = KimCNN(512, 64, 32, 3)
    with torch.no_grad():
        ref.embedding.weight.uniform_(-0.25, 0.25)
        ref.embedding.weight[0].zero_()
        for conv in ref.convs:
            conv.weight.uniform_(-0.01, 0.01)
            conv.bias.zero_()
        ref.fc.weight.zero_()
        ref.fc.bias.zero_()
    return ref


def _elmo():
    """allennlp: modules keep PyTorch's init; Highway sets the gate half of each bias to 1;
    ScalarMix starts at scalars 0 and gamma 1 (the parity reference draws them at random)."""
    from tests.parity.test_elmo import ReferenceElmo

    ref = ReferenceElmo(**ELMO)
    with torch.no_grad():
        for layer in ref.highway_layers:
            layer.bias[layer.out_features // 2:].fill_(1.0)
        for scalar in ref.scalar_parameters:
            scalar.zero_()
        ref.gamma.fill_(1.0)
    return ref


def _transformer():
    """The PyTorch translation tutorial (Seq2SeqTransformer): xavier_uniform_ on every
    parameter with more than one dim, after nn.Transformer's own reset."""
    from tests.parity.test_transformer import Reference

    ref = Reference(**TRANSFORMER)
    for p in ref.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
    return ref


class _Word2Vec(nn.Module):
    """word2vec.c InitNet: syn0 U(-0.5 / dim, 0.5 / dim), syn1neg 0."""

    def __init__(self, vocab_size: int, embed_dim: int, bag: bool = False):
        super().__init__()
        self.in_embed = (nn.EmbeddingBag(vocab_size, embed_dim, mode="mean") if bag
                         else nn.Embedding(vocab_size, embed_dim))
        self.out_embed = nn.Embedding(vocab_size, embed_dim)
        with torch.no_grad():
            self.in_embed.weight.uniform_(-0.5 / embed_dim, 0.5 / embed_dim)
            self.out_embed.weight.zero_()


CASES = {
    "gpt2": lambda: (_hf("GPT2LMHeadModel", "GPT2Config", **GPT2), GPT2, "hf"),
    "bert": lambda: (_hf("BertModel", "BertConfig", **BERT), BERT, "hf"),
    "roberta": lambda: (_hf("RobertaModel", "RobertaConfig", **ROBERTA), ROBERTA, "hf"),
    "distilbert": lambda: (_hf("DistilBertModel", "DistilBertConfig", **DISTILBERT),
                           DISTILBERT, "hf"),
    "bart": lambda: (_hf("BartModel", "BartConfig", **BART), BART, "hf"),
    "t5": lambda: (_hf("T5ForConditionalGeneration", "T5Config", **T5, d_kv=32), T5, "hf"),
    "vit": lambda: (_hf("ViTForImageClassification", "ViTConfig", **VIT), VIT, "hf"),
    "clip": _clip,
    "swin": _swin,
    "mlp_mixer": _mixer,
    "ddpm_unet": _ddpm,
    "lstm_lm": lambda: (_word_language_model("LSTM", LSTM_LM, True), LSTM_LM, "torch"),
    "gru_lm": lambda: (_word_language_model("GRU", GRU_LM, False), GRU_LM, "torch"),
    "textcnn": lambda: (_kim_cnn(), TEXTCNN, "torch"),
    "elmo": lambda: (_elmo(), ELMO, "allennlp"),
    "transformer": lambda: (_transformer(), TRANSFORMER, "torch"),
    "llama": _llama,
    "mistral": lambda: (_hf("MistralForCausalLM", "MistralConfig", **DECODER), DECODER, "hf"),
    "mixtral": lambda: (_hf("MixtralForCausalLM", "MixtralConfig", **MIXTRAL), MIXTRAL, "hf"),
    "albert": lambda: (_hf("AlbertForMaskedLM", "AlbertConfig", **ALBERT), ALBERT, "hf"),
    "convnext": lambda: _vision("ConvNextForImageClassification", "ConvNextConfig", CONVNEXT),
    "resnet": lambda: _vision("ResNetForImageClassification", "ResNetConfig", RESNET),
}


@pytest.mark.parametrize("opt_level", [0, 2])
@pytest.mark.parametrize("name", sorted(CASES))
def test_fresh_model_matches_fresh_reference(compiled, name, opt_level):
    mod = compiled(name, opt_level)
    torch.manual_seed(0)
    ref, sizes, layout = CASES[name]()
    ours = mod.Model(mod.Config(**sizes))
    problems = check(ours, ref, mod.convert_state_dict, layout)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name, bag", [("word2vec", False), ("word2vec_cbow", True)])
def test_word2vec_starts_as_word2vec_c(compiled, name, bag):
    mod = compiled(name)
    ours = mod.Model(mod.Config(**WORD2VEC))
    problems = check(ours, _Word2Vec(**WORD2VEC, bag=bag), lambda sd, _: sd, "")
    assert not problems, "\n".join(problems)


def test_timm_vit_from_the_importer_starts_as_timm(tmp_path):
    """`archcc import timm` writes timm's scheme (tiny CLS token, PyTorch's patch conv)."""
    import archcc
    from archcc.importers.timm_names import import_timm

    spec = import_timm("vit_base_patch16_224", tmp_path / "vit_timm.yaml",
                       ["img_size=32", "patch_size=4", "embed_dim=128", "depth=2",
                        "num_heads=4", "num_classes=10"])
    mod = archcc.build(spec, out_dir=tmp_path)
    torch.manual_seed(0)
    ref = timm.create_model("vit_base_patch16_224", pretrained=False, img_size=32, patch_size=4,
                            embed_dim=128, depth=2, num_heads=4, num_classes=10)
    ours = mod.Model(mod.Config())
    problems = check(ours, ref, mod.convert_state_dict, "timm")
    assert not problems, "\n".join(problems)


def _imported():
    """case -> (model_type, config, reference class): the importer parity tests' decoders
    (built as AutoModelForCausalLM) and two structured families."""
    from tests.parity import test_llm_import as dense
    from tests.parity import test_moe_import as moe

    cases = {case: (t, dict(dense.BASE, **kw), None) for case, (t, kw) in dense.CASES.items()}
    cases.update({case: (t, dict(moe.BASE, **kw), None) for case, (t, kw, _) in moe.CASES.items()})
    cases["convnext"] = ("convnext", dict(CONVNEXT, image_size=32),
                         "ConvNextForImageClassification")
    cases["albert"] = ("albert", ALBERT, "AlbertForMaskedLM")
    return cases


@pytest.mark.parametrize("case", ["llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2",
                                  "phi3", "gpt_neox", "olmo2", "mixtral", "qwen2_moe",
                                  "convnext", "albert"])
def test_imported_families_start_as_transformers(tmp_path, case):
    """`archcc import hf` copies initializer_range (0.07 here) into the spec's params and
    states the family's scheme: Gemma's (1 + w) norms start at zeros, Phi-3's padding row is
    zero, the stacked experts of Mixtral and Qwen2-MoE are drawn like the linears."""
    import archcc
    from archcc.importers import import_hf

    model_type, kwargs, model_class = _imported()[case]
    config = transformers.AutoConfig.for_model(model_type, **dict(kwargs, initializer_range=0.07))
    config.to_json_file(tmp_path / "config.json")
    mod = archcc.build(import_hf(tmp_path / "config.json", tmp_path / f"{case}.yaml"),
                       out_dir=tmp_path)
    torch.manual_seed(0)
    ref = (transformers.AutoModelForCausalLM.from_config(config) if model_class is None
           else getattr(transformers, model_class)(config))
    assert mod.Config().initializer_range == 0.07
    problems = check(mod.Model(mod.Config()), ref, mod.convert_state_dict, "hf")
    assert not problems, "\n".join(problems)


def test_luong_draws_everything_from_a_small_uniform(compiled):
    """Luong et al. (2015), section 4.1: every parameter U(-0.1, 0.1)."""
    mod = compiled("seq2seq_luong")
    model = mod.Model(mod.Config())
    for name, p in model.named_parameters():
        assert p.abs().max() <= 0.1, name
        if p.numel() >= 4096:
            assert abs(p.std().item() - 0.1 / math.sqrt(3)) < 0.05 * 0.1 / math.sqrt(3), name


def test_bahdanau_scheme(compiled):
    """Bahdanau et al. (2015), appendix B.1: orthogonal recurrent matrices, attention
    N(0, 0.001), v_a and biases 0, every other matrix N(0, 0.01)."""
    mod = compiled("seq2seq_bahdanau")
    model = mod.Model(mod.Config())
    for name, p in model.named_parameters():
        if "weight_hh" in name:  # orthonormal columns
            torch.testing.assert_close(p.T @ p, torch.eye(p.shape[1]), atol=1e-4, rtol=0)
        elif "bias" in name or name == "decoder.attn_v.weight":
            assert torch.all(p == 0), name
        else:
            want = 0.001 if name.startswith("decoder.attn_") else 0.01
            assert abs(p.std().item() / want - 1) < 0.1, (name, p.std().item())
