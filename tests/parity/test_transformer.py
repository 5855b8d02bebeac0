"""Generated Vaswani Transformer vs torch.nn.Transformer (post-norm), with the tutorial's
embeddings, sinusoidal positions and generator around it."""

import math

import pytest
import torch
from torch import nn

from tests.conftest import full_size

SMALL = dict(src_vocab_size=50, tgt_vocab_size=60, d_model=32, nhead=4, num_encoder_layers=2,
             num_decoder_layers=2, dim_feedforward=64, max_len=64)


class Reference(nn.Module):
    """Written from the paper and the PyTorch tutorial, not from the generated code."""

    def __init__(self, src_vocab_size, tgt_vocab_size, d_model, nhead, num_encoder_layers,
                 num_decoder_layers, dim_feedforward, max_len=5000):
        super().__init__()
        self.d_model = d_model
        self.src_embed = nn.Embedding(src_vocab_size, d_model)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, d_model)
        position = torch.arange(max_len).float().unsqueeze(1)
        inv_freq = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(position * inv_freq), torch.cos(position * inv_freq)
        self.register_buffer("pe", pe, persistent=False)
        self.transformer = nn.Transformer(d_model, nhead, num_encoder_layers, num_decoder_layers,
                                          dim_feedforward, batch_first=True)
        self.generator = nn.Linear(d_model, tgt_vocab_size)

    def forward(self, src, tgt):
        scale = math.sqrt(self.d_model)
        src_x = self.src_embed(src) * scale + self.pe[: src.shape[1]]
        tgt_x = self.tgt_embed(tgt) * scale + self.pe[: tgt.shape[1]]
        mask = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
        out = self.transformer(src_x, tgt_x, tgt_mask=mask, tgt_is_causal=True)
        return self.generator(out)


def _pair(transformer, sizes):
    ref = Reference(**sizes).eval()
    ours = transformer.Model(transformer.Config(**sizes)).eval()
    ours.load_state_dict(transformer.convert_state_dict(ref.state_dict(), "torch"), strict=True)
    return ours, ref


@pytest.mark.parametrize("opt_level", [0, 1, 2])
def test_logits_match_torch_transformer(compiled, opt_level):
    transformer = compiled("transformer", opt_level)
    ours, ref = _pair(transformer, SMALL)
    src, tgt = transformer.example_inputs(batch=3, config=transformer.Config(**SMALL), S=11, T=7)
    with torch.no_grad():
        torch.testing.assert_close(ours(src, tgt), ref(src, tgt))


def test_decoder_is_causal(compiled):
    """Changing a later target token must not change earlier outputs."""
    transformer = compiled("transformer")
    ours, _ = _pair(transformer, SMALL)
    src, tgt = transformer.example_inputs(batch=1, config=transformer.Config(**SMALL), T=6)
    changed = tgt.clone()
    changed[0, -1] = (changed[0, -1] + 1) % SMALL["tgt_vocab_size"]
    with torch.no_grad():
        a, b = ours(src, tgt), ours(src, changed)
    torch.testing.assert_close(a[:, :-1], b[:, :-1])
    assert not torch.allclose(a[:, -1], b[:, -1])


@pytest.mark.skipif(not full_size(), reason="published size: set ARCHCC_FULL=1")
def test_full_size(compiled):
    transformer = compiled("transformer")
    sizes = dict(src_vocab_size=32000, tgt_vocab_size=32000, d_model=512, nhead=8,
                 num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048)
    ours, ref = _pair(transformer, sizes)
    src, tgt = transformer.example_inputs(batch=2, S=32, T=24)
    with torch.no_grad():
        out, expected = ours(src, tgt), ref(src, tgt)
    print(f"transformer full: max abs err {(out - expected).abs().max().item():.3g}, "
          f"params {sum(p.numel() for p in ours.parameters())}")
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
