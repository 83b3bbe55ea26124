"""DLNA transport vocabulary: contentFeatures.dlna.org (4th field of protocolInfo), the
time-seek header's NPT times, and the DLNA.ORG_PN names of the formats we send.

Flag bits as DLNA 1.5 (7.4.1.3.24) numbers them; minidlna (upnphttp.c) and Jellyfin's DLNA
profiles send the same set for plain files: streaming + background transfer + connection
stall + DLNA 1.5.
"""

from __future__ import annotations

import re

SENDER_PACED = 1 << 31
TIME_BASED_SEEK = 1 << 30
BYTE_BASED_SEEK = 1 << 29
PLAY_CONTAINER = 1 << 28
S0_INCREASE = 1 << 27
SN_INCREASE = 1 << 26
STREAMING_TRANSFER_MODE = 1 << 24
INTERACTIVE_TRANSFER_MODE = 1 << 23
BACKGROUND_TRANSFER_MODE = 1 << 22
CONNECTION_STALL = 1 << 21
DLNA_V15 = 1 << 20

FILE_FLAGS = STREAMING_TRANSFER_MODE | BACKGROUND_TRANSFER_MODE | CONNECTION_STALL | DLNA_V15
OP_NONE = "00"
OP_RANGE = "01"  # byte seek (HTTP Range)
OP_TIMESEEK = "10"  # TimeSeekRange.dlna.org

# (container key, video codec, audio codec) -> DLNA.ORG_PN; anything else goes without a PN
# (DLNA allows that; TVs then decide by MIME type)
PROFILE_NAMES = {
    ("mpegts", "h264", "aac"): "AVC_TS_MP_HD_AAC_MULT5_ISO",
    ("mpegts", "h264", "ac3"): "AVC_TS_MP_HD_AC3_ISO",
    ("mpegts", "mpeg2video", "mp2"): "MPEG_TS_HD_NA_ISO",
    ("mp4", "h264", "aac"): "AVC_MP4_MP_HD_AAC",
    ("mp4", "h264", "ac3"): "AVC_MP4_MP_HD_AC3",
    ("mpeg", "mpeg2video", "mp2"): "MPEG_PS_PAL",
}


def flags_text(flags: int) -> str:
    """DLNA.ORG_FLAGS: 8 hex digits of primary flags + 24 reserved zeros."""
    return f"{flags:08x}" + "0" * 24


def content_features(
    pn: str | None = None,
    op: str = OP_RANGE,
    converted: bool = False,
    flags: int = FILE_FLAGS,
) -> str:
    parts = [f"DLNA.ORG_PN={pn}"] if pn else []
    parts += [f"DLNA.ORG_OP={op}", f"DLNA.ORG_CI={1 if converted else 0}"]
    parts.append(f"DLNA.ORG_FLAGS={flags_text(flags)}")
    return ";".join(parts)


def protocol_info(mime_type: str, features: str) -> str:
    """DIDL-Lite res@protocolInfo."""
    return f"http-get:*:{mime_type}:{features}"


class BadTimeSeek(ValueError):
    """A TimeSeekRange.dlna.org header we cannot read."""


_NPT = re.compile(r"^\s*npt\s*=\s*([0-9:.]+)?\s*-\s*([0-9:.]+)?\s*(?:/.*)?$", re.IGNORECASE)


def npt_seconds(text: str) -> float:
    """'83.5' or '0:01:23.5' or '00:01:23.500' -> seconds."""
    parts = text.split(":")
    if len(parts) not in (1, 3) or not all(parts):
        raise BadTimeSeek(f"not an NPT time: {text!r}")
    try:
        if len(parts) == 1:
            return float(parts[0])
        h, m, s = int(parts[0]), int(parts[1]), float(parts[2])
    except ValueError as e:
        raise BadTimeSeek(f"not an NPT time: {text!r}") from e
    if m >= 60 or s >= 60:
        raise BadTimeSeek(f"not an NPT time: {text!r}")
    return h * 3600 + m * 60 + s


def parse_time_seek(header: str) -> tuple[float, float | None]:
    """'npt=10.5-' -> (10.5, None); 'npt=00:00:10-00:01:00' -> (10.0, 60.0)."""
    m = _NPT.match(header)
    if m is None or m.group(1) is None:
        raise BadTimeSeek(f"not a time-seek range: {header!r}")
    start = npt_seconds(m.group(1))
    end = npt_seconds(m.group(2)) if m.group(2) else None
    if end is not None and end <= start:
        raise BadTimeSeek(f"time-seek range ends before it starts: {header!r}")
    return start, end


def format_time_seek(start: float, end: float | None, duration: float | None) -> str:
    total = "*" if duration is None else f"{duration:.3f}"
    stop = end if end is not None else duration
    return f"npt={start:.3f}-{'' if stop is None else f'{stop:.3f}'}/{total}"


def didl_duration(seconds: float | None) -> str | None:
    """DIDL-Lite res@duration: 'H:MM:SS.mmm' (7261.5 -> '2:01:01.500')."""
    if seconds is None or seconds < 0:
        return None
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h}:{m:02d}:{s:02d}.{ms:03d}"
