"""archcc viz and the diff HTML page: graphs, both layout engines, and a real browser."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from archcc.cli import main
from archcc.inspect import diff_specs
from archcc.inspect.html import diff_html
from archcc.inspect.viz import have_dot, render_svg, spec_graph
from tests.inspect.conftest import SMALL

ROOT = Path(__file__).parents[2]
GPT2 = ROOT / "specs" / "gpt2.yaml"
SVG = "{http://www.w3.org/2000/svg}"


def _labels(graph) -> list[str]:
    return [n.label for n in graph.nodes.values()]


def test_repeats_fold_and_edges_carry_shapes():
    graph = spec_graph(GPT2)
    assert "h: Block x12 (fused)" in _labels(graph)  # its attention was fused
    assert ("(B, T, n_embd)" in {shape for _, _, shape in graph.edges})
    opened = spec_graph(GPT2, expand=1)
    assert graph.clusters == {} and opened.clusters["h"][0] == "h: Block x12"
    assert {n.path for n in opened.nodes.values()} >= {"h.*.attn", "h.*.ln_1", "lm_head"}


def test_a_mixed_repeat_counts_each_block():
    """A pattern or a cycle is labelled with how many layers each block is."""
    wide = spec_graph(ROOT / "tests" / "specs" / "compose" / "wide_lm.yaml")
    assert "h: Block x4 + Wide x2 (fused)" in _labels(wide)
    swin = spec_graph(ROOT / "specs" / "swin.yaml")
    assert "layers: SwinTransformerStage x4 (fused)" in _labels(swin)


def test_after_pass_shows_the_unfused_and_fused_ir():
    before = spec_graph(GPT2, after="none", expand=2)
    after = spec_graph(GPT2, after="fuse_attention", expand=2)
    assert "softmax" in _labels(before) and "sdpa" not in _labels(before)
    fused = [n for n in after.nodes.values() if n.label == "sdpa"]
    assert len(fused) == 1 and fused[0].fused and fused[0].kind == "fused"
    with pytest.raises(ValueError, match="unknown pass"):
        spec_graph(GPT2, after="fuse_everything")


@pytest.mark.parametrize("spec", ["gpt2", "transformer", "vit"])
def test_python_layout_is_valid_svg_with_every_node(spec):
    graph = spec_graph(ROOT / "specs" / f"{spec}.yaml", expand=2)
    root = ET.fromstring(render_svg(graph, engine="python"))
    boxes = root.findall(f"{SVG}g[@class]")
    nodes = [g for g in boxes if g.get("class").startswith("node")]
    assert len(nodes) == len(graph.nodes)
    texts = {t.text for t in root.iter(f"{SVG}text")}
    assert set(_labels(graph)) <= texts
    width = float(root.get("width"))
    for rect in root.iter(f"{SVG}rect"):
        x, w = float(rect.get("x")), float(rect.get("width"))
        assert 0 <= x and x + w <= width  # everything inside the canvas


@pytest.mark.skipif(not have_dot(), reason="Graphviz dot is not installed")
def test_dot_layout_and_png(tmp_path):
    out = tmp_path / "gpt2.svg"
    assert main(["viz", str(GPT2), "-o", str(out), "--png", "--expand"]) == 0
    root = ET.fromstring(out.read_text())
    assert "sdpa" in {t.text for t in root.iter(f"{SVG}text")}
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_viz_fallback_and_errors(tmp_path, capsys):
    out = tmp_path / "vit.svg"
    assert main(["viz", str(ROOT / "specs" / "vit.yaml"), "-o", str(out), "--engine",
                 "python", "--set", "num_hidden_layers=4"]) == 0
    assert "encoder: Layer x4" in out.read_text()
    assert main(["viz", str(GPT2), "-o", str(out), "--after", "nope"]) == 1
    assert "unknown pass 'nope'" in capsys.readouterr().err


def _page(tmp_path: Path, engine: str = "auto") -> Path:
    d = diff_specs(GPT2, ROOT / "specs" / "bert.yaml", {"T": 8}, set_a=SMALL["gpt2"],
                   set_b=SMALL["bert"])
    page = tmp_path / "diff.html"
    page.write_text(diff_html(d, engine=engine), encoding="utf-8")
    return page


@pytest.mark.parametrize("engine", ["python", "auto"])
def test_html_page_is_self_contained_and_highlights(tmp_path, engine):
    html = _page(tmp_path, engine).read_text()
    a = html.split('id="graph-a"')[1].split("</section>")[0]
    b = html.split('id="graph-b"')[1].split("</section>")[0]
    assert a.count("<svg") == 1 and b.count("<svg") == 1
    assert "#fecaca" in a and "#bbf7d0" not in a  # h.*.ln_1 removed: only A shows red
    assert "#bbf7d0" in b  # pooler added: only B shows green
    assert "<script" not in html and "<link" not in html and "src=" not in html
    assert "h.*.attn -&gt; encoder.*.attention" in html  # the report, escaped


def _browser() -> str | None:
    return next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(b)), None)


@pytest.mark.skipif(_browser() is None, reason="no headless Chromium (.ci/run installs it)")
def test_html_page_renders_both_graphs_in_a_browser(tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    page = _page(tmp_path)
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
             "--window-size=1400,1000"]
    proc = subprocess.run([_browser(), *flags, f"--screenshot={shot}", page.as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    assert shot.exists(), proc.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    w, h = image.size

    def has(color: tuple[int, int, int], left: bool) -> bool:
        xs = range(0, w // 2) if left else range(w // 2, w)
        return any(image.getpixel((x, y)) == color for x in xs[::2] for y in range(120, h, 2))

    removed, added = (254, 202, 202), (187, 247, 208)
    assert has(removed, left=True) and not has(removed, left=False)
    assert has(added, left=False)
    dom = subprocess.run([_browser(), *flags, "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120, check=False).stdout
    assert dom.count("<svg") == 2 and 'id="graph-a"' in dom and 'id="graph-b"' in dom
