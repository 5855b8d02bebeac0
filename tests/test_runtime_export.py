"""torch.export and ONNX export of generated models, dynamic over the spec's symbols.

Each ONNX file runs in onnxruntime at a batch and length other than the ones it was
exported with, and must agree with the eager model.
"""

from __future__ import annotations

import pytest
import torch

from archcc.runtime.export import export_onnx, export_program

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TINY = {
    "gpt2": dict(vocab_size=61, n_positions=32, n_embd=32, n_head=4, n_layer=1, dropout=0.0),
    "bert": dict(vocab_size=61, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                 intermediate_size=64, max_position_embeddings=32),
    "vit": dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
                num_attention_heads=4, intermediate_size=64),
    "transformer": dict(src_vocab_size=41, tgt_vocab_size=43, d_model=32, nhead=4,
                        num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=64,
                        dropout=0.0, max_len=64),
}
# export at the opt sizes, run at these: other batch, other lengths (and S != T)
RUN = {"gpt2": dict(T=11), "bert": dict(T=9), "vit": {}, "transformer": dict(T=7)}
RANGES = {"T": (1, 12, 24), "S": (1, 12, 24)}


def _model(compiled, name):
    module = compiled(name)
    return module, module.Model(module.Config(**TINY[name])).eval()


def _tuple(out):
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("name", sorted(TINY))
def test_onnx_runs_in_onnxruntime_at_other_shapes(compiled, name, tmp_path):
    module, model = _model(compiled, name)
    dims = {k: v for k, v in RANGES.items() if k in module.DIM_RANGES}
    # the graph optimizer is slow on 2 cores: exercise it once, on GPT-2
    path = export_onnx(model, tmp_path / f"{name}.onnx", dims=dims, optimize=name == "gpt2")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    declared = {i.name: i.shape for i in session.get_inputs()}
    for arg, symbols in module.DYNAMIC_DIMS.items():  # dynamic axes carry the spec's names
        assert [s for s in declared[arg] if isinstance(s, str)] == [s for s in symbols if s]
    inputs = module.example_inputs(3, model.config, **RUN[name])
    feed = {arg: x.numpy() for arg, x in zip(module.DYNAMIC_DIMS, inputs, strict=True)}
    got = session.run(None, feed)
    with torch.no_grad():
        expected = _tuple(model(*inputs))
    assert len(got) == len(expected)
    for ours, ref in zip(got, expected, strict=True):
        torch.testing.assert_close(torch.from_numpy(ours), ref, rtol=1e-4, atol=1e-4)


def test_torch_export_is_dynamic_and_ranged(compiled):
    module, model = _model(compiled, "transformer")
    program = export_program(model, dims=RANGES)
    src, tgt = module.example_inputs(5, model.config, S=20, T=3)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(src, tgt), model(src, tgt))
    src, tgt = module.example_inputs(2, model.config, S=30, T=3)  # S beyond its max
    with pytest.raises(Exception, match=r"src.size\(\)\[1\] <= 24"):
        program.module()(src, tgt)


def test_cli_writes_a_loadable_program(tmp_path, capsys):
    from archcc.cli import main

    out = tmp_path / "gpt2.pt2"
    assert main(["export", "specs/gpt2.yaml", "--pt2", str(out), "--dims", "T=1:16:24",
                 "--set", "n_layer=1", "--set", "n_embd=32", "--set", "n_head=4",
                 "--set", "vocab_size=50"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    program = torch.export.load(str(out))
    ids = torch.randint(0, 50, (3, 20))
    assert program.module()(ids).shape == (3, 20, 50)


@pytest.mark.parametrize("argv, message", [
    (["--pt2", "x.pt2", "--dims", "T=1:x:9"], "error: --dims: cannot read 'T=1:x:9'"),
    (["--pt2", "x.pt2", "--dims", "Q=4"], "error: runtime.dims: unknown dim 'Q'"),
    ([], "error: export: nothing to write"),
])
def test_cli_bad_values_are_errors_not_tracebacks(argv, message, capsys, tmp_path):
    from archcc.cli import main

    argv = [str(tmp_path / a) if a.endswith(".pt2") else a for a in argv]
    assert main(["export", "specs/gpt2.yaml", *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and "Traceback" not in err
