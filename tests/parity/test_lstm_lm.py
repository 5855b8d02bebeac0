"""Generated LSTM/GRU/RNN language models vs plain nn.Embedding + nn.LSTM + nn.Linear.

The reference is PyTorch's examples/word_language_model ``RNNModel`` (encoder, rnn, decoder),
written out here; weights travel through the spec's ``torch`` checkpoint layout.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import archcc
from tests.conftest import full_size

ROOT = Path(__file__).parents[2]


class RNNModel(nn.Module):
    """examples/word_language_model/model.py, batch-first, without its init scheme."""

    def __init__(self, rnn_type: str, ntoken: int, ninp: int, nhid: int, nlayers: int,
                 dropout: float = 0.0, tie_weights: bool = False, batch_first: bool = True):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout,
                                         batch_first=batch_first)
        self.decoder = nn.Linear(nhid, ntoken)
        if tie_weights:
            self.decoder.weight = self.encoder.weight

    def forward(self, input, hidden=None):
        output, hidden = self.rnn(self.drop(self.encoder(input)), hidden)
        return self.decoder(self.drop(output)), hidden


LSTM_SMALL = dict(vocab_size=53, n_embd=24, n_layer=2, dropout=0.0)


def _lstm_pair(lm, sizes):
    ref = RNNModel("LSTM", sizes["vocab_size"], sizes["n_embd"], sizes["n_embd"],
                   sizes["n_layer"], tie_weights=True).eval()
    ours = lm.Model(lm.Config(**sizes)).eval()
    ours.load_state_dict(lm.convert_state_dict(ref.state_dict(), "torch"), strict=True)
    return ours, ref


def test_lstm_lm_logits_and_states_match(compiled):
    lm = compiled("lstm_lm")
    ours, ref = _lstm_pair(lm, LSTM_SMALL)
    (ids,) = lm.example_inputs(batch=3, config=lm.Config(**LSTM_SMALL), T=11)
    with torch.no_grad():
        logits, h, c = ours(ids)
        expected, (h_ref, c_ref) = ref(ids)
    torch.testing.assert_close(logits, expected)
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(c, c_ref)
    assert ours.lm_head.weight is ours.wte.weight
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())


def test_lstm_lm_uses_torch_lstm_with_layer_dropout(compiled):
    lm = compiled("lstm_lm")
    config = lm.Config(**{**LSTM_SMALL, "dropout": 0.5})
    model = lm.Model(config)
    assert isinstance(model.lstm, nn.LSTM) and model.lstm.num_layers == 2
    assert model.lstm.dropout == 0.5 and model.lstm.batch_first
    (ids,) = lm.example_inputs(config=config)
    model.train()
    assert not torch.equal(model(ids)[0], model(ids)[0])  # dropout is live in training


def test_gru_lm_threads_its_state(compiled):
    lm = compiled("gru_lm")
    sizes = dict(vocab_size=41, n_embd=16, n_hidden=20, n_layer=2, dropout=0.0)
    ref = RNNModel("GRU", 41, 16, 20, 2).eval()
    ours = lm.Model(lm.Config(**sizes)).eval()
    ours.load_state_dict(lm.convert_state_dict(ref.state_dict(), "torch"), strict=True)
    ids, h0 = lm.example_inputs(batch=2, config=lm.Config(**sizes), T=9)
    assert h0.shape == (2, 2, 20)
    with torch.no_grad():  # two chunks with the state carried == the reference on the whole
        first, h = ours(ids[:, :4], h0)
        second, h = ours(ids[:, 4:], h)
        expected, h_ref = ref(ids, h0)
    torch.testing.assert_close(torch.cat([first, second], dim=1), expected)
    torch.testing.assert_close(h, h_ref)


def test_packed_bidirectional_rnn_matches_packing_by_hand(tmp_path):
    mod = archcc.build(ROOT / "tests" / "specs" / "rnn_packed.yaml", out_dir=tmp_path)
    model = mod.Model().eval()
    lengths = torch.tensor([7, 3, 5, 1])
    ids = torch.randint(1, 50, (7, 4))
    for b, n in enumerate(lengths):
        ids[n:, b] = 0  # padding
    rnn = nn.RNN(16, 12, 2, bidirectional=True, nonlinearity="relu")
    rnn.load_state_dict(model.rnn.state_dict())
    with torch.no_grad():
        logits, h = model(ids, lengths)
        x = model.wte(ids)
        for b, n in enumerate(lengths.tolist()):  # each sequence alone, no padding at all
            out_b, h_b = rnn(x[:n, b:b + 1])
            torch.testing.assert_close(logits[:n, b], model.head(out_b[:, 0]))
            torch.testing.assert_close(h[:, b], h_b[:, 0])
            assert (logits[n:, b] == model.head.bias).all()  # padded steps: zero features


@pytest.mark.skipif(not full_size(), reason="published size: set ARCHCC_FULL=1")
def test_lstm_lm_full_size(compiled):
    lm = compiled("lstm_lm")
    sizes = dict(vocab_size=10000, n_embd=650, n_layer=2, dropout=0.0)
    ours, ref = _lstm_pair(lm, sizes)
    (ids,) = lm.example_inputs(batch=4, config=lm.Config(**sizes), T=35)
    with torch.no_grad():
        out, expected = ours(ids)[0], ref(ids)[0]
    print(f"lstm_lm full: max abs err {(out - expected).abs().max().item():.3g}, "
          f"params {sum(p.numel() for p in ours.parameters())}")
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
