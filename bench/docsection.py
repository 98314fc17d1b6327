"""Replace a generated section of a doc (between its begin/end marker comments) with a bench script's table."""

from __future__ import annotations

import sys
from pathlib import Path


def write_section(doc: Path, begin: str, end: str, text: str) -> int:
    """Put `text` between the markers in `doc`; 0, or 2 with an error naming the file when a marker is missing."""
    body = doc.read_text()
    if begin not in body or end not in body:
        print(f"error: {doc} lacks the markers {begin} / {end}", file=sys.stderr)
        return 2
    head, rest = body.split(begin, 1)
    doc.write_text(head + begin + "\n" + text + "\n" + end + rest.split(end, 1)[1])
    return 0
