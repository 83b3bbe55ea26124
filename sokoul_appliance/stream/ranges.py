"""HTTP byte ranges (RFC 9110 14.1.2) for responses we write ourselves (growing files)."""

from __future__ import annotations

import re

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class Unsatisfiable(ValueError):
    """The range lies outside the resource: answer 416 with 'Content-Range: bytes */size'."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """'bytes=a-b' -> (a, b) inclusive; None means the whole resource (no header, a header we
    do not read, or several ranges: RFC 9110 lets a server ignore Range)."""
    if not header:
        return None
    m = _RANGE.match(header)
    if m is None:
        return None
    first, last = m.group(1), m.group(2)
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise Unsatisfiable(header)
        return max(0, size - n), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid: ignore the header
    if start >= size:
        raise Unsatisfiable(header)
    return start, min(end, size - 1)
