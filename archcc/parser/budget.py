"""Budget figures: ``<= 125M`` parameters, ``<= 2G`` FLOPs, ``1GiB`` of KV cache.

Our own small parser (no ``eval``, no unit library): a comparison, a decimal number and an
optional suffix. Counts take K/M/G/T (powers of 1000); bytes take KiB/MiB/GiB/TiB (powers
of 1024), KB/MB/GB/TB (powers of 1000) or B::

    >>> parse_bound("<= 125M", "count")
    Bound(op='<=', value=125000000, text='<= 125M')
    >>> parse_size("1GiB", "bytes")
    1073741824

A bad figure raises ``ValueError`` whose message may carry a hint after ``HINT_MARK``; the
schema turns it into a located error at the budget line.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

HINT_MARK = "\nhint: "  # the same marker as archcc.parser.schema (no import cycle)

Unit = Literal["count", "bytes"]
COUNT_SUFFIXES = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
BYTE_SUFFIXES = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
                 "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
OPERATORS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, "==": operator.eq}
MAX_FIGURE = 10**18  # far beyond any model; keeps typos like 1e30 out

_SIZE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<suffix>[A-Za-z]*)")
_BOUND = re.compile(r"(?P<op><=|>=|==|<)\s*(?P<size>.*)")


@dataclass(frozen=True)
class Bound:
    """One comparison: ``figure <op> value``; ``text`` is the canonical spelling."""

    op: str
    value: int
    text: str

    def holds(self, figure: int) -> bool:
        """``Bound("<=", 10, "<= 10").holds(12) is False``."""
        return OPERATORS[self.op](figure, self.value)

    @property
    def size_text(self) -> str:
        """The figure as written, without the operator: ``125M``."""
        return self.text.partition(" ")[2]


def _suffixes(unit: Unit) -> dict[str, int]:
    return COUNT_SUFFIXES if unit == "count" else BYTE_SUFFIXES


def _examples(unit: Unit) -> str:
    return "e.g. 125M, 2G or 350K" if unit == "count" else "e.g. 1GiB, 512MiB or 2GB"


def parse_size(text: str, unit: Unit) -> int:
    """``"1.5K"`` -> 1500 (count); ``"512MiB"`` -> 536870912 (bytes); whole numbers only."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"'{text}' is not a size{HINT_MARK}write a number with an optional "
                         f"suffix, {_examples(unit)}")
    suffix, table = match["suffix"], _suffixes(unit)
    if unit == "bytes" and suffix == "":
        suffix = "B"
    if suffix not in table:
        other = "K, M, G, T (counts)" if unit == "count" else "KiB, MiB, GiB, KB, MB, GB"
        why = " (a byte size)" if suffix in BYTE_SUFFIXES and unit == "count" else \
            " (a count)" if suffix in COUNT_SUFFIXES and unit == "bytes" else ""
        raise ValueError(f"unknown suffix '{suffix}' in '{text}'{why}{HINT_MARK}"
                         f"suffixes here: {other}; {_examples(unit)}")
    value = Decimal(match["number"]) * table[suffix]
    if value != value.to_integral_value():
        raise ValueError(f"'{text}' is not a whole number of "
                         f"{'bytes' if unit == 'bytes' else 'units'} ({value.normalize():f})")
    if value > MAX_FIGURE:
        raise ValueError(f"'{text}' is out of range (at most 10**18)")
    return int(value)


def parse_bound(text: object, unit: Unit) -> Bound:
    """``"<= 125M"`` -> ``Bound("<=", 125000000, "<= 125M")``; the text is canonicalised
    (one space after the operator) so YAML and .arch give the same spec."""
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise ValueError(f"a budget is a comparison such as '<= 125M', not {text!r}")
    match = _BOUND.fullmatch(str(text).strip())
    if match is None:
        raise ValueError(f"'{text}' needs a comparison{HINT_MARK}write '<= {text}' "
                         "(operators: <=, <, >=, ==; quote '>=' in YAML)")
    size = match["size"].strip()
    value = parse_size(size, unit)
    return Bound(match["op"], value, f"{match['op']} {size}")


def canonical_bound(unit: Unit):
    """A pydantic ``AfterValidator`` body: check the text, return its canonical spelling."""
    def check(text: object) -> str:
        return parse_bound(text, unit).text
    return check


def canonical_size(unit: Unit):
    """Check a bare size (``1GiB``) and keep it as text."""
    def check(text: object) -> str:
        if isinstance(text, bool) or not isinstance(text, int | str):
            raise ValueError(f"expected a size such as 1GiB, not {text!r}")
        size = str(text).strip()
        bound = _BOUND.fullmatch(size)
        if bound is not None:
            raise ValueError(f"'{text}': max is already an upper bound{HINT_MARK}"
                             f"write the size alone: max: {bound['size'].strip()}")
        parse_size(size, unit)
        return size
    return check
