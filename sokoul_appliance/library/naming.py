"""Release and file names: what guessit reads in them, and whether a name is a given title.

``parse_name`` is CPU work (a few milliseconds per name): the scanner calls it in its worker
thread, never on the event loop.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

MOVIE = "movie"
EPISODE = "episode"
OTHER = "other"  # a video guessit could not call a movie or an episode (home video, clips)


@dataclass(frozen=True)
class ParsedName:
    kind: str  # MOVIE | EPISODE | OTHER
    title: str
    year: int | None = None
    season: int | None = None
    episode: int | None = None  # the first episode of a multi-episode file
    episode_title: str | None = None
    screen_size: str | None = None  # '1080p', as the name says (the probe has the truth)


def _first_int(value: Any) -> int | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, int) else None


def _text(value: Any) -> str | None:
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    return str(value) if value else None


# the layout organize.py writes: read back without guessit (about 25 ms a name on this class
# of CPU: 20k names would take minutes)
_OWN_MOVIE = re.compile(
    r"^Movies/(?P<title>[^/]+?) \((?P<year>\d{4})\)/(?P=title) \((?P=year)\)\.[A-Za-z0-9]+$"
)
_OWN_EPISODE = re.compile(
    r"^Shows/(?P<show>[^/]+)/Season (?P<season>\d{2,})/(?P=show) - "
    r"S(?P<s>\d{2,})E(?P<e>\d{2,})(?: - (?P<etitle>[^/]+?))?\.[A-Za-z0-9]+$"
)


def parse_library_path(rel_path: str) -> ParsedName | None:
    """A path in the library's own layout ('Movies/Heat (1995)/Heat (1995).mkv',
    'Shows/Dark/Season 01/Dark - S01E01 - Secrets.mkv'), else None."""
    m = _OWN_MOVIE.match(rel_path)
    if m:
        return ParsedName(MOVIE, m.group("title"), year=int(m.group("year")))
    m = _OWN_EPISODE.match(rel_path)
    if m and int(m.group("season")) == int(m.group("s")):
        return ParsedName(
            EPISODE,
            m.group("show"),
            season=int(m.group("s")),
            episode=int(m.group("e")),
            episode_title=m.group("etitle"),
        )
    return None


def parse_name(name: str) -> ParsedName:
    """Read title/year/season/episode from a release or a path relative to a library root
    ('Shows/Severance/Season 02/Severance.S02E10.mkv': folders help guessit)."""
    own = parse_library_path(name)
    if own is not None:
        return own
    try:
        # imported on first use (in the scan's worker thread): guessit and its rule tables
        # weigh ~15 MiB and seconds of start-up under emulation, and idle boots never parse
        from guessit import guessit  # type: ignore[import-untyped]

        g = guessit(name)
    except Exception:  # guessit's own errors (GuessitException) on odd names: the plain stem
        return ParsedName(OTHER, PurePosixPath(name).stem)
    title = _text(g.get("title")) or PurePosixPath(name).stem
    season = _first_int(g.get("season"))
    episode = _first_int(g.get("episode"))
    kind = g.get("type")
    if kind == "episode" or season is not None or episode is not None:
        kind = EPISODE
    elif kind == "movie":
        kind = MOVIE
    else:
        kind = OTHER
    return ParsedName(
        kind=kind,
        title=title.strip(),
        year=_first_int(g.get("year")),
        season=season,
        episode=episode,
        episode_title=_text(g.get("episode_title")),
        screen_size=_text(g.get("screen_size")),
    )


_NOT_WORD = re.compile(r"[^0-9a-z]+")


def normalize_title(title: str) -> str:
    """'Léon: The Professional' -> 'leon the professional'; 'WALL·E' and 'WALL-E' -> 'wall e'."""
    decomposed = unicodedata.normalize("NFKD", title.replace("&", " and "))
    ascii_only = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NOT_WORD.sub(" ", ascii_only.casefold()).strip()


def release_matches(
    parsed: ParsedName,
    titles: list[str],
    year: int | None,
    kind: str,
    season: int | None = None,
    episode: int | None = None,
) -> bool:
    """Is this release the wanted movie (title + year) or episode (title + S/E)?

    Titles compare after ``normalize_title`` (any of the original and alternative titles); a
    year in the release must equal the wanted year (a show's first-air year for episodes); a
    season pack (season without episode) holds every episode of its season.
    """
    wanted = {normalize_title(t) for t in titles if t}
    if normalize_title(parsed.title) not in wanted:
        return False
    if parsed.year is not None and year is not None and parsed.year != year:
        return False
    if kind == MOVIE:
        return parsed.kind == MOVIE
    if parsed.kind != EPISODE:
        return False
    if season is not None and parsed.season != season:
        return False
    return episode is None or parsed.episode is None or parsed.episode == episode
