"""The ``archcc diff --html`` page: both block graphs side by side, changes highlighted,
the text report below. One file, no external resources (styles and SVG inline)::

    >>> Path("diff.html").write_text(diff_html(diff_specs("specs/gpt2.yaml", "specs/bert.yaml")))
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import jinja2

from archcc.inspect.diff import Diff
from archcc.inspect.load import load_for_inspection
from archcc.inspect.report import diff_text
from archcc.inspect.viz import block_graph, render_svg


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    return env.get_template("diff.html.j2")


def _status(d: Diff, side: str) -> dict[str, str]:
    """Layer path -> highlight for one side: removed only on A, added only on B."""
    out = {}
    for c in d.layers:
        path = c.a if side == "a" else c.b
        if path and c.status != "same":
            out[path] = c.status
    return out


def _inline(svg: str) -> str:
    """Drop the XML prolog and doctype dot writes; keep the <svg> element."""
    start = svg.find("<svg")
    return re.sub(r"<!--.*?-->", "", svg[start:], flags=re.S) if start >= 0 else svg


def diff_html(d: Diff, engine: str = "auto") -> str:
    """A self-contained HTML page for a diff (blocks opened one level, repeats once)."""
    svgs = {}
    for side in ("a", "b"):
        info = getattr(d, side)
        graph = block_graph(load_for_inspection(info["spec"], info["set"]).program, expand=1)
        graph.status = _status(d, side)
        svgs[side] = _inline(render_svg(graph, engine))

    def label(info: dict) -> str:
        return f"{info['spec']}" + (f" ({' '.join(info['set'])})" if info["set"] else "")
    return _template().render(a_name=d.a["name"], b_name=d.b["name"], a_label=label(d.a),
                              b_label=label(d.b), a_svg=svgs["a"], b_svg=svgs["b"],
                              report=diff_text(d))
