"""The file side of the library: which files are videos, their sidecar subtitles, and the walk
over the library roots. Everything here blocks (stat, scandir): call it in a worker thread."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

VIDEO_EXTENSIONS = frozenset(
    {".mkv", ".mp4", ".m4v", ".avi", ".mov", ".ts", ".m2ts", ".webm", ".wmv", ".mpg", ".mpeg",
     ".flv", ".ogv"}
)  # fmt: skip
SUBTITLE_EXTENSIONS = frozenset({".srt", ".vtt"})
SUBTITLE_DIRS = frozenset({"subs", "subtitles", "sub"})
# partial downloads and other tools' scratch files
IGNORED_SUFFIXES = (".part", ".!qb", ".tmp", ".crdownload", ".partial")
_SAMPLE = re.compile(r"(^|[ ._\-\[(])sample([ ._\-\])]|$)", re.IGNORECASE)
log = logging.getLogger("sokoul.library")
_LANG = re.compile(r"^[a-z]{2,3}([-_][a-z]{2})?$", re.IGNORECASE)

MIME_BY_EXTENSION = {
    ".mkv": "video/x-matroska",
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".avi": "video/x-msvideo",
    ".mov": "video/quicktime",
    ".ts": "video/mp2t",
    ".m2ts": "video/mp2t",
    ".webm": "video/webm",
    ".wmv": "video/x-ms-wmv",
    ".mpg": "video/mpeg",
    ".mpeg": "video/mpeg",
    ".flv": "video/x-flv",
    ".ogv": "video/ogg",
}


@dataclass(frozen=True)
class Sidecar:
    file: str  # relative to the video's folder: 'film.en.srt' or 'Subs/English.srt'
    format: str  # 'srt' | 'vtt'
    language: str | None

    def to_dict(self) -> dict[str, str | None]:
        return {"file": self.file, "format": self.format, "language": self.language}


@dataclass(frozen=True)
class FileFacts:
    root: str  # appliance path of the library area
    rel_path: str  # relative to the root, '/'-separated
    size: int
    mtime_ns: int
    inode: int
    sidecars: tuple[Sidecar, ...]


def is_video(name: str) -> bool:
    lower = name.lower()
    return (
        PurePosixPath(lower).suffix in VIDEO_EXTENSIONS
        and not lower.startswith(".")
        and not _SAMPLE.search(PurePosixPath(name).stem)
    )


# subtitle packs often name files by language ('Subs/English.srt', 'Subs/2_French.srt')
LANGUAGE_NAMES = {
    "english": "en", "french": "fr", "german": "de", "spanish": "es", "italian": "it",
    "portuguese": "pt", "dutch": "nl", "russian": "ru", "japanese": "ja", "chinese": "zh",
    "korean": "ko", "arabic": "ar", "turkish": "tr", "polish": "pl", "swedish": "sv",
    "danish": "da", "norwegian": "no", "finnish": "fi", "greek": "el", "hebrew": "he",
}  # fmt: skip


def _language(middle: str) -> str | None:
    """'en' from 'film.en.srt' (middle 'en'), 'pt-BR' from 'film.pt-BR.forced.srt', 'en' from
    'English' or '2_English'."""
    for token in middle.split("."):
        if _LANG.match(token):
            return token
        name = re.sub(r"^[0-9]+[_ -]*", "", token).casefold()
        if name in LANGUAGE_NAMES:
            return LANGUAGE_NAMES[name]
    return None


def find_sidecars(
    video: Path, videos_in_folder: int, entries: list[os.DirEntry[str]] | None = None
) -> tuple[Sidecar, ...]:
    """Subtitles beside ``video`` that share its stem ('film.srt', 'film.en.srt'); when the
    folder holds only this video, also any .srt/.vtt in it or in a Subs/ folder. ``entries``:
    the folder's listing when the caller has it (sorted by name)."""
    folder = video.parent
    stem = video.stem
    found: list[Sidecar] = []
    if entries is None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return ()
    for entry in entries:
        suffix = PurePosixPath(entry.name).suffix.lower()
        if entry.is_file() and suffix in SUBTITLE_EXTENSIONS:
            name_stem = entry.name[: -len(suffix)]
            if name_stem == stem or name_stem.startswith(stem + "."):
                middle = name_stem[len(stem) + 1 :]
                found.append(Sidecar(entry.name, suffix[1:], _language(middle)))
            elif videos_in_folder == 1:
                found.append(Sidecar(entry.name, suffix[1:], _language(name_stem)))
        elif entry.is_dir() and entry.name.lower() in SUBTITLE_DIRS and videos_in_folder == 1:
            for sub in sorted(os.scandir(entry.path), key=lambda e: e.name):
                sub_suffix = PurePosixPath(sub.name).suffix.lower()
                if sub.is_file() and sub_suffix in SUBTITLE_EXTENSIONS:
                    found.append(
                        Sidecar(
                            f"{entry.name}/{sub.name}",
                            sub_suffix[1:],
                            _language(sub.name[: -len(sub_suffix)]),
                        )
                    )
    return tuple(found)


def _utf8(name: str) -> bool:
    """Names that are not UTF-8 (os.scandir hands them out with surrogate escapes) cannot go
    into SQLite text or a DIDL document: such files are skipped, and logged."""
    try:
        name.encode()
    except UnicodeEncodeError:
        log.warning("skipping %r: its name is not UTF-8; rename it", name)
        return False
    return True


def walk_root(root: str, real_root: Path) -> list[FileFacts]:
    """Every video under ``real_root`` (hidden folders and partial files skipped)."""
    out: list[FileFacts] = []
    stack = [real_root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        # only folders holding subtitles need their listing per video
        has_subs = any(
            PurePosixPath(e.name).suffix.lower() in SUBTITLE_EXTENSIONS
            or e.name.lower() in SUBTITLE_DIRS
            for e in entries
        )
        videos = []
        for entry in entries:
            if entry.name.startswith(".") or not _utf8(entry.name):
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            elif (
                entry.is_file(follow_symlinks=False)
                and is_video(entry.name)
                and not entry.name.lower().endswith(IGNORED_SUFFIXES)
            ):
                videos.append(entry)
        for entry in videos:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            path = Path(entry.path)
            out.append(
                FileFacts(
                    root=root,
                    rel_path=path.relative_to(real_root).as_posix(),
                    size=st.st_size,
                    mtime_ns=st.st_mtime_ns,
                    inode=st.st_ino,
                    sidecars=find_sidecars(path, len(videos), entries) if has_subs else (),
                )
            )
    return out
