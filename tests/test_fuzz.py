"""Seeded mutation fuzzing: hostile edits of every bundled spec (YAML and .arch) and of a
config.json per `archcc import hf` family are refused with a located error or accepted
with a model that reflects them. Never an internal error, an error without a line, a hang
past 5 s, or a silent misconfiguration.

The mutants are a pure function of (N, seed): ARCHCC_FUZZ_N (default 12 per spec form and
per family) and ARCHCC_FUZZ_SEED (default 0) replay or widen a run; the table of a run is
``python benchmarks/fuzz_report.py --n N --seed S``. Mutation, running and judging live in
tests/fuzzing.py.

Failures whose cause lies in the IR, codegen or the op schemas (being moved into
archcc/ops/) are listed in DEFERRED, each with the file its fix belongs in and a
hand-written example that must still fail that way (strict: a fixed entry must go).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from archcc.diagnostics import ArchccError, Diagnostic, SourceLoc
from tests import fuzzing
from tests.fuzzing import FAILURES, Baseline, Hang, Mutant, Result

DEFAULT_N, DEFAULT_SEED = 12, 0
N = int(os.environ.get("ARCHCC_FUZZ_N", DEFAULT_N))
SEED = int(os.environ.get("ARCHCC_FUZZ_SEED", DEFAULT_SEED))


def _edit(spec: str, old: str, new: str, kind: str, where: str, **kw) -> Mutant:
    """A hand-written mutant of ``specs/<spec>``: the reproduction of a deferred failure."""
    text = (fuzzing.SPECS / spec).read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {spec}"
    mutated = text.replace(old, new, 1)
    return Mutant(spec, kind, where, new.strip()[:40], mutated.encode("utf-8"), **kw)


@dataclass(frozen=True)
class Deferred:
    """A known failure whose fix belongs in a file this suite's authors may not edit now:
    fuzz results it covers are expected, and ``example`` must still fail that way."""

    mutants: str  # regex searched in Mutant.id: "<spec>|<operator>|<where>|<change>"
    outcomes: tuple[str, ...]
    detail: str  # regex searched in Result.detail (messages, and "file:line in f < g < h")
    reason: str
    fix_in: str
    example: Mutant

    def covers(self, result: Result) -> bool:
        return (result.outcome in self.outcomes
                and re.search(self.mutants, result.mutant.id) is not None
                and re.search(self.detail, result.detail) is not None)


# Failures first found by this fuzzer and fixed since, each with its reproduction: they
# must stay fixed (tests below). A new failure whose fix has to wait goes in DEFERRED.
FIXED = [
    Deferred(r"\|forward_(keyword|arity)\|", ("wrong", "internal"),
             r"must be refused|in measure\b",
             "a layer call with an unknown keyword (ln(x, bogus=1)) or a wrong number of "
             "inputs (ln(x, x), ln()) passes check and fails at run time (in gpt2, inside "
             "its budget's measurement: a TypeError)",
             "archcc/ir/forward.py: check calls against the layer's inputs and keywords",
             _edit("lstm_lm.yaml", "return lm_head(drop(out)), h, c",
                   "return lm_head(drop(out), bogus=1), h, c", "forward_keyword", "line 22",
                   must_refuse=True)),
    Deferred(r"\|(number|swap_type)\|", ("wrong", "internal"),
             r"is not a probability|is a negative epsilon|is not a finite number"
             r"|dropout probability has to be",
             "a dropout probability outside [0, 1], a negative or NaN norm eps are accepted, "
             "in an op field or through a param (gpt2's budget then fails inside torch)",
             "archcc/parser/schema.py (moving to archcc/ops/): bounds on Scalar fields, "
             "checked after params are evaluated",
             _edit("lstm_lm.yaml", "dropout: 0.5", "dropout: -0.5", "number", "params.dropout",
                   value=("dropout", "0.5", -0.5), param=True)),
    Deferred(r".", ("internal",), r"KeyError: None .*views\.py",
             "a layer (residual, ffn, ...) that no forward line calls has no lowered class, "
             "and codegen looks its class up by None",
             "archcc/ir/build.py: refuse an unused layer with a located error (or drop it "
             "before archcc/codegen/views.py)",
             _edit("transformer.yaml", "      x = ff(x)\n", "", "forward_delete", "line 37")),
    Deferred(r".", ("internal",), r"has no inferred dtype",
             "a repeat that no forward line calls is never shape-inferred, and the IR "
             "verifier fails on it",
             "archcc/ir/build.py (or ir/infer.py): refuse or drop an unused repeat",
             _edit("gpt2.yaml", "    x = h(x)\n", "    x = drop(x)\n", "forward_swap_names",
                   "line 38")),
    Deferred(r".", ("internal",), r"< views\._parse|in example_inputs\b",
             "inputs.*.high is parsed only when example_inputs() is written (and evaluated "
             "only by a budget's measurement), so a bad expression there, or one that divides "
             "by zero or calls sqrt, escapes as an exception",
             "archcc/ir/build.py: evaluate high with the params, as sizes are; "
             "archcc/codegen/views.py then renders the checked value",
             _edit("word2vec.yaml", "context: {shape: [B], dtype: int64, high: vocab_size}",
                   'context: {shape: [B], dtype: int64, high: "4 *"}', "expression",
                   "inputs.context.high")),
    Deferred(r"\|(number|swap_type)\|", ("internal",), r"Storage size calculation overflowed",
             "a budget is measured at the spec's dims, and a dim near 2**31 overflows torch's "
             "size computation even on the meta device",
             "archcc/inspect/measure.py (or inspect/budget.py): refuse a budget measurement "
             "whose tensors exceed what torch can size, with a located error at the dim",
             _edit("gpt2.yaml", "dims: {T: 16}", "dims: {T: 2147483648}", "number", "dims.T",
                   value=("T", "16", 2.0**31))),
]
DEFERRED: list[Deferred] = []


def deferred(result: Result) -> Deferred | None:
    return next((d for d in DEFERRED if d.covers(result)), None)


def _report(results: list[Result]) -> str:
    return "\n".join(f"{r.outcome}: {r.mutant.id}\n    {r.detail}" for r in results[:20])


@pytest.fixture(scope="module")
def spec_results(tmp_path_factory) -> list[Result]:
    return fuzzing.fuzz_specs(tmp_path_factory.mktemp("fuzz"), N, SEED)


@pytest.fixture(scope="module")
def hf_results(tmp_path_factory) -> list[Result]:
    return fuzzing.fuzz_hf(tmp_path_factory.mktemp("fuzz_hf"), N, SEED)


# ------------------------------------------------------------------------------- specs


@pytest.mark.parametrize("outcome", FAILURES)
def test_spec_mutants_have_no(spec_results, outcome):
    unexpected = [r for r in spec_results if r.outcome == outcome and deferred(r) is None]
    assert not unexpected, f"{len(unexpected)} {outcome}:\n{_report(unexpected)}"


def test_every_bundled_spec_and_operator_is_fuzzed(spec_results):
    forms = {r.mutant.base for r in spec_results}
    stems = {p.stem for p in fuzzing.SPECS.glob("*.yaml")}
    assert forms == {f"{s}.yaml" for s in stems} | {f"{s}.arch" for s in stems}
    per_form = {f: sum(r.mutant.base == f for r in spec_results) for f in forms}
    assert min(per_form.values()) >= min(N, DEFAULT_N), per_form  # distinct mutants each
    kinds = {r.mutant.kind.split("_")[0] for r in spec_results}
    assert kinds >= {"delete", "swap", "number", "expression", "char", "bad", "truncate",
                     "duplicate", "tag", "alias", "deep", "neutral", "forward", "comment"}


@pytest.mark.parametrize("entry", FIXED, ids=[d.fix_in.split(":")[0].split(" ")[0]
                                               + f"-{i}" for i, d in enumerate(FIXED)])
def test_fixed_failures_stay_fixed(tmp_path, entry):
    """Each failure this fuzzer found and archcc fixed: its example is now a located error
    or a model that builds as the spec says."""
    name = entry.example.base
    base = fuzzing.baseline(tmp_path, name, (fuzzing.SPECS / name).read_bytes())
    result = fuzzing.run_one(entry.example, tmp_path, base)
    assert result.outcome not in FAILURES, f"{entry.reason}\nnow: {result.outcome}: " \
                                           f"{result.detail}"


@pytest.mark.parametrize("entry", DEFERRED, ids=[d.fix_in.split(":")[0].split(" ")[0]
                                                  + f"-{i}" for i, d in enumerate(DEFERRED)])
def test_deferred_failures_are_still_real(tmp_path, entry):
    """Strict: each deferred failure's example must still fail as described; once fixed, the
    entry must leave DEFERRED (so the fuzzer guards the fix)."""
    name = entry.example.base
    base = fuzzing.baseline(tmp_path, name, (fuzzing.SPECS / name).read_bytes())
    result = fuzzing.run_one(entry.example, tmp_path, base)
    assert entry.covers(result), (f"fixed? remove from DEFERRED: {entry.reason}\n"
                                  f"now: {result.outcome}: {result.detail}")


# ------------------------------------------------------------------------ import hf


@pytest.mark.parametrize("outcome", FAILURES)
def test_hf_config_mutants_have_no(hf_results, outcome):
    unexpected = [r for r in hf_results if r.outcome == outcome]
    assert not unexpected, f"{len(unexpected)} {outcome}:\n{_report(unexpected)}"


def test_every_family_and_config_operator_is_fuzzed(hf_results):
    assert {r.mutant.base.split("/")[0] for r in hf_results} == set(fuzzing.HF_CONFIGS)
    kinds = {r.mutant.kind for r in hf_results}
    assert kinds >= {"delete_key", "swap_type", "number", "deep", "remote_code",
                     "duplicate_key", "char", "bad_utf8", "truncate", "model_type", "neutral"}


@pytest.mark.parametrize(("key", "value"), fuzzing.REMOTE)
@pytest.mark.parametrize("nested", [False, True])
def test_remote_code_configs_are_refused_by_name(tmp_path, key, value, nested):
    config = dict(fuzzing.HF_CONFIGS["clip"])
    if nested:
        config["text_config"] = {**config["text_config"], key: value}
    else:
        config[key] = value
    with pytest.raises(ArchccError) as info:
        fuzzing.hf_import(tmp_path, fuzzing._dump(config).encode())
    (diag,) = info.value.diagnostics
    assert diag.path == (f"text_config.{key}" if nested else key)
    assert key in diag.message and diag.loc.line > 1
    assert not (tmp_path / "imported.yaml").exists()


# ------------------------------------------------------------ the fuzzer itself can fail


def test_mutants_are_a_function_of_the_seed():
    name, data = fuzzing.spec_forms(["gpt2"])[1]
    first = [m.id for m in fuzzing.mutants(name, data, 30, 7)]
    assert first == [m.id for m in fuzzing.mutants(name, data, 30, 7)]
    assert first != [m.id for m in fuzzing.mutants(name, data, 30, 8)]


def test_classification_of_errors():
    def error(loc):
        return ArchccError(Diagnostic(loc, "", "bad"))

    assert fuzzing.classify_error(error(SourceLoc("s.yaml", 3, 1)), "s.yaml")[0] == "located"
    assert fuzzing.classify_error(error(SourceLoc("s.yaml")), "s.yaml")[0] == "unlocated"
    assert fuzzing.classify_error(error(None), "s.yaml")[0] == "unlocated"
    assert fuzzing.classify_error(error(SourceLoc("s.yaml", 3, 1)), "s.yaml", 4)[0] \
        == "misplaced"
    assert fuzzing.classify_error(KeyError("x"), "s.yaml")[0] == "internal"
    assert fuzzing.classify_error(Hang(), "s.yaml")[0] == "hang"


def test_the_time_limit_interrupts_a_busy_loop():
    start = time.perf_counter()
    with pytest.raises(Hang), fuzzing.time_limit(0.2):
        while True:
            pass
    assert time.perf_counter() - start < 2


def test_the_judge_catches_a_silent_misconfiguration(tmp_path):
    """Same code while the spec's meaning changed is wrong; a changed meaning with changed
    code, a doc-only edit and an out-of-domain number are judged as they should be."""
    spec = fuzzing.SPECS / "lstm_lm.yaml"
    path = tmp_path / "lstm_lm.yaml"
    path.write_bytes(spec.read_bytes())
    from archcc.api import compile_spec

    source = compile_spec(path).source
    code = fuzzing.normalized(source)
    mutant = Mutant("lstm_lm.yaml", "number", "params.n_layer", "3", b"")
    changed_meaning = Baseline(code, meaning={"something": "else"})
    assert fuzzing.judge(mutant, changed_meaning, source, path)[0] == "wrong"
    same_meaning = Baseline(code, fuzzing.meaning(path))
    assert fuzzing.judge(mutant, same_meaning, source, path)[0] == "right"
    other_code = Baseline("other code", meaning={"something": "else"})
    assert fuzzing.judge(mutant, other_code, source, path)[0] == "right"
    neutral = Mutant("lstm_lm.yaml", "neutral", "crlf", "crlf", b"", neutral=True)
    assert fuzzing.judge(neutral, other_code, source, path)[0] == "wrong"
    negative = Mutant("lstm_lm.yaml", "number", "params.dropout", "-1", b"",
                      value=("dropout", "0.5", -1.0))
    assert fuzzing.judge(negative, same_meaning, source, path)[0] == "wrong"
    doc = source.replace("LSTM language model", "An LSTM language model")
    assert fuzzing.normalized(doc) == code  # docstrings are not code


def test_domain_rules():
    assert fuzzing.domain_error("dropout", "0.1", 0.3) is None
    assert fuzzing.domain_error("p", "0.1", 1.5)
    assert fuzzing.domain_error("layer_norm_eps", "1e-5", -1.0)
    assert fuzzing.domain_error("n_layer", "12", 0.0)
    assert fuzzing.domain_error("n_layer", "12", 7.5)
    assert fuzzing.domain_error("n_layer", "12", 2.0**31 + 1)
    assert fuzzing.domain_error("padding", "1", 0.0) is None
    assert fuzzing.domain_error("pad_token_id", "3", 0.0) is None
    assert fuzzing.domain_error("scale", "2.0", -3.0) is None
    assert fuzzing.domain_error("anything", "1", float("nan"))


# ------------------------------------------------------------ pinned regressions


def _load(tmp_path: Path, name: str, data: bytes):
    from archcc.api import compile_spec

    path = tmp_path / name
    path.write_bytes(data)
    return compile_spec(path)


def _arch(spec: str = "gpt2") -> str:
    from archcc.parser import load_spec
    from archcc.parser.writer import to_arch

    return to_arch(load_spec(fuzzing.SPECS / f"{spec}.yaml").spec)


@pytest.mark.parametrize("char", fuzzing.COMMENT_CHARS)
def test_a_line_break_lookalike_in_an_arch_comment_keeps_error_lines(tmp_path, char):
    """A form feed, U+2028, NEL, ... in a comment is one character of one line: the next
    error names its own line and quotes that line (Python's splitlines broke lines there)."""
    lines = _arch().split("\n")
    at = next(i for i, line in enumerate(lines) if "x = x + mlp(ln_2(x))" in line)
    lines[at] = lines[at].replace("mlp(", "mpl(")
    lines.insert(2, f"# a comment{char}with an odd character")
    with pytest.raises(ArchccError) as info:
        _load(tmp_path, "gpt2.arch", "\n".join(lines).encode())
    (diag,) = info.value.diagnostics
    assert diag.loc.line == at + 2
    assert "mpl(" in str(info.value).split("\n")[1]  # the quoted line is the right one


@pytest.mark.parametrize("name", ["gpt2.yaml", "gpt2.arch"])
@pytest.mark.parametrize("edit", ["crlf", "bom"])
def test_crlf_and_a_byte_order_mark_change_nothing(tmp_path, name, edit):
    text = (fuzzing.SPECS / name).read_text() if name.endswith(".yaml") else _arch()
    plain = fuzzing.normalized(_load(tmp_path, name, text.encode()).source)
    text = text.replace("\n", "\r\n") if edit == "crlf" else "\ufeff" + text
    assert fuzzing.normalized(_load(tmp_path, name, text.encode()).source) == plain


@pytest.mark.parametrize(("bad", "line", "col"), [(b"\xff", 3, 8), (b"\xc3(", 3, 8),
                                                  (b"\xed\xa0\x80", 3, 8)])
def test_invalid_utf8_is_located_at_its_byte(tmp_path, bad, line, col):
    raw = (fuzzing.SPECS / "gpt2.yaml").read_bytes().replace(b"name: gpt2",
                                                              b"name: \xc3\xa9" + bad + b"x")
    with pytest.raises(ArchccError) as info:
        _load(tmp_path, "gpt2.yaml", raw)
    (diag,) = info.value.diagnostics
    assert (diag.loc.line, diag.loc.col) == (line, col)
    assert "not valid UTF-8" in diag.message


DEEP = {"flow_list": "[" * 3000 + "]" * 3000, "flow_mapping": "{a: " * 3000 + "1" + "}" * 3000,
        "block_sequence": "\n  " + "- " * 3000 + "x"}


@pytest.mark.parametrize("value", DEEP.values(), ids=list(DEEP))
def test_deep_yaml_is_a_quick_error_at_the_nesting(tmp_path, value):
    text = (fuzzing.SPECS / "gpt2.yaml").read_text()
    text = text.replace("dims: {T: 16}", f"dims: {{T: 16}}\nfuzz: {value}")
    line = text[:text.index("fuzz:")].count("\n") + 1 + value.startswith("\n")
    start = time.perf_counter()
    with pytest.raises(ArchccError) as info:
        _load(tmp_path, "gpt2.yaml", text.encode())
    assert time.perf_counter() - start < 3
    (diag,) = info.value.diagnostics
    assert diag.loc.line == line and "nests deeper than" in diag.message


def test_control_characters_never_reach_the_terminal(tmp_path, capsys):
    """Messages escape what they quote; the quoted source line shows U+FFFD in its place."""
    from archcc.cli import main

    lines = _arch().split("\n")
    at = next(i for i, line in enumerate(lines) if "ln_f = layernorm" in line)
    lines[at] = lines[at].replace("ln_f", "ln_\u202ef")
    (tmp_path / "gpt2.arch").write_text("\n".join(lines), encoding="utf-8")
    monkey = pytest.MonkeyPatch()
    monkey.chdir(tmp_path)
    try:
        assert main(["check", "gpt2.arch"]) == 1
    finally:
        monkey.undo()
    err = capsys.readouterr().err
    assert "\u202e" not in err and "U+202E" in err and "\ufffd" in err


@pytest.mark.parametrize("escape", ["\\r", "\\0", "\\f", "\\u2028", "\\x1b"])
def test_an_escaped_control_character_in_an_expression_is_located(tmp_path, escape):
    """A YAML escape puts any character into an expression; lark and the error both count
    lines by \\n, so the message names the character at its place in the file."""
    text = (fuzzing.SPECS / "gpt2.yaml").read_text()
    text = text.replace("hidden: 4 * n_embd", f'hidden: "4 *{escape} n_embd"')
    with pytest.raises(ArchccError) as info:
        _load(tmp_path, "gpt2.yaml", text.encode())
    (diag,) = info.value.diagnostics
    line = text[:text.index("hidden: \"4 *")].count("\n") + 1
    assert diag.loc.line == line and "unexpected character U+" in diag.message
