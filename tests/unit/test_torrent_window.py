"""The streaming planner: file byte ranges to pieces, header/footer/prebuffer first, and the
moving deadline window ahead of a read."""

from __future__ import annotations

from sokoul_appliance.torrent.window import (
    DEADLINE_STEP_MS,
    FOOTER_BYTES,
    HEADER_BYTES,
    PRIORITIES,
    FileSpan,
    buffered_ahead,
    plan_window,
    startup_pieces,
    window_bytes,
)

MiB = 1024 * 1024
PIECE = 256 * 1024


def test_pieces_of_a_file_that_starts_mid_piece() -> None:
    # a 1 MiB file starting 100 bytes into piece 3 of a 20-piece torrent
    span = FileSpan(offset=3 * PIECE + 100, size=MiB, piece_length=PIECE, num_pieces=20)
    assert span.piece_at(0) == 3
    assert span.piece_at(MiB - 1) == 7  # (3*PIECE + 100 + MiB - 1) // PIECE
    assert span.pieces(0, MiB) == range(3, 8)
    assert span.pieces(PIECE - 100, PIECE - 99) == range(4, 5)
    assert span.pieces(10, 10) == range(0)
    assert span.pieces(0, 10 * MiB) == range(3, 8)  # clamped to the file


def test_startup_pieces_are_header_then_footer_then_prebuffer() -> None:
    size = 400 * MiB
    span = FileSpan(offset=0, size=size, piece_length=MiB, num_pieces=400)
    got = startup_pieces(span)
    header = list(range(HEADER_BYTES // MiB))
    footer = [399]
    assert got[: len(header)] == header
    assert got[len(header)] == footer[0]
    # prebuffer: 2 % of 400 MiB = 8 MiB from 0; pieces 5..7 are new after the header
    assert got[len(header) + 1 :] == [5, 6, 7]
    assert len(got) == len(set(got))
    assert footer == [span.piece_at(span.size - FOOTER_BYTES)]


def test_startup_pieces_of_a_small_file_cover_it_once() -> None:
    span = FileSpan(offset=0, size=3 * PIECE, piece_length=PIECE, num_pieces=3)
    assert startup_pieces(span) == [0, 1, 2]


def test_window_skips_pieces_already_had_and_ranks_the_rest() -> None:
    span = FileSpan(offset=0, size=100 * MiB, piece_length=MiB, num_pieces=100)
    have = [False] * 100
    have[11] = have[13] = True
    plan = plan_window(span, cursor=10 * MiB, have=have, length=8 * MiB)
    assert [d.piece for d in plan] == [10, 12, 14, 15, 16, 17]
    assert [d.priority for d in plan] == list(PRIORITIES[:6])
    assert [d.deadline_ms for d in plan] == [n * DEADLINE_STEP_MS for n in range(6)]
    assert plan[0].priority == 7


def test_window_size_and_priority_floor() -> None:
    span = FileSpan(offset=0, size=4000 * MiB, piece_length=MiB, num_pieces=4000)
    assert window_bytes(span) == 80 * MiB  # 2 % of the file beats the 4 MiB floor
    plan = plan_window(span, 0, [False] * 4000)
    assert len(plan) == 80
    assert plan[-1].priority == PRIORITIES[-1] == 2
    small = FileSpan(offset=0, size=10 * MiB, piece_length=PIECE, num_pieces=40)
    assert window_bytes(small) == 4 * MiB


def test_window_at_the_end_of_the_file_stops_at_the_file() -> None:
    span = FileSpan(offset=0, size=10 * MiB, piece_length=MiB, num_pieces=10)
    plan = plan_window(span, 9 * MiB + 5, [False] * 10)
    assert [d.piece for d in plan] == [9]


def test_buffered_ahead_counts_contiguous_bytes_from_the_cursor() -> None:
    span = FileSpan(offset=PIECE // 2, size=4 * PIECE, piece_length=PIECE, num_pieces=5)
    have = [True, True, False, True, True]
    # file byte 0 is in piece 0; pieces 0 and 1 end at torrent byte 2*PIECE = file byte 1.5*PIECE
    assert buffered_ahead(span, 0, have) == PIECE + PIECE // 2
    assert buffered_ahead(span, 2 * PIECE, have) == 0
    assert buffered_ahead(span, 3 * PIECE, [True] * 5) == PIECE
    assert buffered_ahead(span, 4 * PIECE, have) == 0
