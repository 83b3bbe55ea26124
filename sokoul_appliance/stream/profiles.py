"""Client profiles: what a renderer plays directly, what to send it otherwise, and its MIME and
caption quirks. One TOML file per client family in ``profiles/``; the User-Agent picks one
(data, not code branches: a new TV family is a new file)."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sokoul_appliance.library.probe import MediaInfo

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"

# ffprobe format_name (+ extension) -> the container key profiles speak
_CONTAINERS = {
    "matroska,webm": {".webm": "webm"},
    "mov,mp4,m4a,3gp,3g2,mj2": {".mov": "mov"},
}
_SIMPLE = {
    "matroska,webm": "matroska",
    "mov,mp4,m4a,3gp,3g2,mj2": "mp4",
    "mpegts": "mpegts",
    "avi": "avi",
    "asf": "asf",
    "mpeg": "mpeg",
    "flv": "flv",
    "ogg": "ogg",
}


def container_key(format_name: str | None, file_name: str) -> str:
    ext = PurePosixPath(file_name).suffix.lower()
    if format_name is None:
        return {".mkv": "matroska", ".m4v": "mp4", ".m2ts": "mpegts", ".ts": "mpegts"}.get(
            ext, ext.lstrip(".")
        )
    special = _CONTAINERS.get(format_name, {})
    return special.get(ext) or _SIMPLE.get(format_name, format_name.split(",")[0])


class ProfileError(ValueError):
    """A profile file is malformed (the message names the file and the field)."""


@dataclass(frozen=True)
class DirectPlay:
    containers: frozenset[str]
    video_codecs: frozenset[str]
    audio_codecs: frozenset[str]
    max_width: int = 3840
    max_height: int = 2160


@dataclass(frozen=True)
class TranscodeTarget:
    container: str = "mpegts"
    video_codec: str = "h264"
    audio_codec: str = "aac"
    max_height: int = 1080
    video_bitrate: str = "6M"
    audio_bitrate: str = "192k"
    audio_channels: int = 2


@dataclass(frozen=True)
class ClientProfile:
    name: str
    title: str
    user_agents: tuple[str, ...]  # case-insensitive substrings of User-Agent
    priority: int
    direct: DirectPlay
    transcode: TranscodeTarget
    mime_types: Mapping[str, str] = field(default_factory=dict)  # container/subtitle key -> MIME
    caption_info_sec: bool = False  # answer getCaptionInfo.sec with a CaptionInfo.sec URL
    subtitle_format: str = "srt"
    dcm_info: bool = False  # Samsung: sec:dcmInfo with the resume bookmark (X_SetBookmark)

    def matches(self, user_agent: str) -> bool:
        ua = user_agent.casefold()
        return any(token.casefold() in ua for token in self.user_agents)

    def mime_for(self, key: str, default: str) -> str:
        return self.mime_types.get(key, default)

    def can_direct_play(self, media: MediaInfo | None, container: str) -> bool:
        """Everything the client must decode is in its direct-play lists."""
        if media is None:
            return True  # unprobed: hand the file over as it is (nothing better to do)
        d = self.direct
        if container not in d.containers:
            return False
        if media.video_codec is not None and media.video_codec not in d.video_codecs:
            return False
        if (media.width or 0) > d.max_width or (media.height or 0) > d.max_height:
            return False
        return not media.audio or media.audio[0].codec in d.audio_codecs

    def can_copy_video(self, media: MediaInfo | None) -> bool:
        """The video stream may go into the transcode container untouched (a remux)."""
        if media is None or media.video_codec is None:
            return False
        d = self.direct
        return (
            media.video_codec in d.video_codecs
            and media.video_codec in ("h264", "hevc", "mpeg2video")
            and (media.height or 0) <= self.transcode.max_height
            and (media.pix_fmt or "yuv420p") == "yuv420p"
        )

    def can_copy_audio(self, media: MediaInfo | None) -> bool:
        return (
            media is not None
            and bool(media.audio)
            and (
                media.audio[0].codec in self.direct.audio_codecs
                and media.audio[0].codec in ("aac", "ac3", "mp2", "mp3", "eac3")
            )
        )


def _strings(data: dict[str, Any], key: str, where: str) -> frozenset[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProfileError(f"{where}: {key} must be a list of strings")
    return frozenset(value)


def parse_profile(data: dict[str, Any], where: str) -> ClientProfile:
    try:
        direct = data.get("direct_play", {})
        tc = data.get("transcode", {})
        subs = data.get("subtitles", {})
        return ClientProfile(
            name=str(data["name"]),
            title=str(data.get("title", data["name"])),
            user_agents=tuple(_strings(data, "user_agents", where)),
            priority=int(data.get("priority", 0)),
            direct=DirectPlay(
                containers=_strings(direct, "containers", where),
                video_codecs=_strings(direct, "video_codecs", where),
                audio_codecs=_strings(direct, "audio_codecs", where),
                max_width=int(direct.get("max_width", 3840)),
                max_height=int(direct.get("max_height", 2160)),
            ),
            transcode=TranscodeTarget(**tc),
            mime_types={str(k): str(v) for k, v in data.get("mime_types", {}).items()},
            caption_info_sec=bool(subs.get("caption_info_sec", False)),
            subtitle_format=str(subs.get("format", "srt")),
            dcm_info=bool(data.get("didl", {}).get("dcm_info", False)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ProfileError(f"{where}: {e}") from e


def load_profiles(directory: Path = PROFILES_DIR) -> list[ClientProfile]:
    """Every *.toml profile (blocking file reads: at start-up, or in a thread)."""
    profiles = []
    for path in sorted(directory.glob("*.toml")):
        with path.open("rb") as f:
            try:
                data = tomllib.load(f)
            except tomllib.TOMLDecodeError as e:
                raise ProfileError(f"{path.name}: {e}") from e
        profiles.append(parse_profile(data, path.name))
    if not any(p.name == "generic" for p in profiles):
        raise ProfileError(f"{directory}: no generic.toml (the fallback profile)")
    return sorted(profiles, key=lambda p: -p.priority)


def choose_profile(profiles: list[ClientProfile], user_agent: str | None) -> ClientProfile:
    """The highest-priority profile whose User-Agent tokens match, else the generic one."""
    if user_agent:
        for p in profiles:
            if p.user_agents and p.matches(user_agent):
                return p
    return next(p for p in profiles if p.name == "generic")
