"""YAML with positions: locations recorded, duplicates and aliases refused."""

import pytest

from archcc.diagnostics import ArchccError
from archcc.parser.expr import Pos
from archcc.parser.yaml_loader import load_yaml

TEXT = """\
a: 1
b:
  c: {d: 2}
  forward: |
    x = f(x)
    return x
"""


def test_keys_and_block_text_locations():
    data, where = load_yaml("s.yaml", TEXT)
    assert data["b"]["c"]["d"] == 2
    assert (where.key(("b", "c", "d")).line, where.key(("b", "c", "d")).col) == (3, 7)
    loc = where.text(("b", "forward"), Pos(2, 3))  # "return" line, column 3 of the program
    assert (loc.line, loc.col) == (6, 7)


def test_duplicate_keys_are_errors():
    with pytest.raises(ArchccError) as info:
        load_yaml("s.yaml", "a: 1\nb: 2\na: 3\n")
    (diag,) = info.value.diagnostics
    assert (diag.loc.line, diag.message) == (3, "duplicate key 'a' (first defined at line 1)")


def test_aliases_are_refused():
    bomb = "a: &x [1, 2]\nb: [*x, *x]\n"
    with pytest.raises(ArchccError, match="anchors and aliases are not allowed"):
        load_yaml("s.yaml", bomb)


def test_syntax_error_has_a_location():
    with pytest.raises(ArchccError) as info:
        load_yaml("s.yaml", "a: [1, 2\nb: 3\n")
    assert info.value.diagnostics[0].loc.line >= 1
    assert info.value.diagnostics[0].message.startswith("invalid YAML")
