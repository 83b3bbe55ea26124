"""TMDB enrichment's pure parts: auth by key kind, Retry-After, choosing a search hit, reading
TMDB's JSON defensively, the atomic poster write, and the DLNA artwork fallback order."""

from __future__ import annotations

import os
import struct
import zlib
from email.utils import formatdate
from pathlib import Path

import pytest

from sokoul_appliance.dlna.artwork import find_artwork
from sokoul_appliance.library.tmdb import (
    Match,
    auth_for,
    best_match,
    image_kind,
    retry_after_seconds,
    write_atomically,
)

pytestmark = pytest.mark.unit


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress((b"\x00" + b"\x10\x20\x30" * width) * height))
        + chunk(b"IEND", b"")
    )


def test_v3_key_goes_in_the_query_and_a_v4_token_in_the_header() -> None:
    assert auth_for("0123456789abcdef0123456789abcdef") == (
        {}, {"api_key": "0123456789abcdef0123456789abcdef"}
    )  # fmt: skip
    token = "eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJ4In0.c2ln"
    assert auth_for(token) == ({"Authorization": f"Bearer {token}"}, {})
    assert auth_for("eyJnot-a-jwt") == ({}, {"api_key": "eyJnot-a-jwt"})


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) == 10.0 and retry_after_seconds("soon", 3.0) == 3.0
    import time

    later = retry_after_seconds(formatdate(time.time() + 120, usegmt=True))
    assert 100 <= later <= 121
    assert retry_after_seconds(formatdate(time.time() - 120, usegmt=True)) == 0.0


def _movie(i: int, title: str, date: str, original: str | None = None) -> dict[str, object]:
    return {
        "id": i,
        "title": title,
        "original_title": original or title,
        "release_date": date,
        "overview": "x",
        "poster_path": f"/p{i}.jpg",
    }


def test_best_match_wants_the_title_and_a_close_year() -> None:
    results = [
        _movie(1, "Leon", "1994-09-14"),
        _movie(2, "Léon: The Professional", "1994-09-14"),
        _movie(3, "The Thing", "1982-06-25"),
        _movie(4, "The Thing", "2011-10-12"),
    ]
    assert best_match("movie", "Leon The Professional", 1994, results).tmdb_id == 2  # type: ignore[union-attr]
    assert best_match("movie", "The Thing", 2011, results).tmdb_id == 4  # type: ignore[union-attr]
    assert best_match("movie", "The Thing", 2012, results).tmdb_id == 4  # type: ignore[union-attr]
    assert best_match("movie", "The Thing", None, results).tmdb_id == 3  # type: ignore[union-attr]
    # no title match: the first hit of the very year, else nothing (no guessing)
    assert best_match("movie", "Leon the Pro", 1994, results).tmdb_id == 1  # type: ignore[union-attr]
    assert best_match("movie", "Something Else", None, results) is None
    assert best_match("movie", "Something Else", 1970, results) is None
    # original titles count: 'Amélie' finds 'Le Fabuleux Destin…' by its original
    amelie = [_movie(194, "Amélie", "2001-04-25", "Le Fabuleux Destin d'Amélie Poulain")]
    m = best_match("movie", "Le Fabuleux Destin d Amelie Poulain", 2001, amelie)
    assert m is not None and m.tmdb_id == 194 and m.year == 2001


def test_tmdb_json_is_read_defensively() -> None:
    assert best_match("movie", "X", None, "not a list") is None
    assert Match.from_json("movie", {"id": True, "title": "X"}) is None
    assert Match.from_json("movie", {"id": "5", "title": "X"}) is None
    assert Match.from_json("movie", {"id": 5}) is None
    assert Match.from_json("tv", {"id": 5, "title": "X"}) is None  # tv has 'name'
    m = Match.from_json(
        "tv", {"id": 5, "name": "Show", "first_air_date": "", "poster_path": "/../../etc/x.jpg"}
    )
    assert m == Match("tv", 5, "Show", None, None, None)  # a strange poster path is dropped
    m = Match.from_json("movie", {"id": 6, "title": "Y", "poster_path": "/abc_D-1.jpg"})
    assert m is not None and m.poster_path == "/abc_D-1.jpg"


def test_image_kind_from_magic_bytes() -> None:
    assert image_kind(png(2, 2)[:16]) == "png"
    assert image_kind(b"\xff\xd8\xff\xe0\x00\x10JFIF") == "jpg"
    assert image_kind(b"<html>") is None


def test_poster_written_whole_with_no_temporary_left(tmp_path: Path) -> None:
    target = tmp_path / "posters/movie-1.png"
    write_atomically(target, png(3, 3))
    write_atomically(target, png(4, 4))  # replaced whole
    assert target.read_bytes() == png(4, 4)
    assert os.listdir(tmp_path / "posters") == ["movie-1.png"]


def test_dlna_art_beside_the_file_wins_over_the_cached_poster(tmp_path: Path) -> None:
    folder = tmp_path / "Movies/Film (2001)"
    folder.mkdir(parents=True)
    video = folder / "Film (2001).mkv"
    video.write_bytes(b"")
    cached = tmp_path / "posters/movie-7.png"
    write_atomically(cached, png(300, 450))
    art = find_artwork(video, cached)
    assert art is not None and art.path == cached and art.profile == "PNG_LRG"
    assert find_artwork(video) is None  # no fallback given: as before
    (folder / "folder.png").write_bytes(png(100, 100))
    art = find_artwork(video, cached)
    assert art is not None and art.path == folder / "folder.png" and art.profile == "PNG_TN"
    # an unreadable or non-image fallback is no artwork
    (folder / "folder.png").unlink()
    junk = tmp_path / "posters/movie-8.png"
    junk.write_bytes(b"not an image")
    assert find_artwork(video, junk) is None
    assert find_artwork(video, tmp_path / "posters/missing.png") is None
