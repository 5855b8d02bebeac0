"""archcc diff over a matrix of architecture pairs: structure, wiring, figures, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archcc.cli import main
from archcc.inspect import diff_specs, diff_text, summarize
from archcc.inspect.diff import Diff
from tests.golden_util import check_golden
from tests.inspect.conftest import SMALL

ROOT = Path(__file__).parents[2]
SPECS = ROOT / "specs"
HERE = Path(__file__).parent / "specs"


def _variant(tmp_path: Path, source: Path, name: str, *edits: tuple[str, str]) -> Path:
    """A copy of a spec with text replacements (each must apply), named ``name``."""
    text = source.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def _roberta(tmp_path: Path) -> Path:
    return SPECS / "roberta.yaml"


def _swin() -> Path:
    return SPECS / "swin.yaml" if (SPECS / "swin.yaml").exists() else HERE / "swin_like.yaml"


def _pre_norm(tmp_path: Path) -> Path:
    source = SPECS / "transformer.yaml"
    text = source.read_text().replace("placement: post", "placement: pre")
    path = tmp_path / "transformer_pre.yaml"
    path.write_text(text.replace("name: transformer", "name: transformer_pre"))
    return path


def _pairs(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    return {"gpt2-bert": (SPECS / "gpt2.yaml", SPECS / "bert.yaml"),
            "bert-roberta": (SPECS / "bert.yaml", _roberta(tmp_path)),
            "vit-swin": (SPECS / "vit.yaml", _swin()),
            "post-pre": (SPECS / "transformer.yaml", _pre_norm(tmp_path))}


def _check_consistent(d: Diff, a: Path, b: Path) -> None:
    """Invariants every diff keeps, whatever the pair."""
    sa = summarize(a, {k: v for k, v in d.dims.items()}, d.a["set"])
    sb = summarize(b, {k: v for k, v in d.dims.items()}, d.b["set"])
    assert d.totals["params"] == (sa.totals["params"], sb.totals["params"])
    assert d.totals["flops"] == (sa.totals["flops"], sb.totals["flops"])
    counts = d.checkpoint.counts
    assert counts["unchanged"] + counts["renamed"] + counts["reshaped"] + counts["dropped"] \
        == len(sa.state)
    assert counts["unchanged"] + counts["renamed"] + counts["reshaped"] + counts["new"] \
        == len(sb.state)
    matched_b = [c.b for c in d.layers if c.b]
    assert len(matched_b) == len(set(matched_b))  # no layer of B claimed twice
    json.dumps(d.to_json())  # serialisable
    text = diff_text(d)
    assert d.a["spec"] in text and d.b["spec"] in text and "\033[" not in text


@pytest.mark.parametrize("pair", ["gpt2-bert", "bert-roberta", "vit-swin", "post-pre"])
def test_matrix(pair, tmp_path):
    a, b = _pairs(tmp_path)[pair]
    dims = {"B": 2} if pair == "vit-swin" else {"T": 8}
    d = diff_specs(a, b, dims)
    _check_consistent(d, a, b)
    assert not d.identical
    back = diff_specs(b, a, dims)  # the reverse diff mirrors the counts
    assert back.checkpoint.counts["new"] == d.checkpoint.counts["dropped"]


def _by_a(d: Diff) -> dict:
    return {c.a: c for c in d.layers if c.a}


def test_gpt2_vs_bert_finds_renames_wiring_and_op_changes():
    d = diff_specs(SPECS / "gpt2.yaml", SPECS / "bert.yaml", {"T": 8})
    layers = _by_a(d)
    assert (layers["h"].status, layers["h"].b) == ("renamed", "encoder")
    assert layers["h.*.attn"].b == "encoder.*.attention"
    assert ("causal", True, False) in layers["h.*.attn"].changes
    assert ("act", "gelu_tanh", "gelu") in layers["h.*.mlp"].changes
    assert layers["wpe"].b == "position_embeddings"  # both read positions(...)
    assert "Block -> Layer: attn -> attention: pre-norm -> post-norm" in d.wiring
    assert layers["h.*.ln_1"].status == "removed"
    renamed = ("h.[0-11].attn.qkv.weight", "encoder.[0-11].attention.qkv.weight")
    assert renamed in d.checkpoint.renamed


def test_bert_vs_roberta_keeps_the_encoder(tmp_path):
    d = diff_specs(SPECS / "bert.yaml", _roberta(tmp_path), {"T": 8})
    assert ("vocab_size", 30522, 50265) in d.params
    assert _by_a(d)["encoder"].status == "same"
    assert d.wiring == ["Bert -> Roberta: positions() -> positions(pad=pad_token_id)"]
    reshaped = {r[0] for r in d.checkpoint.reshaped}
    assert reshaped >= {"word_embeddings.weight", "position_embeddings.weight"}
    assert any(k.startswith("encoder.[0-11].attention.qkv") for k in d.checkpoint.unchanged)


def test_pre_norm_vs_post_norm(tmp_path):
    d = diff_specs(SPECS / "transformer.yaml", _pre_norm(tmp_path))
    assert "EncoderLayer: self_attn: post-norm -> pre-norm" in d.wiring
    assert "DecoderLayer: cross_attn: post-norm -> pre-norm" in d.wiring
    changed = _by_a(d)["encoder.*.ff"].changes
    assert ("residual.placement", "post", "pre") in changed
    assert d.checkpoint.counts["dropped"] == d.checkpoint.counts["new"] == 0  # weights all fit
    assert d.totals["params"][0] == d.totals["params"][1]


def test_gelu_to_swiglu_and_heads(tmp_path):
    b = _variant(tmp_path, SPECS / "gpt2.yaml", "gpt2_swiglu",
                 ("act: gelu_tanh", "act: silu, gated: true"))
    d = diff_specs(SPECS / "gpt2.yaml", b, {"T": 8}, set_b=["n_head=16"])
    mlp = _by_a(d)["h.*.mlp"]
    assert ("op", "ffn gelu_tanh", "ffn swiglu") in mlp.changes
    assert ("heads", 12, 16) in _by_a(d)["h.*.attn"].changes
    assert d.checkpoint.new == ["h.[0-11].mlp.gate.weight", "h.[0-11].mlp.gate.bias"]
    assert mlp.params[1] - mlp.params[0] == 12 * (768 * 3072 + 3072)


def test_across_sizes_and_front_ends():
    arch = ROOT / "examples" / "gpt2.arch"
    same = diff_specs(SPECS / "gpt2.yaml", arch, {"T": 8})
    assert same.identical and same.checkpoint.counts["unchanged"] == 149
    assert "no architectural differences" in diff_text(same)
    bigger = diff_specs(arch, SPECS / "gpt2.yaml", {"T": 8}, set_b=["n_layer=24"])
    assert bigger.params == [("n_layer", 12, 24)]
    assert _by_a(bigger)["h"].changes == [("times", 12, 24)]
    assert bigger.checkpoint.counts == {"unchanged": 149, "renamed": 0, "reshaped": 0,
                                        "dropped": 0, "new": 144}
    both = diff_specs(SPECS / "gpt2.yaml", SPECS / "bert.yaml", {"T": 8},
                      set_both=["vocab_size=1000"])
    assert both.a["set"] == both.b["set"] == ["vocab_size=1000"]
    assert not any(p[0] == "vocab_size" for p in both.params)


def test_golden_report_gpt2_vs_bert():
    small = {"gpt2": SMALL["gpt2"], "bert": SMALL["bert"]}
    d = diff_specs(SPECS / "gpt2.yaml", SPECS / "bert.yaml", {"B": 2, "T": 8},
                   set_a=small["gpt2"], set_b=small["bert"])
    check_golden("inspect/diff_gpt2_bert.txt", diff_text(d))


def test_cli_json_and_colour_only_on_a_tty(capsys):
    assert main(["diff", "specs/gpt2.yaml", "specs/gpt2.yaml", "--set", "n_layer=3",
                 "--dims", "T=8", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["archcc_diff"] == 1 and data["params"] == [["n_layer", 12, 3]]
    assert main(["diff", "specs/gpt2.yaml", "specs/bert.yaml", "--dims", "T=8"]) == 0
    assert "\033[" not in capsys.readouterr().out  # captured stdout is not a TTY
    d = diff_specs(SPECS / "gpt2.yaml", SPECS / "bert.yaml", {"T": 8})
    assert "\033[32m" in diff_text(d, color=True)
    assert main(["diff", "specs/gpt2.yaml", "specs/bert.yaml", "--dims", "Q=8"]) == 1
    assert "Q: not an input dim of either spec" in capsys.readouterr().err


def test_swin_t_vs_swin_s_is_one_deeper_stage():
    """Swin-S is Swin-T with 18 blocks in stage 2: the diff says so in two lines, not as
    twelve new blocks, and every tensor of Swin-T loads into Swin-S unchanged."""
    d = diff_specs(SPECS / "swin.yaml", SPECS / "swin.yaml", {"B": 1},
                   set_b=["depths=[2,2,18,2]"])
    assert d.params == [("depths", (2, 2, 6, 2), (2, 2, 18, 2))]
    changed = [(c.a, c.changes) for c in d.layers if c.status != "same"]
    assert changed == [("layers.2", [("depth", 6, 18)]),
                       ("layers.2.blocks", [("times", 6, 18)])]
    assert d.checkpoint.counts["dropped"] == 0 and d.checkpoint.counts["reshaped"] == 0
    assert d.totals["params"] == (28_288_354, 49_606_258)
