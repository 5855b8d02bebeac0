"""docs/language.md's "a block of your own" example: a block library plus a 10-line spec."""

from __future__ import annotations

from pathlib import Path

import torch

import archcc

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "custom_block"
SMALL = dict(vocab_size=61, n_positions=32, n_embd=32, n_head=4, n_layer=2, dropout=0.0)


def test_docs_show_the_example_files_as_they_are():
    readme = (ROOT / "docs" / "language.md").read_text()
    for name in ("parallel_block.yaml", "gpt2_parallel.yaml"):
        text = (EXAMPLE / name).read_text()
        body = "".join(line for line in text.splitlines(keepends=True)
                       if not line.startswith("#"))
        assert body in readme, f"docs/language.md's copy of {name} is stale"
        assert len(body.splitlines()) < 20


def test_parallel_block_is_attention_plus_mlp_on_one_norm(tmp_path):
    module = archcc.build(EXAMPLE / "gpt2_parallel.yaml", out_dir=tmp_path)
    model = module.Model(module.Config(**SMALL)).eval()
    assert type(model.h[0]).__name__ == "ParallelBlock" and len(model.h) == 2
    assert {"h.0.ln.weight", "h.1.attn.qkv.weight", "h.1.mlp.up.weight"} <= set(
        model.state_dict())
    (ids,) = module.example_inputs(batch=2, config=model.config, T=10)
    block, x = model.h[0], torch.randn(2, 10, SMALL["n_embd"])
    with torch.no_grad():
        h = block.ln(x)
        torch.testing.assert_close(block(x), x + block.attn(h) + block.mlp(h))
        logits = model(ids)
        # what it inherits from specs/gpt2.yaml still works: KV-cached greedy generation
        # equals recomputing every position
        cached = module.generate(model, ids[:, :4], max_new_tokens=5)
        plain = module.generate(model, ids[:, :4], max_new_tokens=5, use_cache=False)
    assert logits.shape == (2, 10, SMALL["vocab_size"])
    torch.testing.assert_close(cached, plain)
