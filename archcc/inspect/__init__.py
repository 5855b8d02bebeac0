"""Inspect architectures: ``archcc summary``, ``archcc diff`` and ``archcc viz``.

    >>> from archcc.inspect import summarize, summary_text
    >>> print(summary_text(summarize("specs/gpt2.yaml", dims={"T": 1024})))
"""

from archcc.inspect.diff import Diff, diff_specs
from archcc.inspect.load import load_for_inspection, parse_assignments
from archcc.inspect.report import diff_text
from archcc.inspect.summary import Summary, summarize
from archcc.inspect.text import summary_text

__all__ = ["Diff", "Summary", "diff_specs", "diff_text", "load_for_inspection",
           "parse_assignments", "summarize", "summary_text"]
