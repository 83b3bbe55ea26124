"""Completed downloads into a tidy library: ``Movies/Title (Year)/`` and
``Shows/Title/Season NN/``.

Files are hard-linked into the library (``link=True``, the default: the torrent keeps seeding
from downloads/, and the seeding GC later removes only the download's name) or moved. Both are
one ``link()`` on the same filesystem: a file appears in the library whole or not at all, and an
existing file is never overwritten. Blocking: call in a worker thread.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sokoul_appliance.library.files import find_sidecars, is_video
from sokoul_appliance.library.naming import EPISODE, MOVIE, ParsedName, parse_name

_UNSAFE = re.compile(r'[\x00-\x1f/\\:*?"<>|]+')
MAX_NAME_BYTES = 180


class OrganizeError(Exception):
    """A download cannot be organized; the message says why and what to do."""


def safe_name(text: str) -> str:
    """A single path component: no separators, no control or Windows-unsafe characters, no
    leading dots, at most MAX_NAME_BYTES of UTF-8."""
    name = _UNSAFE.sub(" ", text)
    name = re.sub(r"\s+", " ", name).strip().lstrip(".").strip(" .")
    while len(name.encode()) > MAX_NAME_BYTES:
        name = name[:-1]
    return name.strip(" .") or "Untitled"


def library_path(parsed: ParsedName, extension: str) -> PurePosixPath:
    """Where a parsed video goes, relative to the library area."""
    ext = extension.lower()
    title = safe_name(parsed.title)
    if parsed.kind == MOVIE:
        label = f"{title} ({parsed.year})" if parsed.year else title
        return PurePosixPath("Movies", label, f"{label}{ext}")
    if parsed.kind == EPISODE:
        season = parsed.season if parsed.season is not None else 1
        code = f"S{season:02d}" + (f"E{parsed.episode:02d}" if parsed.episode is not None else "")
        name = f"{title} - {code}"
        if parsed.episode_title:
            name += f" - {safe_name(parsed.episode_title)}"
        return PurePosixPath("Shows", title, f"Season {season:02d}", f"{safe_name(name)}{ext}")
    return PurePosixPath("Videos", f"{safe_name(parsed.title)}{ext}")


@dataclass(frozen=True)
class Placed:
    source: Path
    target: Path
    action: str  # 'linked' | 'moved' | 'already there'


def _place(source: Path, target: Path, link: bool) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except FileExistsError:
        if os.path.samefile(source, target):
            return "already there"
        raise OrganizeError(
            f"{target.name} is already in the library (a different file of that name); "
            "remove one of them and organize again"
        ) from None
    except OSError as e:
        if e.errno == errno.EXDEV:
            raise OrganizeError(
                f"{source.name}: downloads and the library are on different filesystems; "
                "both belong on the media drive"
            ) from e
        raise
    if not link:
        os.unlink(source)
        return "moved"
    return "linked"


def plan(download: Path, downloads_root: Path | None = None) -> list[tuple[Path, PurePosixPath]]:
    """(video, library-relative target) for each video in a download (a file or a folder).
    guessit reads the path from ``downloads_root`` down: a folder named like a release gives
    the title when the file names are bare ('Film.2010.1080p/film.mkv')."""
    if download.is_file():
        videos = [download] if is_video(download.name) else []
    else:
        videos = sorted(p for p in download.rglob("*") if p.is_file() and is_video(p.name))
    base = downloads_root if downloads_root is not None else download.parent
    out = []
    for video in videos:
        rel = video.relative_to(base).as_posix() if base in video.parents else video.name
        parsed = parse_name(rel)
        out.append((video, library_path(parsed, video.suffix)))
    return out


def organize(
    download: Path, library_root: Path, link: bool = True, downloads_root: Path | None = None
) -> list[Placed]:
    """Put every video of ``download`` (with its sidecar subtitles) into the library."""
    if not download.exists():
        raise OrganizeError(f"{download.name} is not in downloads any more")
    targets = plan(download, downloads_root)
    if not targets:
        raise OrganizeError(f"{download.name} holds no video file the library can show")
    placed: list[Placed] = []
    per_folder: dict[Path, int] = {}
    for video, _ in targets:
        per_folder[video.parent] = per_folder.get(video.parent, 0) + 1
    for video, rel in targets:
        target = library_root / rel
        sidecars = find_sidecars(video, per_folder[video.parent])
        placed.append(Placed(video, target, _place(video, target, link)))
        for sidecar in sidecars:
            src = video.parent / sidecar.file
            lang = f".{sidecar.language}" if sidecar.language else ""
            sub_target = target.with_name(f"{target.stem}{lang}.{sidecar.format}")
            n = 1
            while sub_target.exists() and not os.path.samefile(src, sub_target):
                n += 1
                sub_target = target.with_name(f"{target.stem}{lang}.{n}.{sidecar.format}")
            placed.append(Placed(src, sub_target, _place(src, sub_target, link)))
    return placed
