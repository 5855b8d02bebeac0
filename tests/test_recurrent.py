"""Recurrent layers: wiring of ports, located shape errors, lengths (packed and mask)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import archcc
from archcc.cli import main
from archcc.parser.expr import parse_program

ROOT = Path(__file__).parents[1]
LSTM_LM = (ROOT / "specs" / "lstm_lm.yaml").read_text()
GRU_LM = (ROOT / "specs" / "gru_lm.yaml").read_text()


def _error(tmp_path, monkeypatch, capsys, text: str, old: str, new: str) -> str:
    assert old in text
    (tmp_path / "spec.yaml").write_text(text.replace(old, new, 1))
    monkeypatch.chdir(tmp_path)
    assert main(["check", "spec.yaml"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("old, new, message, at", [
    ("out, (h, c) = lstm(x)", "out, h = lstm(x)",
     "lstm returns out, (h, c): 3 values, not 2", "out, h = lstm(x)"),
    ("lstm: {op: lstm, in: n_embd,", "lstm: {op: lstm, in: 2 * n_embd,",
     "lstm expects inputs with last dim 2*n_embd (1300), got (B, T, n_embd)",
     "out, (h, c) = lstm(x)"),
    ("layers: n_layer, dropout: dropout}", "dropout: dropout}",
     "dropout (0.5) acts between stacked layers, but layers is 1", "lstm: {op: lstm"),
    ("out, (h, c) = lstm(x)", "out, (h, c) = lstm(x, x)",
     "lstm takes x or x with its initial state (h0, c0), got 2 inputs", "lstm(x, x)"),
    ("out, (h, c) = lstm(x)", "out, (h, c) = lstm(x, lengths=x)",
     "lengths must be int64 (B,), got float32 (B, T, n_embd)", "lengths=x"),
    ("x = drop(wte(input_ids))", "x, y = drop(wte(input_ids))",
     "only an rnn, lstm or gru call returns several values", "x, y = drop"),
    ("out, (h, c) = lstm(x)", "out, (h, c) = lstm(x, steps=3)",
     "lstm: unknown keyword(s) ['steps']", "steps=3"),
])
def test_located_errors(tmp_path, monkeypatch, capsys, old, new, message, at):
    err = _error(tmp_path, monkeypatch, capsys, LSTM_LM, old, new)
    assert message in err, err
    text = LSTM_LM.replace(old, new, 1)
    assert err.startswith(f"spec.yaml:{_line_of(text, at)}:"), err
    assert "hint:" in err or "^" in err


def test_initial_state_shape_is_checked(tmp_path, monkeypatch, capsys):
    err = _error(tmp_path, monkeypatch, capsys, GRU_LM, "h0: {shape: [n_layer, B, n_hidden]}",
                 "h0: {shape: [B, n_layer, n_hidden]}")
    assert "gru: h0 must be (layers * directions, B, hidden) = (n_layer, B, n_hidden), " \
           "got (B, n_layer, n_hidden)" in err


def test_mask_mode_refuses_bidirectional_and_states(tmp_path, monkeypatch, capsys):
    spec = (ROOT / "tests" / "specs" / "rnn_packed.yaml").read_text()
    spec = spec.replace("nonlinearity: relu", "nonlinearity: relu, lengths: mask")
    err = _error(tmp_path, monkeypatch, capsys, spec, "bidirectional: true", "bidirectional: true")
    assert "lengths: mask cannot run a bidirectional layer" in err
    err = _error(tmp_path, monkeypatch, capsys, spec, "bidirectional: true",
                 "bidirectional: false")
    assert "rnn has lengths: mask, which gives no final states" in err


def test_mask_mode_zeroes_padding_and_matches_packing(tmp_path):
    spec = (ROOT / "tests" / "specs" / "rnn_packed.yaml").read_text()
    masked = spec.replace("bidirectional: true", "lengths: mask").replace(
        "name: rnn_packed", "name: rnn_masked").replace("out, h = rnn(", "out = rnn(").replace(
        "return head(out), h", "return head(out)").replace("2 * n_hidden", "n_hidden")
    packed = masked.replace(", lengths: mask", "").replace("name: rnn_masked", "name: rnn_pk")
    (tmp_path / "m.yaml").write_text(masked)
    (tmp_path / "p.yaml").write_text(packed)
    m, p = (archcc.build(tmp_path / f, out_dir=tmp_path / "out") for f in ("m.yaml", "p.yaml"))
    source = (tmp_path / "out" / "rnn_masked.py").read_text()
    assert "torch.arange(" in source and "pack_padded_sequence" not in source
    model_m, model_p = m.Model().eval(), p.Model().eval()
    model_p.load_state_dict(model_m.state_dict())
    ids, lengths = torch.randint(1, 50, (6, 3)), torch.tensor([6, 2, 4])
    with torch.no_grad():
        torch.testing.assert_close(model_m(ids, lengths), model_p(ids, lengths))


def test_grouped_targets_parse_flat():
    (stmt,) = parse_program("out, (h, c) = lstm(x, h0, c0)")
    assert stmt.targets == ("out", "h", "c")


def test_generated_wiring_reads_like_pytorch(compiled):
    source = Path(compiled("lstm_lm").__file__).read_text()
    assert "out, (h, c) = self.lstm(x)" in source
    gru = Path(compiled("gru_lm").__file__).read_text()
    assert "out, h = self.gru(self.drop(self.wte(input_ids)), h0)" in gru


def test_state_pair_and_single_output(tmp_path):
    spec = LSTM_LM.replace("input_ids: {shape: [B, T], dtype: int64, high: vocab_size}",
                           "input_ids: {shape: [B, T], dtype: int64, high: vocab_size}\n"
                           "  h0: {shape: [n_layer, B, n_embd]}\n"
                           "  c0: {shape: [n_layer, B, n_embd]}")
    spec = spec.replace("out, (h, c) = lstm(x)\n    return lm_head(drop(out)), h, c",
                        "return lm_head(lstm(x, h0, c0))")
    (tmp_path / "s.yaml").write_text(spec)
    mod = archcc.build(tmp_path / "s.yaml", out_dir=tmp_path)
    source = Path(mod.__file__).read_text()
    assert "self.lstm(x, (h0, c0))[0]" in source
    config = mod.Config(vocab_size=20, n_embd=8, dropout=0.0)
    model = mod.Model(config).eval()
    ids, h0, c0 = mod.example_inputs(config=config)
    with torch.no_grad():
        out, _ = model.lstm(model.wte(ids), (h0, c0))
        torch.testing.assert_close(model(ids, h0, c0), model.lm_head(out))


# ------------------------------------------------------------ conv1d, pooling, cat (TextCNN)
TEXTCNN = (ROOT / "specs" / "textcnn.yaml").read_text()


@pytest.mark.parametrize("old, new, message", [
    ("x = transpose(embedding(input_ids), 1, 2)", "x = embedding(input_ids)",
     "conv3 expects embed_dim (300) channels in dim 1, got (B, T, embed_dim)"),
    ("fc: {op: linear, in: 3 * num_filters", "fc: {op: linear, in: 2 * num_filters",
     "fc expects input with last dim 2*num_filters (200), got (B, 3*num_filters)"),
    ("cat(f3, f4, f5)", "cat(f3, x)",
     "cat along dim -1: (B, num_filters) and (B, embed_dim, T) differ in another dim"),
    ("cat(f3, f4, f5)", "cat(f3)", "cat() joins two or more tensors, got 1"),
    ("global_max_pool(relu(conv3(x)))", "global_max_pool(relu(conv3(x)), axis=1)",
     "global_max_pool() has no keyword 'axis'"),
])
def test_textcnn_located_errors(tmp_path, monkeypatch, capsys, old, new, message):
    err = _error(tmp_path, monkeypatch, capsys, TEXTCNN, old, new)
    assert message in err, err
    assert err.startswith("spec.yaml:"), err


def test_conv1d_length_rule(tmp_path):
    from archcc.api import compile_spec

    path = tmp_path / "strided.yaml"
    path.write_text(TEXTCNN.replace("kernel: 5}", "kernel: 5, stride: 2, padding: 1}"))
    program = compile_spec(path).program
    shapes = {d["var"]: d["shape"] for _, d in program.model.graph.nodes(data=True)}
    assert str(shapes["conv5"]) == "(B, num_filters, floor(T/2 - 3/2) + 1)"
