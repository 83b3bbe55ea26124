"""guessit parsing and release matching against the labelled rows of release-match.tsv, and
the organize paths and FTS query text the library derives from parsed names."""

from __future__ import annotations

import csv
from pathlib import Path, PurePosixPath

import pytest

from sokoul_appliance.library.manager import fts_query
from sokoul_appliance.library.naming import (
    EPISODE,
    MOVIE,
    normalize_title,
    parse_name,
    release_matches,
)
from sokoul_appliance.library.organize import library_path, safe_name

# the team's labelled release names (a copy of shared/data/release-match.tsv)
DATA = Path(__file__).resolve().parents[1] / "data" / "release-match.tsv"


def _rows() -> list[dict[str, str]]:
    with DATA.open(newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


ROWS = _rows()
needs_data = pytest.mark.skipif(not ROWS, reason=f"{DATA} holds no rows")


def _int(v: str) -> int | None:
    return int(v) if v else None


@needs_data
def test_the_data_set_has_both_labels() -> None:
    assert len(ROWS) == 49
    assert sum(r["expected"] == "1" for r in ROWS) == 26
    assert sum(r["expected"] == "0" for r in ROWS) == 23


@needs_data
@pytest.mark.parametrize(
    "row", [r for r in ROWS if r["expected"] == "1"], ids=lambda r: r["release"]
)
def test_matching_rows_parse_to_the_labelled_fields(row: dict[str, str]) -> None:
    parsed = parse_name(row["release"])
    titles = [row["title"], *filter(None, row["alt_titles"].split("|"))]
    assert normalize_title(parsed.title) in {normalize_title(t) for t in titles}
    assert parsed.kind == row["kind"]
    if parsed.year is not None:
        assert parsed.year == int(row["year"])
    if row["kind"] == EPISODE:
        assert parsed.season == _int(row["season"])
        # a season pack names no episode; otherwise the episode is the labelled one
        assert parsed.episode in (None, _int(row["episode"]))


@needs_data
@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r['release']}~{r['title']}")
def test_release_matches_agrees_with_every_label(row: dict[str, str]) -> None:
    titles = [row["title"], *filter(None, row["alt_titles"].split("|"))]
    got = release_matches(
        parse_name(row["release"]),
        titles,
        _int(row["year"]),
        row["kind"],
        _int(row["season"]),
        _int(row["episode"]),
    )
    assert got is (row["expected"] == "1")


def test_paths_in_a_library_tree_parse_with_their_folders() -> None:
    p = parse_name("Shows/Severance/Season 02/Severance.S02E10.Cold.Harbor.mkv")
    assert (p.kind, p.title, p.season, p.episode) == (EPISODE, "Severance", 2, 10)
    m = parse_name("Movies/Inception (2010)/Inception (2010).mkv")
    assert (m.kind, m.title, m.year) == (MOVIE, "Inception", 2010)


def test_normalize_title_folds_accents_and_punctuation() -> None:
    assert normalize_title("Léon: The Professional") == "leon the professional"
    assert normalize_title("WALL·E") == normalize_title("WALL-E") == "wall e"
    assert normalize_title("Fast & Furious") == "fast and furious"


def test_organize_paths_for_movies_episodes_and_others() -> None:
    assert library_path(parse_name("Inception.2010.1080p.BluRay.x264-GRP.mkv"), ".MKV") == (
        PurePosixPath("Movies/Inception (2010)/Inception (2010).mkv")
    )
    assert library_path(parse_name("Severance.S02E10.Cold.Harbor.2160p-GRP.mkv"), ".mkv") == (
        PurePosixPath("Shows/Severance/Season 02/Severance - S02E10 - Cold Harbor.mkv")
    )
    assert library_path(parse_name("Westworld.S01E01.1080p.BluRay-GRP.mp4"), ".mp4") == (
        PurePosixPath("Shows/Westworld/Season 01/Westworld - S01E01.mp4")
    )
    assert library_path(parse_name("birthday party.mp4"), ".mp4").parts[0] in ("Movies", "Videos")


def test_safe_name_strips_separators_and_dots() -> None:
    assert safe_name("../../etc/passwd") == "etc passwd"
    assert safe_name('Mad Max: Fury "Road"?') == "Mad Max Fury Road"
    assert safe_name("...") == "Untitled"
    assert len(safe_name("é" * 500).encode()) <= 180


def test_fts_query_quotes_words_as_prefixes() -> None:
    assert fts_query("Dark kni") == '"dark"* "kni"*'
    assert fts_query('NEAR(") OR *') == '"near"* "or"*'
    assert fts_query("  ...  ") is None


def test_the_library_layout_reads_back_without_guessit() -> None:
    from sokoul_appliance.library.naming import ParsedName, parse_library_path

    for release in ("Severance.S02E10.Cold.Harbor.2160p-GRP.mkv", "Inception.2010.1080p-GRP.mkv",
                    "The.Bear.S03E01.Tomorrow.1080p.WEB-DL-GRP.mp4"):  # fmt: skip
        parsed = parse_name(release)
        path = library_path(parsed, PurePosixPath(release).suffix).as_posix()
        assert parse_library_path(path) == ParsedName(
            parsed.kind, parsed.title, parsed.year, parsed.season, parsed.episode,
            parsed.episode_title,
        )  # fmt: skip
    assert parse_library_path("Movies/Heat (1995)/Heat.1995.1080p.mkv") is None
    assert parse_library_path("Shows/Dark/Season 01/Dark - S02E01.mkv") is None
    assert parse_library_path("Movies/Heat (1995)/Heat (1995).mkv") == ParsedName(
        "movie", "Heat", 1995
    )
