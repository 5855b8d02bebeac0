"""archcc summary: figures measured on meta agree with the real generated models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from archcc.cli import main
from archcc.inspect import load_for_inspection, summarize
from archcc.inspect.measure import flop_counter, measure
from archcc.inspect.summary import _Folder
from tests.golden_util import check_golden
from tests.inspect.conftest import SMALL

ROOT = Path(__file__).parents[2]


def _real_counts(module, batch: int = 2) -> tuple[int, int, dict[str, int]]:
    """Params and FLOPs of the allocated CPU model, by FlopCounterMode's own module names."""
    model = module.Model().eval()
    counter = flop_counter()
    with torch.no_grad(), counter:
        model(*module.example_inputs(batch))
    root = type(model).__name__
    per_module = {("" if k == root else k.removeprefix(root + ".")): sum(v.values())
                  for k, v in counter.get_flop_counts().items() if k.startswith(root)}
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops(), per_module


@pytest.mark.parametrize("name", sorted(SMALL))
def test_figures_equal_the_real_model(name):
    inspected = load_for_inspection(ROOT / "specs" / f"{name}.yaml", SMALL[name])
    params, flops, per_module = _real_counts(inspected.module)
    measured = measure(inspected.module, batch=2, dims=inspected.program.dims)
    assert measured.params[""] == params
    assert measured.flops[""] == flops > 0
    called = {p: f for p, f in per_module.items() if p in measured.shapes}
    assert {p: measured.flops[p] for p in called} == called  # every layer, replays included
    if any(kind == "ModuleList" for kind in measured.kinds.values()):
        assert measured.replayed > 0  # the later repeat instances were copied, not re-run


def test_attention_flops_are_counted_on_cpu_too():
    """torch has no FLOP formula for the CPU attention kernel; archcc adds the standard one."""
    inspected = load_for_inspection(ROOT / "specs" / "gpt2.yaml", [*SMALL["gpt2"], "n_layer=1"])
    measured = measure(inspected.module, batch=2, dims={"T": 8})
    b, t, d = 2, 8, 64
    projections = 2 * b * t * d * (3 * d) + 2 * b * t * d * d
    assert measured.flops["h.0.attn"] == projections + 4 * b * t * t * d


def test_rows_fold_repeats_and_sum_to_the_totals():
    s = summarize(ROOT / "specs" / "gpt2.yaml", {"T": 8}, SMALL["gpt2"], depth=2)
    by_path = {r.path: r for r in s.rows}
    assert by_path["h"].kind == "Block x3" and by_path["h.*.attn"].count == 3
    top = [r for r in s.rows if r.depth == 1]
    assert sum(r.params for r in top) == s.totals["params"]
    assert sum(r.flops for r in top) == s.totals["flops"]
    assert s.tied == {"lm_head.weight": "wte.weight"}
    assert by_path["lm_head"].shape == [[1, 8, 101]]


FREE_PARAMETERS = """\
archcc: 1
name: free
params: {dim: 48, tokens: 16}
inputs:
  x: {shape: [B, tokens, dim]}
model:
  layers:
    cls_token: {op: parameter, shape: [1, 1, dim]}
    position_embeddings: {op: parameter, shape: [1, tokens + 1, dim]}
    proj: {op: linear, in: dim, out: dim}
  forward: |
    return proj(prepend(cls_token, x) + position_embeddings)
"""


def test_free_parameters_are_rows(tmp_path):
    spec = tmp_path / "free.yaml"  # a ViT-style CLS token and position table as free tensors
    spec.write_text(FREE_PARAMETERS)
    s = summarize(spec, {"B": 2}, {})
    rows = {r.path: r for r in s.rows}
    assert rows["cls_token"].params == 48 and rows["position_embeddings"].shape == [[1, 17, 48]]
    assert sum(r.params for r in s.rows) == s.totals["params"]


def _fake_module(widths: list[int]) -> SimpleNamespace:
    """A stand-in generated module whose repeat instances differ in width."""

    class Model(nn.Module):
        def __init__(self, config=None):
            super().__init__()
            self.h = nn.ModuleList(nn.Linear(8, 8, bias=False) if w == 8 else
                                   nn.Sequential(nn.Linear(8, w), nn.Linear(w, 8))
                                   for w in widths)

        def forward(self, x):
            for block in self.h:
                x = block(x)
            return x

    return SimpleNamespace(Config=lambda: None, Model=Model,
                           example_inputs=lambda batch, config, **dims: (torch.randn(batch, 8),))


def test_different_repeat_instances_are_measured_not_copied():
    measured = measure(_fake_module([8, 8, 32, 8]), batch=3)
    assert measured.replayed == 2  # h.1 and h.3 equal h.0; h.2 is run for real
    assert measured.flops["h.2"] == 2 * 3 * 8 * 32 * 2
    assert measured.flops[""] == 3 * (2 * 3 * 8 * 8) + measured.flops["h.2"]
    rows = [(r.path, r.kind) for r in _Folder(measured).rows(max_depth=2)]
    assert rows == [("h", "Linear x3 + Sequential x1"), ("h.0", "Linear"), ("h.1", "Linear"),
                    ("h.2", "Sequential"), ("h.3", "Linear")]


def test_json_schema_is_stable():
    s = summarize(ROOT / "specs" / "gpt2.yaml", {"B": 2, "T": 8}, SMALL["gpt2"], depth=3)
    check_golden("inspect/summary_gpt2_small.json", json.dumps(s.to_json(), indent=2) + "\n")


_PEAK = ("import resource, sys; from archcc.cli import main; code = main(sys.argv[1:]); "
         "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); "
         "sys.exit(code)")


def test_huge_spec_summarises_without_allocating():
    layers, d = 100, 16384
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK, "summary", "specs/gpt2.yaml", "--json", "--dims", "T=1024",
         "--set", f"n_layer={layers}", "--set", f"n_embd={d}", "--set", "n_head=128"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    per_layer = 12 * d * d + 13 * d
    expected = layers * per_layer + (50257 + 1024) * d + 2 * d
    assert data["totals"]["params"] == expected  # about 3.2e11: 1.3 TB of float32
    peak_kib = int(proc.stderr.strip().splitlines()[-1])
    assert peak_kib < 4 * 2**20, f"peak RSS {peak_kib} KiB: something was allocated"


def test_cli_errors_are_located(capsys):
    code = main(["summary", str(ROOT / "specs" / "gpt2.yaml"), "--set", "n_layers=2"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "unknown param 'n_layers'" in err and "did you mean 'n_layer'" in err
    code = main(["summary", str(ROOT / "specs" / "gpt2.yaml"), "--dims", "X=3,T=0"])
    err = capsys.readouterr().err
    assert code == 1 and "--dims X: not an input dim" in err and "input dims of this spec: B, T" \
        in err
