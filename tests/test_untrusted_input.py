"""A stranger's spec, its path and its file name never run as code or exhaust the machine.

Each place user text could reach generated source gets a payload that would create a marker
file if Python ever ran it; checking, building, importing and loading must leave no marker.
The rest pins the bounds: huge numbers, deep repeats, FIFOs, files outside a project.
"""

from __future__ import annotations

import ast
import io
import os
import stat
import sys
import time
import tokenize
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import archcc
from archcc.api import compile_spec
from archcc.codegen import safe_text
from archcc.diagnostics import ArchccError
from archcc.runtime.loader import import_file

ROOT = Path(__file__).resolve().parents[1]
MARKER = "PWNED_BY_SPEC"
FILE_NAMES = [  # no "/" fits in a file name; everything else does
    f'x coding=unicode_escape,"""; open("{MARKER}", "w") #.yaml',
    f"x -*- coding: unicode_escape -*- \\u0022\\u0022\\u0022; open('{MARKER}','w') #.yaml",
    f'a\nimport os; os.system("touch {MARKER}")\n#.yaml',
    f'a\rimport os; os.system("touch {MARKER}")\r#.yaml',
    f'a\u2028open("{MARKER}", "w")\u2029#.yaml',
    f'a\x0c\x00b"""\'\'\'{MARKER}.yaml'.replace("\x00", ""),
    f"\u202egnp.{MARKER}\u202d.yaml",
]


def _gpt2_text() -> str:
    return (ROOT / "specs" / "gpt2.yaml").read_text()


def _small(text: str) -> str:
    """GPT-2 small enough for the budget check to run in a test, budget kept."""
    data = yaml.safe_load(text)
    data["params"].update(n_layer=2, n_embd=32, n_head=2, vocab_size=64, n_positions=16)
    data["budget"] = {"params": "<= 1M", "flops_per_token": "<= 1G",
                      "kv_cache_at": {"T": 16, "max": "1MiB"}}
    return yaml.safe_dump(data, sort_keys=False)


def _no_spec_text_on_the_first_two_lines(source: str) -> None:
    assert tuple(source.splitlines()[:2]) == safe_text.BANNER
    encoding, _ = tokenize.detect_encoding(io.BytesIO(source.encode()).readline)
    assert encoding == "utf-8"
    assert source.isascii()


@pytest.mark.parametrize("file_name", FILE_NAMES)
def test_a_file_name_never_runs(tmp_path, monkeypatch, file_name):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARCHCC_CACHE", str(tmp_path / "cache"))
    spec = tmp_path / file_name
    spec.write_text(_small(_gpt2_text()))
    compiled = compile_spec(spec)  # `archcc check`: the budget imports the generated source
    _no_spec_text_on_the_first_two_lines(compiled.source)
    module = archcc.build(spec, out_dir=tmp_path / "out")  # writes and imports
    module.Model(module.Config()).eval()(*module.example_inputs())
    archcc.load(spec)
    assert not (tmp_path / MARKER).exists()
    assert MARKER not in _code_outside_strings_and_comments(compiled.source)


def _code_outside_strings_and_comments(source: str) -> str:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = ""
    return ast.unparse(tree)


def test_the_banner_names_the_spec_by_its_project_path_however_it_was_typed(tmp_path,
                                                                             monkeypatch):
    absolute = compile_spec(ROOT / "specs" / "gpt2.yaml").source
    monkeypatch.chdir(ROOT / "specs")
    relative = compile_spec("gpt2.yaml").source
    monkeypatch.chdir(tmp_path)
    elsewhere = compile_spec(os.path.relpath(ROOT / "specs" / "gpt2.yaml")).source
    assert absolute == relative == elsewhere
    assert "# spec:    specs/gpt2.yaml" in absolute


# ------------------------------------------------------------------------------- escaping

TEXT = st.text(st.characters(codec="utf-8"), max_size=40)


@given(TEXT)
def test_a_comment_is_one_line_of_printable_ascii(text):
    line = "# " + safe_text.comment(text) + "\nx = 1\n"
    tokens = list(tokenize.generate_tokens(io.StringIO(line).readline))
    assert [t.type for t in tokens].count(tokenize.COMMENT) == 1
    assert all(" " <= ch <= "~" for ch in safe_text.comment(text))


@given(TEXT)
def test_docstring_text_cannot_leave_its_quotes(text):
    source = f'def f():\n    """{safe_text.docstring(text)}"""\n'
    body = ast.parse(source).body[0].body
    assert len(body) == 1
    expected = text.replace("\r\n", " ").replace("\n", " ").replace("\t", " ").strip()
    assert body[0].value.value == expected
    assert source.isascii()


@given(st.one_of(TEXT, st.integers(), st.booleans(), st.none(),
                 st.floats(allow_nan=False), st.tuples(TEXT, st.integers())))
def test_literals_evaluate_to_their_value(value):
    text = safe_text.literal(value)
    assert text.isascii()
    assert eval(text, {"__builtins__": {"float": float}}) == value  # noqa: S307 - the check


def test_nan_has_no_literal():
    with pytest.raises(ValueError, match="NaN"):
        safe_text.literal(float("nan"))


# ------------------------------------------------------------------------- names that shadow


def _spec(tmp_path: Path, change) -> Path:
    data = yaml.safe_load(_gpt2_text())
    data.pop("budget")
    change(data)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_spec_named_like_a_module_name_gets_a_distinct_class(tmp_path):
    path = _spec(tmp_path, lambda d: d.update(name="f"))
    module = archcc.build(path, out_dir=tmp_path / "out")
    assert module.Model.__name__ == "FModel"
    model = module.Model(module.Config(n_layer=1, n_embd=16, n_head=2, vocab_size=11))
    model.eval()(*module.example_inputs(config=model.config))


@pytest.mark.parametrize(("where", "name"), [("forward", "F"), ("forward", "torch"),
                                             ("forward", "nn"), ("symbol", "torch"),
                                             ("symbol", "batch"), ("symbol", "config"),
                                             ("symbol", "F")])
def test_names_generated_code_relies_on_are_located_errors(tmp_path, where, name):
    def change(data):
        if where == "forward":
            data["blocks"]["Block"]["forward"] = f"{name} = ln_1(x)\nx = x + attn({name})\n" \
                                                 "x = x + mlp(ln_2(x))\n"
        else:
            data["inputs"]["input_ids"]["shape"] = ["B", name]

    with pytest.raises(ArchccError) as info:
        compile_spec(_spec(tmp_path, change))
    diag = info.value.diagnostics[0]
    assert diag.loc.line > 0 and f"'{name}'" in diag.message


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_params_are_located_errors(tmp_path, value):
    path = _spec(tmp_path, lambda d: None)
    path.write_text(path.read_text().replace("dropout: 0.1", f"dropout: {value}"))
    with pytest.raises(ArchccError, match="not a finite number") as info:
        compile_spec(path)
    assert info.value.diagnostics[0].loc.line > 0


@pytest.mark.parametrize("dims", [{"T": 0}, {"T": -5}, {"T": 2**40}])
def test_dims_are_positive_sizes(tmp_path, dims):
    with pytest.raises(ArchccError) as info:
        compile_spec(_spec(tmp_path, lambda d: d.update(dims=dims)))
    assert info.value.diagnostics[0].path.startswith("dims.T")


def test_a_very_long_name_is_refused_at_check(tmp_path):
    with pytest.raises(ArchccError, match="too long for a name"):
        compile_spec(_spec(tmp_path, lambda d: d.update(name="n" * 5000)))


# ---------------------------------------------------------------------------- the cache


def test_load_refuses_a_cached_module_whose_digest_changed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARCHCC_CACHE", str(tmp_path / "cache"))
    spec = _spec(tmp_path, lambda d: None)
    first = archcc.load(spec)
    cached = next((tmp_path / "cache").rglob("*.py"))
    assert oct(stat.S_IMODE(cached.stat().st_mode)) == oct(0o666 & ~_umask())
    cached.write_text(cached.read_text() + f"\nopen({MARKER!r}, 'w')\n")
    for name in [n for n in sys.modules if n.startswith("archcc_cache_")]:
        sys.modules.pop(name)
    second = archcc.load(spec)
    assert not (tmp_path / MARKER).exists()
    assert asdict(second.Config()) == asdict(first.Config())
    assert MARKER not in cached.read_text()  # rewritten from a fresh compile


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------------ resource bounds


@pytest.mark.parametrize(("where", "text"), [
    ("param", "((((10 ** 64) ** 64) ** 64) ** 64) ** 64"),
    ("param", "2 ** 2 ** 2 ** 2 ** 2 ** 2"),
    ("param", "sqrt(0 - 1)"),
    ("param", "log(0)"),
    ("param", "1e999"),
    ("forward", "x = x * 9 ** 9 ** 9\nreturn x"),
    ("forward", "x = x * 10.0 ** 400\nreturn x"),
])
def test_huge_or_undefined_arithmetic_is_a_quick_located_error(tmp_path, where, text):
    def change(data):
        if where == "param":
            data["params"]["n_inner"] = text
        else:
            data["model"]["forward"] = data["model"]["forward"].replace(
                "return lm_head(ln_f(x))", text.replace("return x", "return lm_head(ln_f(x))"))

    start = time.perf_counter()
    with pytest.raises(ArchccError) as info:
        compile_spec(_spec(tmp_path, change))
    assert time.perf_counter() - start < 5
    assert info.value.diagnostics[0].loc.line > 0


def test_a_budget_measures_one_instance_per_repeat(tmp_path):
    """10000 x 10000 nested layers: checked in seconds, figures exact."""
    spec = tmp_path / "nested.yaml"
    spec.write_text("""\
archcc: 1
name: nested
params: {d: 8}
dims: {T: 4}
inputs:
  x: {shape: [B, T, d]}
blocks:
  Inner:
    layers: {l: {op: linear, in: d, out: d}}
    forward: return l(x)
  Outer:
    layers: {inner: {repeat: Inner, times: 10000}}
    forward: return inner(x)
model:
  layers: {h: {repeat: Outer, times: 10000}}
  forward: return h(x)
budget:
  params: <= 7G
""")
    start = time.perf_counter()
    with pytest.raises(ArchccError) as info:
        compile_spec(spec)
    assert time.perf_counter() - start < 15
    assert "7,200,000,000 parameters exceed" in info.value.diagnostics[0].message


def test_fifos_and_devices_are_not_read(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(ArchccError, match="not a regular file"):
            compile_spec(path)


def test_a_referenced_file_that_is_no_spec_is_never_quoted(tmp_path):
    (tmp_path / "hosts.yml").write_text("github.com:\n  oauth_token: gho_SECRET\n")
    (tmp_path / "broken.yml").write_text("token: [gho_SECRET\n")
    for target in ("hosts.yml", "broken.yml"):
        spec = tmp_path / "spec.yaml"
        spec.write_text(f"archcc: 1\nextends: {target}\nname: a\n")
        with pytest.raises(ArchccError) as info:
            compile_spec(spec)
        assert "gho_SECRET" not in str(info.value) and "github" not in str(info.value)
        assert info.value.diagnostics[0].loc.file.endswith("spec.yaml")


# ------------------------------------------------------------------------------- writing


def test_inspection_leaves_no_temp_folders(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    spec = tmp_path / "gpt2.yaml"
    spec.write_text(_small(_gpt2_text()))
    compile_spec(spec)
    assert not list(tmp_path.glob("archcc-*"))


def test_generated_files_are_readable_by_the_users_other_tools(tmp_path):
    archcc.build(ROOT / "specs" / "gpt2.yaml", out_dir=tmp_path)
    mode = stat.S_IMODE((tmp_path / "gpt2.py").stat().st_mode)
    assert mode == 0o666 & ~_umask()


def test_build_writes_all_specs_or_none(tmp_path):
    from archcc.cli import main

    out = tmp_path / "out"
    out.mkdir()
    (out / "bert.py").mkdir()  # bert cannot be written: gpt2 must not be either
    code = main(["build", str(ROOT / "specs" / "gpt2.yaml"), str(ROOT / "specs" / "bert.yaml"),
                 "-o", str(out)])
    assert code != 0
    assert not (out / "gpt2.py").exists()
    assert [p.name for p in out.iterdir()] == ["bert.py"]


def test_output_path_that_is_a_file_is_a_clean_error(tmp_path, capsys):
    from archcc.cli import main

    (tmp_path / "taken").write_text("")
    assert main(["build", str(ROOT / "specs" / "gpt2.yaml"), "-o", str(tmp_path / "taken")]) != 0
    assert "the output folder is a file" in capsys.readouterr().err


def test_a_killed_writers_leftovers_are_swept(tmp_path):
    from archcc.output import write_atomic

    dead = tmp_path / ".gpt2.py.999999999.tmp"  # no such process
    dead.write_text("half")
    write_atomic(tmp_path / "gpt2.py", "x = 1\n")
    assert not dead.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["gpt2.py"]


def test_import_file_still_imports_a_built_module(tmp_path):
    archcc.build(ROOT / "specs" / "gpt2.yaml", out_dir=tmp_path)
    module = import_file(tmp_path / "gpt2.py", "untrusted_test.gpt2")
    assert module.Config().n_layer == 12
