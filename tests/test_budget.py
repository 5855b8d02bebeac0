"""Budgets: params, FLOPs per token and KV cache bytes checked at build time, located."""

from __future__ import annotations

from pathlib import Path

import pytest

from archcc.api import compile_spec
from archcc.cli import main
from archcc.diagnostics import ArchccError, render
from archcc.inspect.budget import kv_cache_layers
from archcc.inspect.load import _import_source
from archcc.ir.build import build as build_ir
from archcc.ir.infer import infer_shapes
from archcc.ir.kv_cache import causal_kv_shapes
from archcc.parser import load_spec
from archcc.parser.budget import parse_bound, parse_size

ROOT = Path(__file__).parents[1]

# Two layers of pre-norm causal attention, d=32, 4 heads, vocab 100, tied head. By hand:
# params = wte 3,200 + wpe 1,024 + 2 x 12,704 (block) + ln_f 64 = 29,696;
# FLOPs at B=1, T=8 = 2 x (2*8*12,288 linears + 2*(2*4*8*8*8) attention) + 2*8*32*100 head
#                    = 460,800, i.e. 57,600 per token;
# KV cache at T=32 = 2 (k, v) x 2 layers x 4 heads x 8 head dim x 32 x 4 bytes = 16,384.
TINY = """\
archcc: 1
name: tiny_lm
params: {vocab_size: 100, n_positions: 32, n_embd: 32, n_head: 4, n_layer: 2}
dims: {T: 8}
inputs:
  input_ids: {shape: [B, T], dtype: int64, high: vocab_size}
blocks:
  Block:
    layers:
      ln_1: {op: layernorm, dim: n_embd}
      attn: {op: attention, dim: n_embd, heads: n_head, causal: true}
      ln_2: {op: layernorm, dim: n_embd}
      mlp: {op: ffn, dim: n_embd, hidden: 4 * n_embd}
    forward: |
      x = x + attn(ln_1(x))
      return x + mlp(ln_2(x))
model:
  layers:
    wte: {op: embedding, num: vocab_size, dim: n_embd}
    wpe: {op: embedding, num: n_positions, dim: n_embd}
    h: {repeat: Block, times: n_layer}
    ln_f: {op: layernorm, dim: n_embd}
    lm_head: {op: linear, in: n_embd, out: vocab_size, bias: false, tie: wte}
  forward: |
    x = h(wte(input_ids) + wpe(positions(input_ids)))
    return lm_head(ln_f(x))
budget:
"""  # the budget's lines follow: line 28 is the first

MLP = """\
archcc: 1
name: tiny_mlp
params: {d: 8}
inputs:
  x: {shape: [B, d]}
model:
  layers:
    fc: {op: linear, in: d, out: d}
  forward: |
    return fc(x)
budget:
"""  # line 12 is the first budget line


def _spec(tmp_path: Path, body: str, *budget: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(body + "".join(f"  {line}\n" for line in budget), encoding="utf-8")
    return path


def _errors(path: Path) -> str:
    with pytest.raises(ArchccError) as info:
        compile_spec(path)
    return render(info.value)


# ------------------------------------------------------------------------------- figures


@pytest.mark.parametrize(("text", "unit", "value"), [
    ("125M", "count", 125_000_000), ("2G", "count", 2_000_000_000), ("1.5K", "count", 1500),
    ("7", "count", 7), ("1GiB", "bytes", 2**30), ("1GB", "bytes", 10**9),
    ("512MiB", "bytes", 512 * 2**20), ("3KB", "bytes", 3000), ("64", "bytes", 64),
    ("0.5KiB", "bytes", 512),
])
def test_sizes_parse_with_their_suffixes(text, unit, value):
    assert parse_size(text, unit) == value


def test_bounds_compare_and_canonicalise():
    bound = parse_bound("<=125M", "count")
    assert (bound.op, bound.value, bound.text) == ("<=", 125_000_000, "<= 125M")
    assert bound.holds(125_000_000) and not bound.holds(125_000_001)
    assert not parse_bound("< 10", "count").holds(10)
    assert parse_bound(">= 10", "count").holds(10) and not parse_bound("== 10", "count").holds(9)


# ----------------------------------------------------------------------------- passing


def test_gpt2_meets_its_budget_and_the_figures_are_gpt2s():
    compile_spec(ROOT / "specs" / "gpt2.yaml")  # params <= 130M, ... : no error
    loaded = load_spec(ROOT / "specs" / "gpt2.yaml")
    assert loaded.spec.budget.params == "<= 130M"
    with pytest.raises(ArchccError) as info:  # HF GPT-2 small has 124,439,808 parameters
        compile_spec(ROOT / "specs" / "gpt2.yaml", sets=["budget.params=<= 124M"])
    [diag] = info.value.diagnostics
    assert diag.message == ("124,439,808 parameters exceed the budget of 124M (124,000,000)")


def test_tiny_lm_within_budget_builds(tmp_path):
    path = _spec(tmp_path, TINY, "params: <= 29696", "flops_per_token: == 57.6K",
                 "kv_cache_at: {T: n_positions, max: 16KiB}")
    assert "class TinyLm" in compile_spec(path).source


def test_kv_cache_layers_come_from_the_attention_instances(tmp_path):
    path = _spec(tmp_path, TINY, "params: <= 1M")
    loaded = load_spec(path, ["n_layer=3"])
    program = build_ir(loaded)
    infer_shapes(program)
    shapes = causal_kv_shapes(program)
    assert list(shapes) == ["CausalSelfAttention"]
    module = _import_source(compile_spec(path, sets=["n_layer=3"]).source, "tiny_lm")
    layers = kv_cache_layers(module, shapes, 100, "bfloat16")
    assert [(c.path, c.heads, c.head_dim, c.bytes) for c in layers] == [
        (f"h.{i}.attn", 4, 8, 2 * 4 * 8 * 100 * 2) for i in range(3)]


# --------------------------------------------------------------------------- violations


def test_params_violation_is_located_and_shows_the_figure(tmp_path):
    text = _errors(_spec(tmp_path, TINY, "params: <= 10K"))
    assert text.startswith(f"{tmp_path}/spec.yaml:28:11: error: budget.params: 29,696 "
                           "parameters exceed the budget of 10K (10,000)\n")
    assert "hint: largest layers: h 25,408, wte 3,200, wpe 1,024" in text


@pytest.mark.parametrize(("bound", "message"), [
    ("< 29696", "29,696 parameters are not below the budget of 29696 (29,696)"),
    ("'>= 30K'", "29,696 parameters are below the minimum of 30K (30,000)"),
    ("== 29K", "29,696 parameters, but the budget is exactly 29K (29,000)"),
])
def test_every_operator_says_what_broke(tmp_path, bound, message):
    assert f"budget.params: {message}\n" in _errors(_spec(tmp_path, TINY, f"params: {bound}"))


def test_flops_per_token_violation(tmp_path):
    text = _errors(_spec(tmp_path, TINY, "flops_per_token: <= 50K"))
    assert (":28:20: error: budget.flops_per_token: 57,600 FLOPs per token exceed the budget "
            "of 50K (50,000)\n") in text
    assert "hint: 460,800 forward FLOPs at B=1, T=8 (dims) over 8 tokens" in text


def test_kv_cache_violation_names_its_factors(tmp_path):
    text = _errors(_spec(tmp_path, TINY, "kv_cache_at: {T: n_positions, max: 8KiB}"))
    assert (":28:38: error: budget.kv_cache_at.max: 16,384 bytes of KV cache at T=32 exceed "
            "the budget of 8KiB (8,192)\n") in text
    assert ("hint: 2 (keys, values) x 2 causal self-attention layers x 4 kv heads x 8 head "
            "dim x 32 positions x 4 bytes (float32)") in text
    # half the bytes in float16: now it fits
    compile_spec(_spec(tmp_path, TINY, "kv_cache_at: {T: 32, max: 8KiB, dtype: float16}"))


def test_every_broken_budget_is_reported_at_once(tmp_path):
    text = _errors(_spec(tmp_path, TINY, "params: <= 10K", "flops_per_token: <= 50K",
                         "kv_cache_at: {T: 32, max: 1KiB}"))
    assert [line.split(": ")[2] for line in text.splitlines() if ": error: " in line] == [
        "budget.params", "budget.flops_per_token", "budget.kv_cache_at.max"]


def test_flops_per_token_needs_a_T_symbol(tmp_path):
    text = _errors(_spec(tmp_path, MLP, "flops_per_token: <= 1M"))
    assert ":12:20: error: budget.flops_per_token: flops_per_token needs an input symbol T " \
           "(tokens per sequence)\n" in text
    assert "hint: inputs of this spec: x ['B', 'd']" in text


def test_kv_cache_needs_causal_self_attention(tmp_path):
    text = _errors(_spec(tmp_path, MLP, "kv_cache_at: {T: 8, max: 1GiB}"))
    assert ":12:3: error: budget.kv_cache_at: the model has no causal self-attention, so " \
           "it keeps no KV cache\n" in text


def test_a_failed_budget_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    spec = _spec(tmp_path, TINY, "params: <= 10K")
    assert main(["build", str(ROOT / "specs" / "gpt2.yaml"), str(spec), "-o", str(out)]) == 1
    assert not out.exists() or not any(out.iterdir())
    assert "budget.params: 29,696 parameters exceed" in capsys.readouterr().err
    assert main(["check", str(spec)]) == 1


# ------------------------------------------------------------------------- bad budgets


@pytest.mark.parametrize(("line", "message", "hint"), [
    ("params: 125M", "'125M' needs a comparison", "write '<= 125M'"),
    ("params: <= 12X", "unknown suffix 'X' in '12X'", "suffixes here: K, M, G, T"),
    ("params: <= 1GiB", "unknown suffix 'GiB' in '1GiB' (a byte size)", "K, M, G, T"),
    ("params: <= 1.2345K", "'1.2345K' is not a whole number of units (1234.5)", None),
    ("params: <= lots", "'lots' is not a size", "e.g. 125M, 2G or 350K"),
    ("kv_cache_at: {T: 8, max: 1G}", "unknown suffix 'G' in '1G' (a count)", "GiB"),
    ("kv_cache_at: {T: 8, max: <= 1GiB}", "'<= 1GiB': max is already an upper bound",
     "max: 1GiB"),
    ("paramz: <= 1M", "unknown key 'paramz'", "did you mean 'params'?"),
])
def test_bad_budget_text_is_a_located_schema_error(tmp_path, line, message, hint):
    with pytest.raises(ArchccError) as info:
        load_spec(_spec(tmp_path, TINY, line))
    [diag] = info.value.diagnostics
    assert (diag.loc.line, diag.path.split(".")[0], diag.message) == (28, "budget", message)
    assert hint is None or hint in diag.hint


def test_kv_cache_length_is_a_checked_size(tmp_path):
    text = _errors(_spec(tmp_path, TINY, "kv_cache_at: {T: n_posit, max: 1GiB}"))
    assert "budget.kv_cache_at.T" in text and "n_positions" in text


# --------------------------------------------------------------------------------- .arch


def test_arch_budget_reads_like_the_yaml(tmp_path):
    arch = tmp_path / "gpt2.arch"
    main(["convert", str(ROOT / "specs" / "gpt2.yaml"), "-o", str(arch)])
    assert "  kv_cache_at(T = n_positions) <= 80MiB\n" in arch.read_text()
    assert load_spec(arch).spec.budget == load_spec(ROOT / "specs" / "gpt2.yaml").spec.budget


def test_arch_budget_errors_are_located(tmp_path):
    text = (ROOT / "examples" / "gpt2.arch").read_text()
    bad = tmp_path / "gpt2.arch"
    bad.write_text(text.replace("params <= 130M", "params <= 100M"))
    line = bad.read_text().splitlines().index("  params <= 100M") + 1
    assert f"gpt2.arch:{line}:10: error: budget.params: 124,439,808 parameters exceed the " \
           "budget of 100M (100,000,000)" in _errors(bad)
    bad.write_text(text.replace("(T = n_positions) <=", "(T = n_positions) <"))
    with pytest.raises(ArchccError) as info:
        load_spec(bad)
    assert "kv_cache_at(...) takes a maximum" in info.value.diagnostics[0].message
