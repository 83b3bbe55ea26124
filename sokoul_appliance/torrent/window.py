"""Which pieces a stream needs first, and the moving deadline window ahead of a read.

As in Tribler's ``stream.py``: when a file opens for playback, its header (MP4 ``moov`` at the
front, MKV EBML/segment info), its footer (MP4 ``moov`` at the end, MKV cues) and a prebuffer get
deadline 0; after that each range read sets deadlines on the missing pieces ahead of it, the
nearest ones most urgent. Pure module (no libtorrent): the engine applies the plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

HEADER_BYTES = 5 * 1024 * 1024
FOOTER_BYTES = 1 * 1024 * 1024
PREBUFFER_FRACTION = 0.02  # the seed's KPI: playable at about 2 % buffered
MIN_WINDOW_BYTES = 4 * 1024 * 1024
# the n-th missing piece ahead of the cursor gets priority PRIORITIES[n] (last one repeats):
# narrow = strict order, wide = more parallel requests (throughput). Tribler's logarithmic map.
PRIORITIES = (7, 6, 6, 4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3, 3, 2)
DEADLINE_STEP_MS = 10


@dataclass(frozen=True)
class FileSpan:
    """One file inside a torrent: where it starts in the torrent's byte stream and its size."""

    offset: int
    size: int
    piece_length: int
    num_pieces: int

    def piece_at(self, file_offset: int) -> int:
        clamped = min(max(file_offset, 0), max(self.size - 1, 0))
        return min((self.offset + clamped) // self.piece_length, self.num_pieces - 1)

    def pieces(self, begin: int, end: int) -> range:
        """Pieces holding file bytes [begin, end) (end clamped to the file's size)."""
        end = min(end, self.size)
        if end <= begin or self.size == 0:
            return range(0)
        return range(self.piece_at(begin), self.piece_at(end - 1) + 1)


@dataclass(frozen=True)
class PieceDeadline:
    piece: int
    priority: int
    deadline_ms: int


def startup_pieces(span: FileSpan, prebuffer_at: int = 0) -> list[int]:
    """Header, footer, then prebuffer pieces (in that order, no duplicates)."""
    prebuffer = max(int(span.size * PREBUFFER_FRACTION), span.piece_length)
    out: list[int] = []
    for r in (
        span.pieces(0, HEADER_BYTES),
        span.pieces(span.size - FOOTER_BYTES, span.size),
        span.pieces(prebuffer_at, prebuffer_at + prebuffer),
    ):
        for p in r:
            if p not in out:
                out.append(p)
    return out


def window_bytes(span: FileSpan) -> int:
    return max(MIN_WINDOW_BYTES, int(span.size * PREBUFFER_FRACTION), 2 * span.piece_length)


def plan_window(
    span: FileSpan, cursor: int, have: Sequence[bool], length: int | None = None
) -> list[PieceDeadline]:
    """Deadlines for the pieces not yet had in [cursor, cursor + window): the n-th missing one
    gets priority PRIORITIES[n] and deadline n * DEADLINE_STEP_MS."""
    size = window_bytes(span) if length is None else length
    out: list[PieceDeadline] = []
    for piece in span.pieces(cursor, cursor + size):
        if have[piece]:
            continue
        n = len(out)
        out.append(
            PieceDeadline(piece, PRIORITIES[min(n, len(PRIORITIES) - 1)], n * DEADLINE_STEP_MS)
        )
    return out


def buffered_ahead(span: FileSpan, cursor: int, have: Sequence[bool]) -> int:
    """Contiguous file bytes available from ``cursor`` (what a player can read without waiting)."""
    if cursor >= span.size:
        return 0
    end = cursor
    for piece in span.pieces(cursor, span.size):
        if not have[piece]:
            break
        end = min(span.size, (piece + 1) * span.piece_length - span.offset)
    return max(0, end - cursor)
