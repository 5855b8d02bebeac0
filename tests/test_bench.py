"""`archcc bench --json` at tiny sizes: the report's structure, not its timings."""

from __future__ import annotations

import json

import pytest
import torch

from archcc.cli import main

pytest.importorskip("transformers")

TINY_GPT2 = ["--set", "n_layer=1", "--set", "n_embd=32", "--set", "n_head=4",
             "--set", "vocab_size=61", "--set", "n_positions=32"]


def _bench(capsys, spec, *extra):
    argv = ["bench", spec, "--json", "--runs", "2", "--warmup", "1", "--device", "cpu", *extra]
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_json_report_compares_against_the_reference(capsys):
    report = _bench(capsys, "specs/gpt2.yaml", *TINY_GPT2, "--dims", "B=2", "T=12",
                    "--backends", "eager", "tensorrt", "reference")
    assert report["model"] == "Gpt2" and report["device"] == "cpu"
    assert report["inputs"] == {"input_ids": [2, 12]}
    # wte + wpe, then qkv, proj, mlp up/down, two norms, and ln_f (the head is tied to wte)
    block = (32 * 96 + 96) + (32 * 32 + 32) + (32 * 128 + 128) + (128 * 32 + 32) + 2 * 64
    assert report["params"] == 61 * 32 + 32 * 32 + block + 64
    assert report["runs"] == 2 and report["threads"] >= 1
    eager, trt, ref = report["results"]
    assert [r["backend"] for r in report["results"]] == ["eager", "tensorrt", "reference"]
    assert eager["status"] == "ok" and eager["speedup"] == 1.0 and eager["max_abs_diff"] == 0
    assert eager["median_ms"] > 0 and eager["min_ms"] <= eager["median_ms"]
    assert eager["peak_mem_mb"] > 0
    if not torch.cuda.is_available():
        assert trt["status"] == "skipped" and "CUDA" in trt["reason"]
    # same weights through convert_state_dict: HF GPT-2 agrees with the generated model
    assert ref["status"] == "ok" and ref["max_abs_diff"] < 1e-4 and ref["speedup"] > 0


def test_spec_without_reference_skips_it(capsys):
    report = _bench(capsys, "specs/transformer.yaml", "--set", "d_model=32", "--set",
                    "nhead=4", "--set", "num_encoder_layers=1", "--set", "num_decoder_layers=1",
                    "--set", "dim_feedforward=64", "--backends", "eager", "reference")
    assert report["inputs"] == {"src": [8, 12], "tgt": [8, 10]}  # the spec's dims, batch 8
    eager, ref = report["results"]
    assert eager["status"] == "ok"
    assert ref == {**ref, "status": "skipped", "median_ms": None, "speedup": None}
    assert "names no reference" in ref["reason"]


def test_table_output_has_ratios(capsys):
    assert main(["bench", "specs/gpt2.yaml", *TINY_GPT2, "--runs", "1", "--warmup", "0",
                 "--backends", "eager", "reference"]) == 0
    out = capsys.readouterr().out
    assert "Gpt2 (" in out and "median of 1" in out
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["eager", "reference"]
    assert "1.00x" in out


def test_reference_must_be_on_the_allow_list(tmp_path, capsys):
    spec = tmp_path / "x.yaml"
    spec.write_text("archcc: 1\nname: x\ninputs: {x: {shape: [B, T]}}\n"
                    "model: {forward: return x}\n"
                    "reference: {library: transformers, model: AutoModel, layout: hf}\n")
    assert main(["check", str(spec)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{spec}:5:36: error: reference.model: 'AutoModel' is not an "
                          "allowed reference model")
    assert "hint: allowed: GPT2Model, GPT2LMHeadModel" in err
