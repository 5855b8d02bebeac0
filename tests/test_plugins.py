"""Plugin ops (archcc.plugins) with the example plugin examples/cbam_plugin.

The plugin is made discoverable the way `pip install` does it: a ``*.dist-info`` folder with
``entry_points.txt`` on sys.path (importlib.metadata finds distributions that way), the
package itself on sys.path. CLI runs get the same two folders through PYTHONPATH.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Literal

import pytest
import torch
from torch import nn

import archcc
from archcc import plugins
from archcc.diagnostics import ArchccError, render
from archcc.parser import schema

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "examples" / "cbam_plugin"
DIST = "archcc-cbam-plugin"

SPEC = """\
archcc: 1
name: cbam_small
params:
  channels: 16
  reduction: 4
inputs:
  x: {{shape: [B, 16, 8, 8]}}
model:
  layers:
    ca: {{op: channel_attention, channels: {channels}, reduction: reduction{extra}}}
  forward: |
    y = ca(x)
    return y
"""


def _dist_info(root: Path, entry: str, name: str = DIST) -> Path:
    """What pip writes for an installed package: METADATA and entry_points.txt."""
    info = root / f"{name.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[archcc.ops]\n{entry}\n")
    return root


@pytest.fixture
def site(tmp_path):
    return _dist_info(tmp_path / "site", "channel_attention = cbam_plugin:PLUGIN")


@pytest.fixture
def cbam(site, monkeypatch, _clean_registry):
    """The example plugin, installed and loaded through the real entry-point path."""
    monkeypatch.syspath_prepend(str(PACKAGE))
    monkeypatch.syspath_prepend(str(site))
    plugins.reset()
    plugins.load_installed()
    yield plugins.get("channel_attention")
    plugins.reset()
    sys.modules.pop("cbam_plugin", None)


@pytest.fixture(autouse=True)
def _clean_registry(monkeypatch):
    """Discovery on (conftest turns it off for the rest of the suite), a clean registry."""
    monkeypatch.delenv(plugins.DISABLE_VAR, raising=False)
    yield
    plugins.reset()


def _spec(tmp_path: Path, channels="channels", extra="") -> Path:
    path = tmp_path / "cbam_small.yaml"
    path.write_text(SPEC.format(channels=channels, extra=extra))
    return path


class CBAMChannelGate(nn.Module):
    """Channel attention as the CBAM authors wrote it (Jongchan/attention-module, cbam.py)."""

    def __init__(self, gate_channels: int, reduction_ratio: int = 16):
        super().__init__()
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(gate_channels, gate_channels //
                                                         reduction_ratio), nn.ReLU(),
                                 nn.Linear(gate_channels // reduction_ratio, gate_channels))

    def forward(self, x):
        size = (x.size(2), x.size(3))
        avg = self.mlp(nn.functional.avg_pool2d(x, size, stride=size))
        peak = self.mlp(nn.functional.max_pool2d(x, size, stride=size))
        return x * torch.sigmoid(avg + peak).unsqueeze(2).unsqueeze(3).expand_as(x)


def _reference_gate(ca: nn.Module, channels: int = 16, reduction: int = 4) -> CBAMChannelGate:
    """The authors' gate with the weights of a generated ChannelAttention."""
    ours = ca.state_dict()
    gate = CBAMChannelGate(channels, reduction).eval()
    gate.load_state_dict({"mlp.1.weight": ours["fc1.weight"], "mlp.1.bias": ours["fc1.bias"],
                          "mlp.3.weight": ours["fc2.weight"], "mlp.3.bias": ours["fc2.bias"]})
    return gate


def _cli(*args: str, path: list[Path] = (), cwd: Path = ROOT, discover: bool = True):
    """archcc in a subprocess; ``discover=False`` runs it as if no plugin were installed
    (ARCHCC_PLUGINS=0), whatever this environment has installed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, path), str(ROOT)])}
    env.pop(plugins.DISABLE_VAR, None)
    if not discover:
        env[plugins.DISABLE_VAR] = "0"
    return subprocess.run([sys.executable, "-m", "archcc", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)


# --------------------------------------------------------------------------- discovery


def test_entry_point_loads_the_plugin_and_names_its_distribution(cbam):
    assert cbam is not None and cbam.class_name == "ChannelAttention"
    assert DIST in cbam.origin and "cbam_plugin:PLUGIN" in cbam.origin
    assert "channel_attention" in schema.op_models()
    assert "channel_attention" in schema.json_schema()


def test_without_plugins_the_schema_is_the_committed_one(cbam):
    plugins.reset()
    assert "channel_attention" not in schema.op_models()
    assert schema.json_schema() == (ROOT / "schema" / "archcc.schema.json").read_text()


def test_plugin_that_fails_to_import_names_its_distribution(tmp_path, monkeypatch):
    site = _dist_info(tmp_path, "broken = no_such_module_xyz:PLUGIN", "archcc-broken")
    monkeypatch.syspath_prepend(str(site))
    plugins.reset()
    with pytest.raises(ArchccError) as err:
        plugins.load_installed()
    text = render(err.value)
    assert "archcc-broken" in text and "failed to load: ModuleNotFoundError" in text
    assert "no_such_module_xyz" in text
    with pytest.raises(ArchccError, match="archcc-broken"):  # not skipped the second time
        archcc.compile_spec(_spec(tmp_path))


def test_plugin_taking_a_builtin_name_is_refused(tmp_path, monkeypatch):
    (tmp_path / "shadow_linear.py").write_text(textwrap.dedent("""\
        from typing import Literal
        from archcc.plugins import FLOAT, OpPlugin, OpSchema

        class Spec(OpSchema):
            op: Literal["linear"]

        PLUGIN = OpPlugin(name="linear", schema=Spec, class_name="MyLinear",
                          class_template="class {{ name }}(nn.Module):\\n    pass\\n",
                          shape=lambda ctx, layer, shapes, dtypes: (shapes[0], FLOAT))
        """))
    site = _dist_info(tmp_path / "site", "linear = shadow_linear:PLUGIN", "archcc-shadow")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(site))
    plugins.reset()
    with pytest.raises(ArchccError) as err:
        plugins.load_installed()
    text = render(err.value)
    assert "archcc-shadow" in text and "op 'linear' is a builtin archcc op" in text
    assert "linear" not in [p.name for p in plugins.registered()]
    sys.modules.pop("shadow_linear", None)


def test_a_class_template_may_not_import(cbam):
    class Sneaky(plugins.OpSchema):
        op: Literal["sneaky"]

    bad = plugins.OpPlugin(**{**cbam.__dict__, "name": "sneaky", "schema": Sneaky,
                              "sizes": (), "options": (), "class_name": "Sneaky",
                              "class_template":
                              "class {{ name }}(nn.Module):\n    import os\n"})
    with pytest.raises(ArchccError, match="may not import anything") as err:
        plugins.register(bad, "plugin sneaky (distribution evil)")
    assert "distribution evil" in render(err.value) and plugins.get("sneaky") is None


def test_a_spec_naming_a_module_never_imports_it(tmp_path, monkeypatch):
    """The package is importable but not installed: naming it (or its op) does nothing."""
    package = tmp_path / "importable"  # a copy: no metadata an editable install left beside it
    shutil.copytree(PACKAGE / "cbam_plugin", package / "cbam_plugin")
    monkeypatch.syspath_prepend(str(package))
    monkeypatch.setenv(plugins.DISABLE_VAR, "0")  # as if not installed, even where it is
    sys.modules.pop("cbam_plugin", None)
    plugins.reset()
    for op in ("channel_attention", "cbam_plugin", "cbam_plugin:PLUGIN"):
        path = tmp_path / "spec.yaml"
        path.write_text(SPEC.format(channels="channels", extra="").replace(
            "op: channel_attention", f"op: '{op}'"))
        with pytest.raises(ArchccError, match=f"unknown op '{op}'"):
            archcc.compile_spec(path)
    assert "cbam_plugin" not in sys.modules


def test_plugin_op_round_trips_through_the_arch_language(cbam, tmp_path):
    from archcc.parser import load_spec
    from archcc.parser.writer import to_arch

    loaded = load_spec(_spec(tmp_path, extra=", bias: false"))
    arch = tmp_path / "cbam_small.arch"
    arch.write_text(to_arch(loaded.spec))
    assert "ca = channel_attention(channels = channels, reduction = reduction, bias = false)" \
        in arch.read_text()
    assert load_spec(arch).spec == loaded.spec


# ------------------------------------------------------------------------------ codegen


def test_generated_module_equals_the_cbam_reference(cbam, tmp_path):
    module = archcc.build(_spec(tmp_path), out_dir=tmp_path / "gen")
    model = module.Model(module.Config()).eval()
    reference = _reference_gate(model.ca)
    x = torch.randn(3, 16, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model(x), reference(x), atol=1e-6)
    assert not torch.allclose(model(x), x)  # the gate does something
    torch.fx.symbolic_trace(model)  # the contract: generated code traces


RESIDUAL_SPEC = """\
archcc: 1
name: cbam_residual
params: {channels: 16, reduction: 4}
inputs:
  x: {shape: [B, 16, 8, 8]}
model:
  layers:
    ca:
      op: residual
      placement: %s
      dim: 8
      layer: {op: channel_attention, channels: channels, reduction: reduction}
  forward: |
    return ca(x)
"""


@pytest.mark.parametrize("placement", ["pre", "post"])
def test_a_residual_wraps_a_plugin_op(cbam, tmp_path, placement):
    """``residual: {layer: {op: channel_attention}}`` validates (the plugin joins the ops a
    residual takes), round-trips through .arch and computes x + ca(norm(x)) (pre) or
    norm(x + ca(x)) (post), with the gate from the CBAM reference."""
    from archcc.parser import load_spec
    from archcc.parser.writer import to_arch

    path = tmp_path / "cbam_residual.yaml"
    path.write_text(RESIDUAL_SPEC % placement)
    arch = tmp_path / "cbam_residual.arch"
    arch.write_text(to_arch(load_spec(path).spec))
    assert load_spec(arch).spec == load_spec(path).spec

    module = archcc.build(path, out_dir=tmp_path / "gen")
    model = module.Model(module.Config()).eval()
    with torch.no_grad():
        model.ca_norm.weight.uniform_(0.5, 1.5)  # not the identity affine
    gate = _reference_gate(model.ca)
    norm = model.ca_norm
    x = torch.randn(3, 16, 8, 8)
    with torch.no_grad():
        expected = x + gate(norm(x)) if placement == "pre" else norm(x + gate(x))
        torch.testing.assert_close(model(x), expected)
    torch.fx.symbolic_trace(model)


def test_generated_file_imports_only_torch(cbam, tmp_path):
    archcc.build(_spec(tmp_path), out_dir=tmp_path / "gen")
    source = (tmp_path / "gen" / "cbam_small.py").read_text()
    imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.Import | ast.ImportFrom)
                for alias in (node.names if isinstance(node, ast.Import)
                              else [ast.alias(node.module or "")])}
    assert imported <= {"torch", "__future__", "dataclasses", "re", "math", "collections"}
    assert "class ChannelAttention(nn.Module):" in source
    assert "self.ca = ChannelAttention(config.channels, config.reduction, bias=True)" in source


@pytest.mark.parametrize("bias", [True, False])
def test_params_and_flops_match_the_plugin_formulas(cbam, tmp_path, bias):
    from archcc.inspect.measure import flop_counter

    module = archcc.build(_spec(tmp_path, extra=f", bias: {str(bias).lower()}"),
                          out_dir=tmp_path / "gen")
    model = module.Model(module.Config(channels=32, reduction=8))
    values = {"channels": 32, "reduction": 8, "bias": bias}
    assert sum(p.numel() for p in model.ca.parameters()) == cbam.params(values)
    x = torch.randn(2, 32, 8, 8)
    with flop_counter() as counter:
        model.ca(x)
    assert counter.get_total_flops() == cbam.flops(values, [tuple(x.shape)]) > 0


# ------------------------------------------------------------------------------- errors


def test_wrong_channels_is_a_located_shape_error(cbam, tmp_path):
    path = _spec(tmp_path, channels="2 * reduction")
    with pytest.raises(ArchccError) as err:
        archcc.compile_spec(path)
    (diag,) = err.value.diagnostics
    assert (diag.loc.line, diag.path) == (12, "model.forward")  # `y = ca(x)`
    assert diag.message == "ca expects (B, C, H, W) with C = 2*reduction (8), got (B, 16, 8, 8)"
    assert diag.hint == "channels must equal dim 1 of the input"


def test_reduction_must_divide_channels(cbam, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(SPEC.format(channels="channels", extra="").replace("reduction: 4",
                                                                       "reduction: 5"))
    with pytest.raises(ArchccError) as err:
        archcc.compile_spec(path)
    (diag,) = err.value.diagnostics
    assert diag.loc.line == 10 and diag.path == "model.layers.ca"
    assert diag.message == "reduction (5) must divide channels (16)"
    assert diag.hint == "CBAM uses reduction 16"


def test_unknown_field_of_a_plugin_op_gets_did_you_mean(cbam, tmp_path):
    with pytest.raises(ArchccError) as err:
        archcc.compile_spec(_spec(tmp_path, extra=", reductoin: 2"))
    (diag,) = err.value.diagnostics
    assert diag.message == "unknown key 'reductoin'" and "'reduction'" in diag.hint


# ---------------------------------------------------------------------------------- CLI


def test_cli_blocks_documents_the_plugin_op(site):
    listed = _cli("blocks", "list", path=[site, PACKAGE])
    assert listed.returncode == 0, listed.stderr
    assert any(line.split()[0] == "channel_attention" for line in listed.stdout.splitlines())
    described = _cli("blocks", "describe", "channel_attention", path=[site, PACKAGE])
    assert described.returncode == 0, described.stderr
    out = described.stdout
    assert out.startswith("channel_attention: CBAM channel attention")
    for row in ("channels   size  required", "reduction  size  16", "bias       bool  True"):
        assert row in out
    assert "example:\n  ca: {op: channel_attention, channels: 64, reduction: 16}" in out


def test_cli_check_reports_the_plugin_shape_error(site, tmp_path):
    path = _spec(tmp_path, channels=8)
    run = _cli("check", str(path), path=[site, PACKAGE], cwd=tmp_path)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "cbam_small.yaml:12:" in run.stderr and "y = ca(x)" in run.stderr
    assert "ca expects (B, C, H, W) with C = 8, got (B, 16, 8, 8)" in run.stderr


def test_without_the_plugin_the_op_is_unknown_with_a_plugin_hint(tmp_path):
    run = _cli("check", str(_spec(tmp_path)), cwd=tmp_path, discover=False)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "cbam_small.yaml:10:" in run.stderr
    assert "unknown op 'channel_attention'" in run.stderr
    assert "plugin" in run.stderr and "archcc.ops" in run.stderr
