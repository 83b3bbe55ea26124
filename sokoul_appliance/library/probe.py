"""What a media file holds, read by ffprobe (a subprocess with a timeout: never on the loop)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sokoul_appliance.host import CommandError, Host

PROBE_TIMEOUT = 60.0
# What a MediaInfo's facts were read with. 1: before the facts DLNA.ORG_PN needs (level, frame
# rate, field order, audio profile/sample rate/bit rate, video bit rate, TS packet size); rows
# probed with an older version are probed once more by the library's probe pass. Version 3
# adds whether 192-byte TS packets carry timestamps (ts_timestamped): only version-2 rows of
# such files need probing again (see STALE_MEDIA_SQL).
PROBE_VERSION = 3
# library_items rows whose ``media`` JSON lacks facts the current version keeps: a version-2
# row lacks only ts_timestamped, which matters for 192-byte MPEG-TS alone
STALE_MEDIA_SQL = (
    "media IS NULL OR CASE WHEN json_valid(media) THEN "
    "coalesce(json_extract(media, '$.probe_version'), 1) < 2 OR "
    "(json_extract(media, '$.probe_version') = 2 AND "
    "json_extract(media, '$.ts_packet_size') = 192) ELSE 0 END"
)


@dataclass(frozen=True)
class AudioStream:
    index: int
    codec: str
    channels: int | None = None
    language: str | None = None
    profile: str | None = None  # ffprobe's: 'LC', 'HE-AAC', 'HE-AACv2', 'Main' (AAC), …
    sample_rate: int | None = None  # Hz
    bitrate: int | None = None  # bits per second (this stream)


@dataclass(frozen=True)
class SubtitleStream:
    index: int
    codec: str
    language: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class MediaInfo:
    container: str  # ffprobe's format_name, e.g. 'mov,mp4,m4a,3gp,3g2,mj2' or 'matroska,webm'
    duration: float | None  # seconds
    bitrate: int | None  # bits per second (the whole file)
    video_codec: str | None  # 'h264', 'hevc', ...
    width: int | None
    height: int | None
    video_profile: str | None = None
    pix_fmt: str | None = None
    audio: tuple[AudioStream, ...] = field(default_factory=tuple)
    subtitles: tuple[SubtitleStream, ...] = field(default_factory=tuple)
    video_level: int | None = None  # H.264: 31 = level 3.1 (ffprobe's level; None if unknown)
    frame_rate: float | None = None  # frames per second (avg_frame_rate, else r_frame_rate)
    field_order: str | None = None  # 'progressive' | 'tt' | 'bb' | 'tb' | 'bt'; None: unknown
    video_bitrate: int | None = None  # the video stream's own bits per second
    ts_packet_size: int | None = None  # MPEG-TS: 188, 192 (with a 4-byte header) or 204
    # 192-byte packets: their 4-byte headers hold arrival timestamps (True: DLNA's _T names),
    # or are zero (False: the unsuffixed names); None: not such a TS, or not known
    ts_timestamped: bool | None = None
    probe_version: int = PROBE_VERSION  # from_json() of a row without it: 1

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> MediaInfo:
        """to_json() back (every row of a Browse page: positional, ~12 µs instead of ~20)."""
        d = json.loads(text)
        g = d.get
        return MediaInfo(
            d["container"],
            g("duration"),
            g("bitrate"),
            g("video_codec"),
            g("width"),
            g("height"),
            g("video_profile"),
            g("pix_fmt"),
            tuple([
                AudioStream(a["index"], a["codec"], a.get("channels"), a.get("language"),
                            a.get("profile"), a.get("sample_rate"), a.get("bitrate"))
                for a in g("audio", ())
            ]),
            tuple([
                SubtitleStream(s["index"], s["codec"], s.get("language"), s.get("title"))
                for s in g("subtitles", ())
            ]),
            g("video_level"),
            g("frame_rate"),
            g("field_order"),
            g("video_bitrate"),
            g("ts_packet_size"),
            g("ts_timestamped"),
            g("probe_version", 1),
        )  # fmt: skip

    @property
    def resolution(self) -> str | None:
        """DIDL 'WxH'."""
        if self.width and self.height:
            return f"{self.width}x{self.height}"
        return None


class ProbeError(Exception):
    """ffprobe could not read a file (damaged, still incomplete, not media)."""


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _float(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _rate(v: Any) -> float | None:
    """ffprobe's '30000/1001' -> 29.97; '0/0', missing or nonsense -> None."""
    try:
        num, _, den = str(v).partition("/")
        n, d = float(num), float(den or 1)
    except (TypeError, ValueError):
        return None
    return round(n / d, 6) if n > 0 and d > 0 else None


_FIELD_ORDERS = frozenset({"progressive", "tt", "bb", "tb", "bt"})


def ts_packet_size(head: bytes) -> int | None:
    """The packet size of an MPEG-TS from its first bytes: 192 (4-byte timestamp + 188, as
    .m2ts/.mts are), 188, 204 (with Reed-Solomon bytes); None when no sync byte (0x47) repeats
    at one of these strides. 192 is tried first, as minidlna does."""
    for i in range(min(len(head), 192)):
        if head[i] != 0x47:
            continue
        for size in (192, 188, 204):
            if len(head) > i + 2 * size and head[i + size] == head[i + 2 * size] == 0x47:
                return size
    return None


def ts_timestamped(head: bytes) -> bool | None:
    """For a TS of 192-byte packets: whether the 4-byte header of its second packet is not
    zero, i.e. it carries arrival timestamps (minidlna's dlna_timestamp_is_present: a _T
    name when they do, the unsuffixed one when they are zero). None: not such a TS."""
    if ts_packet_size(head) != 192:
        return None
    i = head.index(0x47)
    while head[i + 192] != 0x47 or head[i + 384] != 0x47:  # the sync byte of the 192 stride
        i = head.index(0x47, i + 1)
    return any(head[i + 188 : i + 192])


def _read_ts_header(path: Path) -> tuple[int | None, bool | None]:
    """(packet size, timestamped) from a TS file's first kilobyte."""
    try:
        with path.open("rb") as f:
            head = f.read(1024)
    except OSError:
        return None, None
    return ts_packet_size(head), ts_timestamped(head)


def parse_ffprobe(data: dict[str, Any]) -> MediaInfo:
    fmt = data.get("format") or {}
    streams = data.get("streams") or []
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video"
            and not (s.get("disposition") or {}).get("attached_pic")
        ),
        None,
    )
    audio: list[AudioStream] = []
    subs: list[SubtitleStream] = []
    for s in streams:
        tags = s.get("tags") or {}
        if s.get("codec_type") == "audio":
            audio.append(
                AudioStream(
                    index=int(s.get("index", 0)),
                    codec=str(s.get("codec_name", "unknown")),
                    channels=_int(s.get("channels")),
                    language=tags.get("language"),
                    profile=s.get("profile"),
                    sample_rate=_int(s.get("sample_rate")),
                    bitrate=_int(s.get("bit_rate")),
                )
            )
        elif s.get("codec_type") == "subtitle":
            subs.append(
                SubtitleStream(
                    index=int(s.get("index", 0)),
                    codec=str(s.get("codec_name", "unknown")),
                    language=tags.get("language"),
                    title=tags.get("title"),
                )
            )
    duration = _float(fmt.get("duration"))
    if duration is None and video is not None:
        duration = _float(video.get("duration"))
    v = video or {}
    level = _int(v.get("level"))
    field_order = v.get("field_order")
    return MediaInfo(
        container=str(fmt.get("format_name", "unknown")),
        duration=duration,
        bitrate=_int(fmt.get("bit_rate")),
        video_codec=None if video is None else str(video.get("codec_name")),
        width=None if video is None else _int(video.get("width")),
        height=None if video is None else _int(video.get("height")),
        video_profile=None if video is None else video.get("profile"),
        pix_fmt=None if video is None else video.get("pix_fmt"),
        audio=tuple(audio),
        subtitles=tuple(subs),
        video_level=level if level is not None and level > 0 else None,  # ffprobe: -99 unknown
        frame_rate=_rate(v.get("avg_frame_rate")) or _rate(v.get("r_frame_rate")),
        field_order=field_order if field_order in _FIELD_ORDERS else None,
        video_bitrate=_int(v.get("bit_rate")),
    )


async def probe_file(host: Host, path: Path, timeout: float = PROBE_TIMEOUT) -> MediaInfo:
    """ffprobe one real path (already mapped through the host seam). Its cost is the
    process start (~110 ms on the 2-core bench machine, the same as ``ffprobe -version``):
    -probesize / -analyzeduration change nothing measurable for a file's headers, so the
    library runs a few of these at a time in the background instead (probe_pending); on
    the appliance inside the probe helper, in the background slice (probe_worker.py)."""
    try:
        result = await host.run(
            "nice",  # a scan's probes yield the CPU to streaming and the panel
            "-n",
            "10",
            "ffprobe",
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            f"file:{path}",  # absolute, and never read as an option or a URL
            timeout=timeout,
        )
    except CommandError as e:
        reason = e.result.stderr.strip()[-300:]
        raise ProbeError(f"{path.name}: ffprobe could not read it ({reason})") from e
    except TimeoutError as e:
        raise ProbeError(f"{path.name}: ffprobe took longer than {timeout:.0f} s") from e
    except UnicodeDecodeError as e:  # the host seam decodes output as UTF-8; tags may not be
        raise ProbeError(f"{path.name}: ffprobe printed text that is not UTF-8") from e
    try:
        info = parse_ffprobe(json.loads(result.stdout))
    except (ValueError, TypeError) as e:
        raise ProbeError(f"{path.name}: ffprobe answered something unreadable ({e})") from e
    if "mpegts" in info.container.split(","):
        # ffprobe does not say; the sync bytes do (1 kB read, in a worker thread)
        size, stamped = await asyncio.to_thread(_read_ts_header, path)
        info = replace(info, ts_packet_size=size, ts_timestamped=stamped)
    return info
