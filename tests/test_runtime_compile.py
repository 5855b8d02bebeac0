"""archcc.runtime.compile: eager / inductor / TensorRT, dynamic dims from the spec's symbols.

TensorRT itself needs a GPU; without one these tests check the message and the fallback, and
check the shapes handed to torch_tensorrt through a recording stand-in for the package.
"""

from __future__ import annotations

import ast
import sys
import types

import pytest
import torch

import archcc
from archcc.cli import main
from archcc.diagnostics import ArchccError
from archcc.runtime import compile as rt_compile
from archcc.runtime.inputs import model_inputs
from tests.conftest import SPECS

TINY_GPT2 = dict(vocab_size=61, n_positions=32, n_embd=32, n_head=4, n_layer=1, dropout=0.0)


def _gpt2(compiled):
    gpt2 = compiled("gpt2")
    return gpt2, gpt2.Model(gpt2.Config(**TINY_GPT2)).eval()


class _FakeTensorRT(types.ModuleType):
    """Records what archcc passes to torch_tensorrt; compile returns the model unchanged."""

    def __init__(self):
        super().__init__("torch_tensorrt")
        self.calls = []

    def Input(self, **kwargs):  # noqa: N802  (the real API's name)
        return kwargs

    def compile(self, model, **kwargs):
        self.calls.append(kwargs)
        return model


@pytest.fixture
def fake_trt(monkeypatch):
    fake = _FakeTensorRT()
    monkeypatch.setitem(sys.modules, "torch_tensorrt", fake)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.nn.Module, "cuda", lambda self, device=None: self)
    return fake


def test_tables_name_the_spec_symbols(compiled):
    assert compiled("gpt2").DYNAMIC_DIMS == {"input_ids": ("B", "T")}
    assert compiled("vit").DYNAMIC_DIMS == {"pixel_values": ("B", None, None, None)}
    # spec dims: {S: 12, T: 10} are the opt sizes; max is 8x; B is tuned for batch 8
    assert compiled("transformer").DIM_RANGES == {"B": (1, 8, 64), "S": (1, 12, 96),
                                                  "T": (1, 10, 80)}


def test_inductor_matches_eager(compiled):
    gpt2, model = _gpt2(compiled)
    (ids,) = gpt2.example_inputs(2, model.config, T=8)
    fast = rt_compile(model, "inductor")
    with torch.no_grad():
        torch.testing.assert_close(fast(ids), model(ids), rtol=1e-4, atol=1e-4)


def test_eager_casts_dtype(compiled):
    gpt2, model = _gpt2(compiled)
    out = archcc.runtime.compile(model, "eager", dtype=torch.bfloat16)
    assert out is model and model.wte.weight.dtype == torch.bfloat16


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_tensorrt_without_gpu_says_so(compiled):
    _, model = _gpt2(compiled)
    with pytest.raises(ArchccError, match="TensorRT needs a CUDA GPU") as info:
        rt_compile(model, "tensorrt")
    assert "fallback='inductor'" in str(info.value)  # the hint names the way out


def test_tensorrt_missing_package_falls_back(compiled, monkeypatch):
    gpt2, model = _gpt2(compiled)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)  # import raises ImportError
    with pytest.raises(ArchccError, match="torch-tensorrt is not installed"):
        rt_compile(model, "tensorrt")
    with pytest.warns(RuntimeWarning, match="falling back to eager"):
        out = rt_compile(model, "tensorrt", fallback="eager")
    assert out is model


def test_tensorrt_inputs_are_dynamic_over_symbols(compiled, fake_trt):
    bert = compiled("bert")
    model = bert.Model(bert.Config(vocab_size=50, hidden_size=32, num_hidden_layers=1,
                                   num_attention_heads=4, intermediate_size=64)).eval()
    rt_compile(model, "tensorrt", dtype=torch.float16, dims={"T": (2, 24, 40)})
    (call,) = fake_trt.calls
    assert call["ir"] == "dynamo"
    assert call["enabled_precisions"] == {torch.float16, torch.float32}
    shapes = [(i["min_shape"], i["opt_shape"], i["max_shape"], i["dtype"]) for i in call["inputs"]]
    assert shapes == [([1, 2], [8, 24], [64, 40], dtype)  # BertModel.forward's order
                      for dtype in (torch.int64, torch.bool, torch.int64)]


def test_tensorrt_fixed_dims_follow_config(compiled, fake_trt):
    vit = compiled("vit")
    model = vit.Model(vit.Config(image_size=32, patch_size=8, hidden_size=32,
                                 num_hidden_layers=1, num_attention_heads=4,
                                 intermediate_size=64)).eval()
    rt_compile(model, "tensorrt", dtype=torch.float16, dims={"B": 4})
    (spec,) = fake_trt.calls[0]["inputs"]
    assert (spec["min_shape"], spec["opt_shape"], spec["max_shape"]) == \
        ([1, 3, 32, 32], [4, 3, 32, 32], [64, 3, 32, 32])
    assert spec["dtype"] == torch.float16  # float inputs follow the model's dtype


def test_bad_backend_and_dims(compiled):
    _, model = _gpt2(compiled)
    with pytest.raises(ArchccError, match="unknown backend 'xla'"):
        rt_compile(model, "xla")
    with pytest.raises(ArchccError, match="unknown dim 'S'"):
        model_inputs(model, dims={"S": 4})
    with pytest.raises(ArchccError, match="need 1 <= min <= opt <= max"):
        model_inputs(model, dims={"T": (4, 2, 8)})
    with pytest.raises(ArchccError, match="not an archcc-generated model"):
        model_inputs(torch.nn.Linear(2, 2))


def test_build_target_tensorrt_emits_lazy_helper(tmp_path, capsys, fake_trt):
    assert main(["build", str(SPECS / "gpt2.yaml"), "--target", "tensorrt",
                 "-o", str(tmp_path)]) == 0
    source = (tmp_path / "gpt2.py").read_text()
    top = [n for n in ast.parse(source).body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert {a.name.split(".")[0] for n in top for a in n.names} | \
        {n.module for n in top if isinstance(n, ast.ImportFrom)} <= \
        {"torch", "re", "dataclasses", "__future__", "dataclass", "annotations", "nn",
         "torch.nn.functional", "F", None, "collections", "collections.abc", "Callable",
         "torch.utils.checkpoint", "checkpoint", "math"}
    gpt2 = archcc.runtime.import_file(tmp_path / "gpt2.py", "archcc_trt_test.gpt2")
    model = gpt2.Model(gpt2.Config(**TINY_GPT2)).eval()
    assert gpt2.compile(model, dims={"T": (1, 16, 32)}) is model
    (spec,) = fake_trt.calls[0]["inputs"]
    assert (spec["min_shape"], spec["opt_shape"], spec["max_shape"]) == ([1, 1], [8, 16], [64, 32])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_tensorrt_matches_eager_on_gpu(compiled):
    pytest.importorskip("torch_tensorrt")
    gpt2, model = _gpt2(compiled)
    model = model.cuda()
    (ids,) = gpt2.example_inputs(4, model.config, T=16)
    ids = ids.cuda()
    with torch.no_grad():
        expected = model(ids)
        trt = rt_compile(model, "tensorrt", dims={"B": (1, 4, 8), "T": (1, 16, 32)})
        torch.testing.assert_close(trt(ids).float(), expected, rtol=1e-2, atol=1e-2)
