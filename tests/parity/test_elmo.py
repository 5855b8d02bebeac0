"""Generated ELMo vs a reference written from Peters et al. (2018) and allennlp's layout.

Reference equations: a character CNN (max over time of ReLU convolutions), highway layers
``x = g * x + (1 - g) * relu(W_h x)`` with ``[W_h; W_g]`` one Linear as allennlp stores it,
a projection, two independent 2-layer LSTM language models (forward over the tokens, backward
over the reversed tokens) with a residual connection around the second layer, and the mix
``ELMo = gamma * sum_j softmax(s)_j * h_j`` over h_0 = [x; x], h_1, h_2 (both directions)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SMALL = dict(char_vocab=40, char_dim=6, n_filters=5, n_highway=2, dim=8, vocab_size=23)


class ReferenceElmo(nn.Module):
    def __init__(self, char_vocab, char_dim, n_filters, n_highway, dim, vocab_size):
        super().__init__()
        self.char_embed = nn.Embedding(char_vocab, char_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(char_dim, n_filters, w) for w in (1, 2, 3))
        width = 3 * n_filters
        self.highway_layers = nn.ModuleList(nn.Linear(width, 2 * width) for _ in range(n_highway))
        self.projection = nn.Linear(width, dim)
        self.forward_layers = nn.ModuleList(nn.LSTM(dim, dim, batch_first=True) for _ in "12")
        self.backward_layers = nn.ModuleList(nn.LSTM(dim, dim, batch_first=True) for _ in "12")
        self.softmax = nn.Linear(dim, vocab_size)
        self.scalar_parameters = nn.ParameterList(nn.Parameter(torch.randn(1)) for _ in "012")
        self.gamma = nn.Parameter(torch.tensor([1.5]))

    def tokens(self, chars):
        b, t, w = chars.shape
        x = self.char_embed(chars.reshape(b * t, w)).permute(0, 2, 1)
        x = torch.cat([torch.max(F.relu(conv(x)), dim=2)[0] for conv in self.convs], dim=1)
        for layer in self.highway_layers:
            nonlinear, gate = layer(x).chunk(2, dim=-1)
            gate = torch.sigmoid(gate)
            x = gate * x + (1 - gate) * F.relu(nonlinear)
        return self.projection(x).reshape(b, t, -1)

    @staticmethod
    def _lm(layers, x):
        outs = []
        for i, lstm in enumerate(layers):
            y, _ = lstm(x)
            x = y + x if i > 0 else y  # residual around every layer but the first
            outs.append(x)
        return outs

    def forward(self, chars):
        x = self.tokens(chars)
        fwd = self._lm(self.forward_layers, x)
        bwd = [torch.flip(h, [1]) for h in self._lm(self.backward_layers, torch.flip(x, [1]))]
        layers = [torch.cat([x, x], -1)] + [torch.cat(p, -1) for p in zip(fwd, bwd, strict=True)]
        weights = F.softmax(torch.cat(list(self.scalar_parameters)), dim=0)
        mix = self.gamma * sum(w * h for w, h in zip(weights, layers, strict=True))
        return mix, self.softmax(fwd[-1]), self.softmax(bwd[-1])


def test_elmo_matches_the_reference(compiled):
    mod = compiled("elmo")
    ref = ReferenceElmo(**SMALL).eval()
    ours = mod.Model(mod.Config(**SMALL)).eval()
    ours.load_state_dict(mod.convert_state_dict(ref.state_dict(), "allennlp"), strict=True)
    (chars,) = mod.example_inputs(batch=3, config=mod.Config(**SMALL), T=5, W=7)
    with torch.no_grad():
        for got, want in zip(ours(chars), ref(chars), strict=True):
            torch.testing.assert_close(got, want)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())


def test_mix_weights_are_learned(compiled):
    mod = compiled("elmo")
    model = mod.Model(mod.Config(**SMALL))
    (chars,) = mod.example_inputs(config=mod.Config(**SMALL), T=4, W=5)
    model(chars)[0].sum().backward()
    assert model.mix_weights.grad.abs().sum() > 0 and model.gamma.grad.abs().sum() > 0
