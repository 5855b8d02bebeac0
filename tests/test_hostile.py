"""Specs are shared by strangers: nothing in one may run code or exhaust the machine.

Each injection test puts a payload that would create a marker file if it ever ran as Python
into one string field, then checks two things: the spec is either refused with a located
error (names, layouts, wiring, expressions: nothing is written) or, for prose fields, it
builds and the payload survives only inside string constants of the generated module, and
importing that module creates no marker.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
from pathlib import Path

import pytest
import yaml

from archcc.api import build
from archcc.diagnostics import ArchccError

ROOT = Path(__file__).resolve().parents[1]
MARKER = "PWNED_BY_SPEC"
PAYLOADS = [
    f'"""\nimport pathlib; pathlib.Path("{MARKER}").touch()\n"""',
    f"'''; __import__('pathlib').Path('{MARKER}').touch(); '''",
    f"\\\"); open('{MARKER}', 'w'); (\\\"",
    f"{{{{ config.__class__ }}}} {{% raw %}} {MARKER} ${{jndi}}",
    f"*/ {MARKER} # noqa \n\nimport os\nos.system('touch {MARKER}')",
]


def _gpt2() -> dict:
    return yaml.safe_load((ROOT / "specs" / "gpt2.yaml").read_text())


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def _code_outside_strings(source: str) -> str:
    """The module with every string constant blanked: what Python would actually run."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = ""
    return ast.unparse(tree)


def _import_in(folder: Path, module_file: Path) -> None:
    spec = importlib.util.spec_from_file_location(f"hostile_{id(folder)}", module_file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining Config
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        spec.loader.exec_module(module)
        module.Model(module.Config(n_layer=1, n_embd=16, n_head=2, vocab_size=11,
                                   n_positions=8))
    finally:
        os.chdir(cwd)
        sys.modules.pop(spec.name, None)


def _assert_inert(tmp_path: Path, data: dict) -> None:
    """Prose is legal anywhere a doc goes: the spec builds, and the payload is only data."""
    out = tmp_path / "out"
    build(_write(tmp_path, data), out_dir=out)
    generated = out / f"{data['name']}.py"
    source = generated.read_text()
    assert MARKER in source, "the doc text is kept (escaped), not dropped"
    assert MARKER not in _code_outside_strings(source)
    _import_in(tmp_path, generated)
    assert not (tmp_path / MARKER).exists()


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("field", ["spec doc", "block doc", "model doc"])
def test_docstrings_carry_payloads_as_text_only(tmp_path, field, payload):
    data = _gpt2()
    target = {"spec doc": data, "block doc": data["blocks"]["Block"],
              "model doc": data["model"]}[field]
    target["doc"] = payload
    _assert_inert(tmp_path, data)


@pytest.mark.parametrize("payload", PAYLOADS[:2] + ["__import__", "exec", "os.system",
                                                    "self", "torch", "__class__"])
@pytest.mark.parametrize("where", ["name", "param", "layer", "block", "input", "dim"])
def test_names_are_refused_unless_plain_identifiers(tmp_path, where, payload):
    data = _gpt2()
    if where == "name":
        data["name"] = payload
    elif where == "param":
        data["params"][payload] = 3
    elif where == "layer":
        data["model"]["layers"][payload] = {"op": "dropout", "p": 0.1}
    elif where == "block":
        data["blocks"][payload] = data["blocks"]["Block"]
    elif where == "input":
        data["inputs"][payload] = {"shape": ["B", "T"], "dtype": "int64"}
    else:
        data["dims"][payload] = 4
    with pytest.raises(ArchccError) as info:
        build(_write(tmp_path, data), out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert info.value.diagnostics[0].loc.line > 0


@pytest.mark.parametrize("payload", PAYLOADS[:3] + ["h.{i}'] = 1; import os  #"])
@pytest.mark.parametrize("where", ["rename key", "rename value", "transpose", "drop",
                                   "layout name"])
def test_checkpoint_layouts_refuse_code(tmp_path, where, payload):
    data = _gpt2()
    hf = data["checkpoint"]["hf"]
    if where == "rename key":
        hf["rename"][payload] = "h"
    elif where == "rename value":
        hf["rename"]["transformer.wte"] = payload
    elif where == "transpose":
        hf["transpose"].append(payload)
    elif where == "drop":
        hf["drop"].append(payload)
    else:
        data["checkpoint"][payload] = hf
    with pytest.raises(ArchccError):
        build(_write(tmp_path, data), out_dir=tmp_path / "out")


@pytest.mark.parametrize("text", [
    "x = __import__('os').system('touch " + MARKER + "')\nreturn x",
    "x = h(x).__class__\nreturn x",
    "x = eval('1')\nreturn x",
    "import os\nreturn x",
    "x = lambda: 0\nreturn x",
    "x = [y for y in x]\nreturn x",
    "x = f'{x}'\nreturn x",
])
def test_forward_wiring_is_our_grammar_not_python(tmp_path, text):
    data = _gpt2()
    data["blocks"]["Block"]["forward"] = text
    with pytest.raises(ArchccError) as info:
        build(_write(tmp_path, data), out_dir=tmp_path / "out")
    assert "hostile.yaml" in info.value.diagnostics[0].loc.file


@pytest.mark.parametrize("value", ["__import__('os').getcwd()", "n_embd.__class__",
                                   "(lambda: 1)()", "open('x')", "[1] * 10"])
def test_param_expressions_are_not_python(tmp_path, value):
    data = _gpt2()
    data["params"]["n_inner"] = value
    data["blocks"]["Block"]["layers"]["mlp"]["hidden"] = "n_inner"
    with pytest.raises(ArchccError):
        build(_write(tmp_path, data), out_dir=tmp_path / "out")


@pytest.mark.parametrize(("param", "value", "message"), [
    ("n_layer", 1e9, "out of range"),
    ("n_layer", 10_001, "out of range (1..10000)"),
    ("n_layer", "10 ** 12", "too large"),
    ("n_embd", "10 ** 12", "too large"),
    ("n_embd", "2 ** 2 ** 2 ** 2 ** 2", "too large"),
    ("vocab_size", "9" * 400, "number is too long"),
])
def test_absurd_sizes_are_refused_before_anything_is_allocated(tmp_path, param, value,
                                                                 message):
    data = _gpt2()
    data["params"][param] = value
    with pytest.raises(ArchccError) as info:
        build(_write(tmp_path, data), out_dir=tmp_path / "out")
    text = "\n".join(d.message for d in info.value.diagnostics)
    assert message in text, text


def test_deeply_nested_expressions_are_a_clean_error(tmp_path):
    data = _gpt2()
    data["params"]["n_inner"] = "(1 + " * 5000 + "1" + ")" * 5000
    with pytest.raises(ArchccError):
        build(_write(tmp_path, data), out_dir=tmp_path / "out")


def test_billion_laughs_and_huge_files_are_refused(tmp_path):
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(laughs)
    with pytest.raises(ArchccError, match="anchors and aliases"):
        build(bomb, out_dir=tmp_path / "out")
    huge = tmp_path / "huge.yaml"
    huge.write_text("archcc: 1\n" + "# padding\n" * 200_000)
    with pytest.raises(ArchccError, match="larger than 1 MB"):
        build(huge, out_dir=tmp_path / "out")


@pytest.mark.parametrize("payload", PAYLOADS)
def test_arch_front_end_keeps_payloads_as_text(tmp_path, payload):
    """The same payloads through the .arch DSL's string literals."""
    from archcc.parser import load_spec
    from archcc.parser.writer import to_arch

    data = _gpt2()
    data["doc"] = data["blocks"]["Block"]["doc"] = payload
    spec = load_spec(_write(tmp_path, data)).spec
    arch = tmp_path / "hostile.arch"
    arch.write_text(to_arch(spec))
    out = tmp_path / "out"
    build(arch, out_dir=out)
    source = (out / "gpt2.py").read_text()
    assert MARKER not in _code_outside_strings(source)
    _import_in(tmp_path, out / "gpt2.py")
    assert not (tmp_path / MARKER).exists()
