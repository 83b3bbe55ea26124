"""What the library hands out: items, shows, seasons, folders (DIDL-ready metadata).

Ids are opaque strings made of [a-z0-9-] ('it-…' items, 'sh-…' shows, 'se-…' seasons, 'fo-…'
folders): URLs and DLNA object ids carry these, never paths.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from sokoul_appliance.library.files import MIME_BY_EXTENSION
from sokoul_appliance.library.probe import MediaInfo

OBJECT_ID = re.compile(r"^(it|sh|se|fo)-[a-z0-9]{1,32}$")
ROOT_FOLDER = "fo-root"


def stable_id(prefix: str, *parts: str) -> str:
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]
    return f"{prefix}-{digest}"


def folder_id(rel_dir: str) -> str:
    return ROOT_FOLDER if rel_dir in ("", ".") else stable_id("fo", rel_dir)


def season_id(show_id: str, season: int) -> str:
    return stable_id("se", show_id, str(season))


@dataclass(frozen=True)
class SubtitleTrack:
    n: int  # the number in /subtitles/{id}/{n}.srt
    format: str  # 'srt' | 'vtt' for sidecars; the codec ('subrip', 'ass', 'mov_text') embedded
    language: str | None
    source: str  # 'sidecar' | 'embedded'
    file: str | None = None  # sidecar: relative to the video's folder
    stream_index: int | None = None  # embedded: ffprobe stream index


TEXT_SUBTITLE_CODECS = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"})


@dataclass(frozen=True)
class LibraryItem:
    id: str
    kind: str
    title: str
    year: int | None
    show_id: str | None
    show_title: str | None
    season: int | None
    episode: int | None
    episode_title: str | None
    rel_path: str
    root: str  # appliance path of the library area holding it
    folder_id: str
    size: int
    mtime_ns: int
    duration: float | None
    container: str | None
    video_codec: str | None
    width: int | None
    height: int | None
    media: MediaInfo | None
    sidecars: tuple[dict[str, Any], ...]
    probe_error: str | None
    available: bool
    added_at: float

    @property
    def file_name(self) -> str:
        return PurePosixPath(self.rel_path).name

    @property
    def extension(self) -> str:
        return PurePosixPath(self.rel_path).suffix.lower()

    @property
    def mime_type(self) -> str:
        return MIME_BY_EXTENSION.get(self.extension, "application/octet-stream")

    @property
    def appliance_path(self) -> str:
        return f"{self.root}/{self.rel_path}"

    @property
    def display_title(self) -> str:
        """'Severance - S02E10 - Cold Harbor', 'Inception (2010)'."""
        if self.kind == "episode":
            code = f"S{self.season or 0:02d}" + (
                f"E{self.episode:02d}" if self.episode is not None else ""
            )
            name = f"{self.show_title or self.title} - {code}"
            return f"{name} - {self.episode_title}" if self.episode_title else name
        return f"{self.title} ({self.year})" if self.year else self.title

    def subtitles(self) -> list[SubtitleTrack]:
        """Sidecars first (in file-name order), then embedded text subtitle streams."""
        tracks = [
            SubtitleTrack(n, str(s["format"]), s.get("language"), "sidecar", file=str(s["file"]))
            for n, s in enumerate(self.sidecars)
        ]
        if self.media is not None:
            for s in self.media.subtitles:
                if s.codec in TEXT_SUBTITLE_CODECS:
                    tracks.append(
                        SubtitleTrack(
                            len(tracks), s.codec, s.language, "embedded", stream_index=s.index
                        )
                    )
        return tracks

    def to_dict(self) -> dict[str, Any]:
        """JSON for the panel and the DLNA layer (no absolute paths)."""
        media = self.media
        return {
            "id": self.id,
            "kind": self.kind,
            "title": self.title,
            "display_title": self.display_title,
            "year": self.year,
            "show_id": self.show_id,
            "show_title": self.show_title,
            "season": self.season,
            "episode": self.episode,
            "episode_title": self.episode_title,
            "file_name": self.file_name,
            "rel_path": self.rel_path,
            "folder_id": self.folder_id,
            "size": self.size,
            "mime_type": self.mime_type,
            "duration": self.duration,
            "container": self.container,
            "video_codec": self.video_codec,
            "width": self.width,
            "height": self.height,
            "resolution": media.resolution if media else None,
            "bitrate": media.bitrate if media else None,
            "audio": [
                {"codec": a.codec, "channels": a.channels, "language": a.language}
                for a in (media.audio if media else ())
            ],
            "subtitles": [
                {"n": t.n, "format": t.format, "language": t.language, "source": t.source}
                for t in self.subtitles()
            ],
            "probe_error": self.probe_error,
            "available": self.available,
            "added_at": self.added_at,
        }

    @staticmethod
    def from_row(row: Any) -> LibraryItem:
        media = row["media"]
        return LibraryItem(
            id=row["id"],
            kind=row["kind"],
            title=row["title"],
            year=row["year"],
            show_id=row["show_id"],
            show_title=row["show_title"],
            season=row["season"],
            episode=row["episode"],
            episode_title=row["episode_title"],
            rel_path=row["rel_path"],
            root=row["root"],
            folder_id=row["folder_id"],
            size=row["size"],
            mtime_ns=row["mtime_ns"],
            duration=row["duration"],
            container=row["container"],
            video_codec=row["video_codec"],
            width=row["width"],
            height=row["height"],
            media=MediaInfo.from_json(media) if media else None,
            sidecars=() if (sc := row["sidecars"]) == "[]" else tuple(json.loads(sc)),
            probe_error=row["probe_error"],
            available=bool(row["available"]),
            added_at=row["added_at"],
        )


@dataclass(frozen=True)
class Show:
    id: str
    title: str
    year: int | None
    seasons: int
    episodes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "year": self.year,
            "seasons": self.seasons,
            "episodes": self.episodes,
        }


@dataclass(frozen=True)
class Season:
    id: str
    show_id: str
    number: int
    episodes: int

    @property
    def title(self) -> str:
        return f"Season {self.number}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "show_id": self.show_id,
            "number": self.number,
            "title": self.title,
            "episodes": self.episodes,
        }


@dataclass(frozen=True)
class Folder:
    id: str
    name: str
    parent_id: str | None
    children: int  # subfolders + items (DIDL childCount)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "parent_id": self.parent_id,
            "children": self.children,
        }
