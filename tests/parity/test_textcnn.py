"""Generated TextCNN (Kim 2014) vs the usual hand-written nn.ModuleList implementation, and an
embedding-bag classifier vs averaging embeddings by hand."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import archcc

ROOT = Path(__file__).parents[2]
SMALL = dict(vocab_size=61, embed_dim=12, num_filters=7, num_classes=3, dropout=0.0)


class KimCNN(nn.Module):
    """Embedding, one Conv1d per filter width, ReLU, max over time, concat, dropout, linear."""

    def __init__(self, vocab: int, dim: int, filters: int, classes: int, widths=(3, 4, 5)):
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(dim, filters, w) for w in widths)
        self.dropout = nn.Dropout(0.0)
        self.fc = nn.Linear(filters * len(widths), classes)

    def forward(self, ids):
        x = self.embedding(ids).permute(0, 2, 1)
        pooled = [F.relu(conv(x)).max(dim=2).values for conv in self.convs]
        return self.fc(self.dropout(torch.cat(pooled, dim=1)))


def test_textcnn_matches_kim_cnn(compiled):
    mod = compiled("textcnn")
    ref = KimCNN(61, 12, 7, 3).eval()
    ours = mod.Model(mod.Config(**SMALL)).eval()
    ours.load_state_dict(mod.convert_state_dict(ref.state_dict(), "torch"), strict=True)
    (ids,) = mod.example_inputs(batch=4, config=mod.Config(**SMALL), T=13)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), ref(ids))
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())


def test_textcnn_rejects_sentences_shorter_than_a_filter(compiled):
    mod = compiled("textcnn")
    model = mod.Model(mod.Config(**SMALL)).eval()
    (ids,) = mod.example_inputs(config=mod.Config(**SMALL), T=4)
    try:
        model(ids)
    except RuntimeError as exc:  # torch's own message: kernel larger than the input
        assert "kernel size" in str(exc).lower()
    else:
        raise AssertionError("a width-5 filter over 4 tokens must fail")


def test_embedding_bag_is_a_mean_of_rows(tmp_path):
    mod = archcc.build(ROOT / "tests" / "specs" / "fasttext.yaml", out_dir=tmp_path)
    model = mod.Model().eval()
    assert isinstance(model.bag, nn.EmbeddingBag) and model.bag.mode == "mean"
    ids = torch.tensor([[5, 6, 7, 0], [9, 0, 0, 0]])
    with torch.no_grad():
        table = model.bag.weight
        bags = torch.stack([table[[5, 6, 7]].mean(0), table[9]])  # padding_idx 0 left out
        torch.testing.assert_close(model(ids), model.fc(bags))
