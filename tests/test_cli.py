"""The CLI as users run it: real subprocesses, exit codes, files written or not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def archcc(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    # this checkout's archcc, whatever the cwd (an editable install may point elsewhere)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run([sys.executable, "-m", "archcc", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)


def test_build_all_into_a_folder_and_import(tmp_path):
    specs = sorted(str(p) for p in (ROOT / "specs").glob("*.yaml"))
    proc = archcc("build", *specs, "-o", str(tmp_path / "gen"))
    assert proc.returncode == 0, proc.stderr
    written = sorted(p.name for p in (tmp_path / "gen").glob("*.py"))
    assert written == sorted(Path(s).stem + ".py" for s in specs)
    code = "from gen.gpt2 import Model, Config; print(Config().n_layer)"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path,
                            capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "12", result.stderr


def test_check_writes_nothing(tmp_path):
    proc = archcc("check", str(ROOT / "specs" / "gpt2.yaml"), cwd=tmp_path)
    assert proc.returncode == 0
    assert "ok (gpt2, 4 classes)" in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_one_bad_spec_means_nothing_is_written(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("archcc: 1\nname: bad\ninputs: {}\nmodel: {forward: 'return y'}\n")
    proc = archcc("build", str(ROOT / "specs" / "gpt2.yaml"), str(bad), "-o",
                  str(tmp_path / "out"))
    assert proc.returncode == 1
    assert "undefined name 'y'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_explain_and_dump_ir():
    proc = archcc("build", "specs/gpt2.yaml", "-o", "/tmp/archcc-explain", "--explain")
    assert "fuse_attention: CausalSelfAttention.y -> CausalSelfAttention.y_5: sdpa" in proc.stdout
    dump = archcc("build", "specs/gpt2.yaml", "--dump-ir=after:fuse_attention")
    assert dump.returncode == 0
    assert "sdpa(" in dump.stdout and "module Gpt2 (model)" in dump.stdout
    unknown = archcc("build", "specs/gpt2.yaml", "--dump-ir=after:nope")
    assert unknown.returncode != 0 and "unknown pass 'nope'" in unknown.stderr


def test_missing_file_is_a_clean_error():
    proc = archcc("check", "specs/nope.yaml")
    assert proc.returncode == 1
    assert proc.stderr.startswith("specs/nope.yaml: error: cannot read spec")
