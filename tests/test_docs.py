"""Every example in README.md and docs/*.md is checked.

Fenced blocks are read from the Markdown. What is checked depends on the fence's language and
on an optional marker, an HTML comment on the line just before the fence:

    ```yaml      a full spec (it has `archcc: 1`) compiles with archcc.api.compile_spec;
                 any other YAML block needs a marker
    ```python    compiles as Python source; runs too when marked <!-- runs -->
    ```bash      every `archcc ...` line runs in-process (archcc.cli.main) and exits 0
    ```console   every `$ archcc ...` line runs the same way; the lines after it are its
                 output (stdout, then stderr), where a line `...` stands for any lines; an
                 output holding "error:" means exit code 1

    <!-- fragment -->                 part of a spec or program: not checked
    <!-- from: PATH -->               a copy of lines of PATH (from the repository root):
                                      each line, less `#` comments and indentation, is in
                                      PATH, in order
    <!-- generated -->                lines of the module generated from the last full spec
                                      above it in the same file, in order
    <!-- generated-from: PATH -->     the same, for the module generated from PATH
    <!-- runs -->                     a Python example run from the repository root
    <!-- save: NAME -->               a file the commands use, written to NAME

Commands run in a work folder holding copies of pyproject.toml, specs/, examples/ and
tests/specs/, so the paths in the docs resolve and nothing a command writes lands in the
checkout. Relative links between the files, anchors included, must resolve, and so must the
repository paths the prose names in backticks. README's Architectures table lists every spec
in specs/, and docs/language.md's ops table every op `archcc blocks list` knows.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from archcc.api import compile_spec
from archcc.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Commands the docs show that this test does not run, and why.
SKIP = {
    ("bench",): "times eager, torch.compile and a Hugging Face reference: minutes "
                "(tests/test_bench.py covers the command)",
    ("export",): "torch.export and ONNX export take tens of seconds "
                 "(tests/test_runtime_export.py covers the command)",
    ("blocks", "describe", "channel_attention"): "needs the example plugin installed "
                                                 "(tests/test_plugins.py installs and runs it)",
    ("build", "examples/cbam_plugin/cbam_net.yaml"): "needs the example plugin installed "
                                                     "(tests/test_plugins.py)",
}
# Files the examples take for granted (a user has them); the commands' work folder gets them.
GIVEN = {
    "path/to/config.json": json.dumps({"model_type": "gpt2", "n_layer": 2, "n_embd": 64,
                                       "n_head": 4, "vocab_size": 101, "n_positions": 32}),
}
OUTPUT_OPTIONS = {"-o", "--out", "--html", "--onnx", "--pt2"}
MARKER = re.compile(r"<!--\s*(fragment|generated|runs|(?:from|generated-from|save):\s*\S+)"
                    r"\s*-->")
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass
class Fence:
    path: Path
    line: int  # 1-based line of the opening ```
    lang: str
    body: str
    marker: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    def marked(self, kind: str) -> str | None:
        """The argument of a `kind: ARG` marker ('' for a bare `kind`), else None."""
        if self.marker == kind:
            return ""
        if self.marker and self.marker.startswith(kind + ":"):
            return self.marker.split(":", 1)[1].strip()
        return None

    def is_full_spec(self) -> bool:
        return self.lang == "yaml" and re.search(r"^archcc: 1\s*$", self.body, re.M) is not None


def read_fences(path: Path) -> list[Fence]:
    lines = path.read_text(encoding="utf-8").splitlines()
    fences, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start, marker = i, None
        before = lines[i - 1].strip() if i else ""
        found = MARKER.fullmatch(before)
        if found:
            marker = found.group(1)
        i += 1
        while not lines[i].startswith("```"):
            i += 1
        fences.append(Fence(path, start + 1, match.group(1),
                            "\n".join(lines[start + 1:i]) + "\n", marker))
        i += 1
    return fences


FENCES = [fence for path in DOCS for fence in read_fences(path)]


def fences(predicate) -> list:
    chosen = [f for f in FENCES if predicate(f)]
    return [pytest.param(f, id=f.where) for f in chosen]


# ------------------------------------------------------------------------------- specs

@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """Generated source of a spec fence (by its text) or of a repository file (by path)."""
    cache: dict[str, str] = {}
    folder = tmp_path_factory.mktemp("doc_specs")

    def get(fence: Fence | None = None, path: str | None = None) -> str:
        key = fence.body if fence else path
        if key not in cache:
            if fence is not None:
                name = re.search(r"^name: (\w+)", fence.body, re.M).group(1)
                spec = folder / f"{name}.yaml"
                spec.write_text(fence.body, encoding="utf-8")
            else:
                spec = ROOT / path
            cache[key] = compile_spec(spec).source
        return cache[key]

    return get


@pytest.mark.parametrize("fence", fences(lambda f: f.is_full_spec() and f.marker is None))
def test_full_spec_compiles(fence, compiled):
    compiled(fence)


def test_every_yaml_block_is_a_spec_or_marked():
    unmarked = [f.where for f in FENCES
                if f.lang == "yaml" and f.marker is None and not f.is_full_spec()]
    assert not unmarked, (f"YAML blocks that are not full specs (no `archcc: 1`): {unmarked}; "
                          "mark them <!-- fragment --> or <!-- from: PATH -->")


def _content(line: str) -> str:
    """A line without its `#` comment and indentation (`...` and blanks: nothing)."""
    line = re.sub(r"(^|\s)#.*$", "", line).strip()
    return "" if line in ("...", "…") else line


def assert_lines_in_order(fence: Fence, text: str, source: str) -> None:
    wanted = [c for c in map(_content, fence.body.splitlines()) if c]
    have = [c for c in map(_content, text.splitlines()) if c]
    position = 0
    for line in wanted:
        try:
            position = have.index(line, position) + 1
        except ValueError:
            pytest.fail(f"{fence.where}: not in {source} (after the lines before it): {line!r}")


@pytest.mark.parametrize("fence", fences(lambda f: f.marked("from")))
def test_copy_matches_its_source(fence):
    path = ROOT / fence.marked("from")
    assert path.is_file(), f"{fence.where}: {path} does not exist"
    assert_lines_in_order(fence, path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))


def _spec_above(fence: Fence) -> Fence:
    above = [f for f in FENCES if f.path == fence.path and f.line < fence.line
             and f.is_full_spec()]
    assert above, f"{fence.where}: <!-- generated --> needs a full spec above it"
    return above[-1]


@pytest.mark.parametrize("fence", fences(lambda f: f.marked("generated") is not None
                                         or f.marked("generated-from")))
def test_generated_excerpt_is_what_archcc_writes(fence, compiled):
    path = fence.marked("generated-from")
    source = compiled(path=path) if path else compiled(_spec_above(fence))
    assert_lines_in_order(fence, source, "the generated module")


# ------------------------------------------------------------------------------ python

@pytest.mark.parametrize("fence", fences(lambda f: f.lang == "python" and f.marker in (None,
                                                                                     "runs")))
def test_python_example_is_python(fence):
    compile(fence.body, fence.where, "exec")


@pytest.mark.parametrize("fence", fences(lambda f: f.lang == "python" and f.marker == "runs"))
def test_python_example_runs(fence, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    exec(compile(fence.body, fence.where, "exec"), {"__name__": "__doc_example__"})


# ---------------------------------------------------------------------------- commands

@dataclass
class Command:
    args: list[str]
    expected: list[str] | None  # console output lines, None for a bash line


def _archcc_args(line: str) -> list[str] | None:
    """`archcc build x` (or .venv/bin/archcc, python -m archcc) -> ["build", "x"]."""
    words = shlex.split(line, comments=True)
    for prefix in (["archcc"], [".venv/bin/archcc"], [".venv/bin/python", "-m", "archcc"],
                   ["python", "-m", "archcc"]):
        if words[:len(prefix)] == prefix:
            return words[len(prefix):]
    return None


def commands(fence: Fence) -> list[Command]:
    logical = re.sub(r"\\\n\s*", " ", fence.body).splitlines()
    found: list[Command] = []
    for line in logical:
        if fence.lang == "console":
            if line.startswith("$ "):
                args = _archcc_args(line[2:])
                found.append(Command(args, []) if args is not None else Command([], None))
            elif found and found[-1].expected is not None:
                found[-1].expected.append(line)
        elif line.strip():
            args = _archcc_args(line)
            if args is not None:
                found.append(Command(args, None))
    return [c for c in found if c.args]


def _skip_reason(args: list[str]) -> str | None:
    for prefix, reason in SKIP.items():
        if tuple(args[:len(prefix)]) == prefix:
            return reason
    if "--png" in args and shutil.which("dot") is None:
        return "--png needs Graphviz"
    return None


def _matches(expected: list[str], actual: str) -> bool:
    """Line by line; a line `...` matches any run of lines."""
    while expected and not expected[-1].strip():
        expected = expected[:-1]
    pattern = "".join(r"(?:.*\n)*?" if line.strip() == "..." else re.escape(line.rstrip()) + r"\n"
                      for line in expected)
    text = "".join(line.rstrip() + "\n" for line in actual.rstrip("\n").splitlines())
    return re.fullmatch(pattern, text) is not None


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("doc_commands")
    shutil.copy(ROOT / "pyproject.toml", work)
    for folder in ("specs", "examples", "tests/specs"):
        shutil.copytree(ROOT / folder, work / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (work / "docs").mkdir()
    for name, text in GIVEN.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    for fence in FENCES:
        if fence.marked("save"):
            (work / fence.marked("save")).write_text(fence.body, encoding="utf-8")
    return work


def _shell_words(args: list[str], cwd: Path) -> list[str]:
    """What a shell hands archcc: globs expanded in cwd; absolute output paths are moved
    into cwd, so that a command writes nothing outside its work folder."""
    words: list[str] = []
    for i, arg in enumerate(args):
        if i and args[i - 1] in OUTPUT_OPTIONS and Path(arg).is_absolute():
            words.append(str(cwd / Path(arg).name))
        elif "*" in arg and not arg.startswith("-") and sorted(cwd.glob(arg)):
            words.extend(str(p.relative_to(cwd)) for p in sorted(cwd.glob(arg)))
        else:
            words.append(arg)
    return words


def run(args: list[str], cwd: Path) -> tuple[int, str]:
    args = _shell_words(args, cwd)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:  # argparse: a usage error
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue() + err.getvalue()


@pytest.mark.parametrize("fence", fences(lambda f: f.lang in ("bash", "console")
                                         and f.marker != "fragment" and commands(f)))
def test_commands_run(fence, workdir):
    ran = 0
    for command in commands(fence):
        if _skip_reason(command.args):
            continue
        code, output = run(command.args, workdir)
        shown = "archcc " + shlex.join(command.args)
        want = 1 if command.expected and any("error:" in x for x in command.expected) else 0
        assert code == want, f"{fence.where}: `{shown}` exited {code}:\n{output}"
        if command.expected:
            assert _matches(command.expected, output), (
                f"{fence.where}: `{shown}` printed something else:\n{output}")
        ran += 1
    if not ran:
        pytest.skip("; ".join(filter(None, (_skip_reason(c.args) for c in commands(fence)))))


def test_skipped_commands_are_still_in_the_docs():
    """An entry of SKIP that no longer matches a command is stale."""
    shown = [c.args for f in FENCES if f.lang in ("bash", "console") for c in commands(f)]
    for prefix in SKIP:
        assert any(tuple(a[:len(prefix)]) == prefix for a in shown), prefix


# ------------------------------------------------------------------------------- links

def _prose(path: Path) -> str:
    """The Markdown without its fenced blocks."""
    return re.sub(r"^```.*?^```[ \t]*$", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)


def _anchors(path: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    ids = set()
    for heading in re.findall(r"^#{1,6} (.+)$", _prose(path), re.M):
        text = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower())
        ids.add(text.replace(" ", "-"))
    return ids


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(path):
    for target in re.findall(r"\]\(([^)\s]+)\)", _prose(path)):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        assert linked.exists(), f"{path.name}: link to {target}: no such file"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{path.name}: link to {target}: no such heading"


# Paths the docs name that examples create (outputs), not files of the repository.
WRITTEN_BY_EXAMPLES = {"specs/my_gpt2.yaml", "specs/my_vit.yaml", "generated/tiny_lm.py"}


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_repository_paths_exist(path):
    named = re.findall(r"`((?:specs|tests|examples|benchmarks|archcc|docs|schema|generated)"
                       r"/[\w./-]*)`", _prose(path))
    missing = [p for p in named if p not in WRITTEN_BY_EXAMPLES and not (ROOT / p).exists()]
    assert not missing, f"{path.name} names files that do not exist: {missing}"


# ------------------------------------------------------------------------ inventories

def _table_rows(path: Path, heading: str) -> list[str]:
    """The first cells of the table under ``heading``."""
    text = _prose(path).split(heading, 1)[1]
    return re.findall(r"^\| ([^|\n]+?) \|", text.split("\n#", 1)[0], re.M)[1:]


def test_readme_lists_every_spec():
    listed = {name for cell in _table_rows(ROOT / "README.md", "## Architectures")
              for name in re.findall(r"`(\w+)`", cell)}
    specs = {p.stem for p in (ROOT / "specs").glob("*.yaml")}
    assert listed == specs, f"README's Architectures table: missing {specs - listed}, " \
                            f"unknown {listed - specs}"


def test_ops_at_a_glance_names_every_op(capsys):
    assert main(["blocks", "list"]) == 0
    known = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()}
    cells = _table_rows(ROOT / "docs" / "language.md", "## Ops at a glance")
    listed = {name for cell in cells for name in re.findall(r"`\{?(\w+)", cell)}
    assert listed == known, f"docs/language.md's ops table: missing {known - listed}, " \
                            f"unknown {listed - known}"
