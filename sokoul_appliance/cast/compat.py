"""What the Default Media Receiver needs beyond the profile's codec lists: H.264 at most level
4.1, and for MP4 the index (moov) before the media data, or it cannot start without the end of
the file. Read at cast time (ffprobe with a timeout, the file's first boxes in a thread)."""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path

from sokoul_appliance.host import CommandError, Host

MAX_H264_LEVEL = 41  # ffprobe writes level 4.1 as 41
DIRECT = ""
REMUX = "transcode=1"  # the stream layer remuxes (copies what it can) into fragmented MP4
REENCODE = "transcode=video"  # the video must be encoded again (level too high)


def moov_first(path: Path, limit: int = 64) -> bool | None:
    """True when the top-level 'moov' box comes before 'mdat'; None when not ISO-BMFF.
    Blocking (a few small reads): call it in a thread."""
    with path.open("rb") as f:
        offset = 0
        for _ in range(limit):
            f.seek(offset)
            head = f.read(16)
            if len(head) < 8:
                return None
            size, kind = struct.unpack(">I4s", head[:8])
            if size == 1 and len(head) == 16:
                size = struct.unpack(">Q", head[8:16])[0]
            if kind == b"moov":
                return True
            if kind == b"mdat":
                return False
            if size < 8:
                return None
            offset += size
    return None


async def h264_level(host: Host, path: Path, timeout: float = 20.0) -> int | None:
    try:
        result = await host.run(
            "ffprobe", "-v", "error", "-select_streams", "v:0",
            "-show_entries", "stream=codec_name,level", "-of", "json", f"file:{path}",
            timeout=timeout,
        )  # fmt: skip
        streams = json.loads(result.stdout).get("streams") or []
    except (CommandError, TimeoutError, ValueError, UnicodeDecodeError):
        return None
    if not streams or streams[0].get("codec_name") != "h264":
        return None
    level = streams[0].get("level")
    return level if isinstance(level, int) and level > 0 else None


async def stream_query(host: Host, path: Path, container: str, video_codec: str | None) -> str:
    """'' (direct play as the profile says), 'transcode=1' (remux: moov at the end) or
    'transcode=video' (H.264 above level 4.1)."""
    if video_codec == "h264":
        level = await h264_level(host, path)
        if level is not None and level > MAX_H264_LEVEL:
            return REENCODE
    if container in ("mp4", "mov"):
        first = await asyncio.to_thread(moov_first, path)
        if first is False:
            return REMUX
    return DIRECT
