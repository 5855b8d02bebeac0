"""Attentive seq2seq RNNs (Bahdanau, Luong) vs references written from the papers' equations.

The references below never look at the generated code: they hold plain weight tensors and
spell the GRU/LSTM cells and the three attention scores out by hand (Bahdanau et al. 2015,
eqs. in A.2; Luong et al. 2015, sections 3.1 and 3.3). Weights are read from the generated
model's state_dict by name, so the test also pins the checkpoint keys a user sees.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from torch import Tensor

import archcc

ROOT = Path(__file__).parents[2]
SMALL = dict(src_vocab=31, tgt_vocab=29, emb=8, hidden=12, dropout=0.0)


# ------------------------------------------------------------------- cells, by equation


def gru_cell(x: Tensor, h: Tensor, w: dict[str, Tensor]) -> Tensor:
    """r = σ(W_ir x + b_ir + W_hr h + b_hr), z likewise, n = tanh(W_in x + b_in + r (W_hn h +
    b_hn)), h' = (1 - z) n + z h; PyTorch stores the gates stacked as (r, z, n)."""
    gi = x @ w["weight_ih"].T + w["bias_ih"]
    gh = h @ w["weight_hh"].T + w["bias_hh"]
    (ir, iz, in_), (hr, hz, hn) = gi.chunk(3, -1), gh.chunk(3, -1)
    r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
    n = torch.tanh(in_ + r * hn)
    return (1 - z) * n + z * h


def lstm_cell(x: Tensor, h: Tensor, c: Tensor, w: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Gates (i, f, g, o) = W_ih x + b_ih + W_hh h + b_hh; c' = σf c + σi tanh g."""
    i, f, g, o = (x @ w["weight_ih"].T + w["bias_ih"] + h @ w["weight_hh"].T
                  + w["bias_hh"]).chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def attention(scores: Tensor, memory: Tensor, mask: Tensor) -> Tensor:
    """a_j = softmax_j(e_j) over the real source positions; c = Σ_j a_j h_j."""
    a = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return torch.einsum("bs,bsm->bm", a, memory)


# ---------------------------------------------------------------------- the references


class Reference:
    """One decoder step from the equations; ``facets`` mirror the spec's rnn_decoder."""

    def __init__(self, sd: dict[str, Tensor], cell: str, score: str, attend: str,
                 feed: bool):
        self.w = {k.removeprefix("decoder."): v for k, v in sd.items()
                  if k.startswith("decoder.")}
        self.cell_w = {k.removeprefix("cell."): v for k, v in self.w.items()
                       if k.startswith("cell.")}
        self.cell, self.score, self.attend, self.feed = cell, score, attend, feed

    def energies(self, s: Tensor, memory: Tensor) -> Tensor:
        w = self.w
        if self.score == "additive":  # e_tj = v^T tanh(W s + U h_j + b)
            hidden = torch.tanh((s @ w["attn_query.weight"].T)[:, None]
                                + memory @ w["attn_keys.weight"].T + w["attn_keys.bias"])
            return (hidden @ w["attn_v.weight"].T).squeeze(-1)
        if self.score == "general":  # score(h_t, h_s) = h_t^T W_a h_s
            return torch.einsum("bh,bsh->bs", s, memory @ w["attn_keys.weight"].T)
        return torch.einsum("bh,bsh->bs", s, memory)  # dot: h_t^T h_s

    def run_cell(self, x: Tensor, state: list[Tensor]) -> list[Tensor]:
        if self.cell == "lstm":
            return list(lstm_cell(x, state[0], state[1], self.cell_w))
        return [gru_cell(x, state[0], self.cell_w)]

    def step(self, token: Tensor, state: list[Tensor], feed: Tensor, memory: Tensor,
             mask: Tensor) -> tuple[Tensor, list[Tensor], Tensor]:
        w = self.w
        y = w["embed.weight"][token]
        if self.attend == "previous":  # Bahdanau: c_t from s_{t-1}, s_t = f(s_{t-1}, y, c_t)
            c = attention(self.energies(state[0], memory), memory, mask)
            state = self.run_cell(torch.cat([y, c], -1), state)
            out = torch.cat([state[0], c, y], -1)
            return out @ w["out.weight"].T + w["out.bias"], state, feed
        x = torch.cat([y, feed], -1) if self.feed else y  # Luong: h_t first, then attend
        state = self.run_cell(x, state)
        c = attention(self.energies(state[0], memory), memory, mask)
        attended = torch.tanh(torch.cat([c, state[0]], -1) @ w["combine.weight"].T)
        return attended @ w["out.weight"].T + w["out.bias"], state, attended

    def initial(self, init: list[Tensor]) -> tuple[list[Tensor], Tensor]:
        return list(init), torch.zeros_like(init[0])


def encode(model, sd: dict[str, Tensor], src: Tensor, bridge_both: bool):
    """The encoder side with the model's own nn.LSTM (not what is under test), and the
    bridges s0 = tanh(W h_final + b) (and c0 from the final cell state) written out."""
    memory, (h, c) = model.encoder(sd["src_embed.weight"][src])
    final = torch.cat([h[0], h[1]], -1) if bridge_both else h[1]
    init = [torch.tanh(final @ sd["bridge.weight"].T + sd["bridge.bias"])]
    if "bridge_c.weight" in sd:
        init.append(torch.tanh(c[1] @ sd["bridge_c.weight"].T + sd["bridge_c.bias"]))
    return memory, init


def teacher_forced(ref: Reference, init, memory, mask, tgt) -> Tensor:
    state, feed = ref.initial(init)
    logits = []
    for t in range(tgt.shape[1]):
        out, state, feed = ref.step(tgt[:, t], state, feed, memory, mask)
        logits.append(out)
    return torch.stack(logits, 1)


def greedy(ref: Reference, init, memory, mask, max_len: int, start: int, eos: int) -> Tensor:
    state, feed = ref.initial(init)
    token = torch.full((memory.shape[0],), start)
    tokens, done = [token], torch.zeros(memory.shape[0], dtype=torch.bool)
    for _ in range(max_len):
        out, state, feed = ref.step(token, state, feed, memory, mask)
        token = torch.where(done, torch.full_like(token, eos), out.argmax(-1))
        tokens.append(token)
        done |= token == eos
        if done.all():
            break
    return torch.stack(tokens, 1)


# --------------------------------------------------------------------------- the tests

CASES = {  # spec -> (cell, score, attend, input_feed, bridge over both directions)
    "seq2seq_bahdanau": ("gru", "additive", "previous", False, False),
    "seq2seq_luong": ("gru", "general", "current", True, True),
    "tests/specs/seq2seq_dot_lstm": ("lstm", "dot", "current", False, False),
}


def _module(compiled, build_dir, name: str):
    if "/" not in name:
        return compiled(name)
    return archcc.build(ROOT / f"{name}.yaml", out_dir=build_dir / "seq2seq")


@pytest.fixture
def padded_batch():
    """Three sources of lengths 9, 6 and 4 (padding is False in the mask)."""
    mask = torch.arange(9)[None, :] < torch.tensor([9, 6, 4])[:, None]
    return mask


@pytest.mark.parametrize("name", sorted(CASES))
def test_teacher_forcing_matches_the_equations(compiled, build_dir, name, padded_batch):
    m = _module(compiled, build_dir, name)
    cell, score, attend, feed, both = CASES[name]
    model = m.Model(m.Config(**SMALL)).eval()
    src, _, tgt = m.example_inputs(3, model.config, S=9, T=7)
    sd = model.state_dict()
    ref = Reference(sd, cell, score, attend, feed)
    with torch.no_grad():
        got = model(src, padded_batch, tgt)
        memory, init = encode(model, sd, src, both)
        want = teacher_forced(ref, init, memory, padded_batch, tgt)
    assert got.shape == (3, 7, SMALL["tgt_vocab"])
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("name", sorted(CASES))
def test_greedy_decode_matches_the_equations_step_by_step(compiled, build_dir, name,
                                                          padded_batch):
    m = _module(compiled, build_dir, name)
    cell, score, attend, feed, both = CASES[name]
    model = m.Model(m.Config(**SMALL)).eval()
    src = m.example_inputs(3, model.config, S=9, T=1)[0]
    sd = model.state_dict()
    ref = Reference(sd, cell, score, attend, feed)
    eos = inspect.signature(model.decoder.greedy).parameters["eos_token"].default
    with torch.no_grad():
        got = m.greedy_decode(model, src, padded_batch, max_len=12)
        memory, init = encode(model, sd, src, both)
        want = greedy(ref, init, memory, padded_batch, 12, start=1, eos=eos)
    torch.testing.assert_close(got, want)
    assert got[:, 0].eq(1).all() and got.shape[1] <= 13
    # decoding stops by itself once every row has emitted EOS
    with torch.no_grad():
        forced = m.greedy_decode(model, src, padded_batch, max_len=12,
                                 eos_token=int(got[0, 1]))
    assert forced.shape[1] <= got.shape[1] and (forced[0, 1:] == forced[0, 1]).all()


def test_padding_gets_no_attention(compiled, padded_batch):
    m = compiled("seq2seq_bahdanau")
    model = m.Model(m.Config(**SMALL)).eval()
    src, _, _ = m.example_inputs(3, model.config, S=9, T=1)
    tgt = torch.randint(0, SMALL["tgt_vocab"], (3, 4))
    with torch.no_grad():
        memory, s0 = model.encode(src, padded_batch)
        state, keys = model.decoder.start(memory, s0)
        _, _, weights = model.decoder.step(torch.ones(3, dtype=torch.long), state, memory,
                                           keys, padded_batch)
        # whatever the encoder wrote at padded positions, the decoder never sees it
        noisy = memory.clone()
        noisy[~padded_batch] = torch.randn(int((~padded_batch).sum()), memory.shape[-1]) * 10
        clean = model.decoder(tgt, memory, s0, mask=padded_batch)
        dirty = model.decoder(tgt, noisy, s0, mask=padded_batch)
        unmasked = model.decoder(tgt, noisy, s0)
    assert weights[~padded_batch].eq(0).all() and weights[padded_batch].gt(0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    torch.testing.assert_close(clean, dirty)
    assert not torch.allclose(clean[1:], unmasked[1:])  # without the mask it would


def test_decoder_trains(compiled):
    """Gradients reach every parameter through the unrolled loop."""
    m = compiled("seq2seq_luong")
    model = m.Model(m.Config(**SMALL)).train()
    src, mask, tgt = m.example_inputs(2, model.config, S=5, T=4)
    loss = torch.nn.functional.cross_entropy(model(src, mask, tgt).flatten(0, 1),
                                             tgt.flatten())
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []
