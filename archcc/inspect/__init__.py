"""Inspect architectures: ``archcc summary``, ``archcc diff`` and ``archcc viz``.

    >>> from archcc.inspect import summarize, summary_text
    >>> print(summary_text(summarize("specs/gpt2.yaml", dims={"T": 1024})))
"""

import importlib

_WHERE = {"Diff": "diff", "diff_specs": "diff", "load_for_inspection": "load",
          "parse_assignments": "load", "diff_text": "report", "Summary": "summary",
          "summarize": "summary", "summary_text": "text"}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    """Each name from its module on first use: inspecting a model loads torch, and a bare
    ``import archcc.inspect...`` (the compiler's budget check) should not."""
    if name in _WHERE:
        return getattr(importlib.import_module(f"archcc.inspect.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'archcc.inspect' has no attribute {name!r}")
