"""word2vec heads vs the negative-sampling objective written from Mikolov et al. (2013):

    loss(c, o) = -log s(u_o . v_c) - sum_k log s(-u_k . v_c),   s = sigmoid

with v = input (word) vectors, u = output (context) vectors; CBOW replaces v_c by the mean of
the window's input vectors."""

from __future__ import annotations

import math

import torch

SMALL = dict(vocab_size=50, embed_dim=8, negatives=3)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _loss(v: torch.Tensor, u_o: torch.Tensor, u_noise: torch.Tensor) -> float:
    """One example, scalar by scalar: nothing shared with the generated code."""
    dot = lambda a, b: sum(float(x) * float(y) for x, y in zip(a, b, strict=True))  # noqa: E731
    loss = -math.log(_sigmoid(dot(u_o, v)))
    for u_k in u_noise:
        loss -= math.log(_sigmoid(-dot(u_k, v)))
    return loss


def test_skip_gram_loss_matches_the_equation(compiled):
    mod = compiled("word2vec")
    config = mod.Config(**SMALL)
    model = mod.Model(config).eval()
    center, context, noise = mod.example_inputs(batch=4, config=config)
    with torch.no_grad():
        losses = model(center, context, noise)
    v, u = model.in_embed.weight, model.out_embed.weight
    expected = [_loss(v[center[i]], u[context[i]], u[noise[i]]) for i in range(4)]
    torch.testing.assert_close(losses, torch.tensor(expected), rtol=1e-5, atol=1e-5)


def test_cbow_loss_matches_the_equation(compiled):
    mod = compiled("word2vec_cbow")
    config = mod.Config(**SMALL, window=2)
    model = mod.Model(config).eval()
    context, target, noise = mod.example_inputs(batch=3, config=config)
    assert context.shape == (3, 4)
    with torch.no_grad():
        losses = model(context, target, noise)
    v, u = model.in_embed.weight, model.out_embed.weight
    expected = [_loss(v[context[i]].mean(0), u[target[i]], u[noise[i]]) for i in range(3)]
    torch.testing.assert_close(losses, torch.tensor(expected), rtol=1e-5, atol=1e-5)


def test_skip_gram_trains_only_the_rows_it_reads(compiled):
    mod = compiled("word2vec")
    model = mod.Model(mod.Config(**SMALL))
    with torch.no_grad():  # word2vec.c starts the context vectors at zero, where a first step
        model.out_embed.weight.normal_()  # moves only them: draw them, so both tables learn
    center, context, noise = torch.tensor([1]), torch.tensor([2]), torch.tensor([[3, 4, 5]])
    model(center, context, noise).sum().backward()
    grad_in, grad_out = model.in_embed.weight.grad, model.out_embed.weight.grad
    assert set(grad_in.abs().sum(1).nonzero().flatten().tolist()) == {1}
    assert set(grad_out.abs().sum(1).nonzero().flatten().tolist()) == {2, 3, 4, 5}
