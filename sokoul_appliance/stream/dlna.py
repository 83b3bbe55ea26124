"""DLNA transport vocabulary: contentFeatures.dlna.org (4th field of protocolInfo), the
time-seek header's NPT times, and the DLNA.ORG_PN names of the formats we send.

Flag bits as DLNA 1.5 (7.4.1.3.24) numbers them; minidlna (upnphttp.c) and Jellyfin's DLNA
profiles send the same set for plain files: streaming + background transfer + connection
stall + DLNA 1.5.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from sokoul_appliance.library.probe import MediaInfo

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

# ---- DLNA.ORG_PN ---------------------------------------------------------------------------
# Derived from the probed facts the way minidlna 1.3.0 (metadata.c, GetVideoMetadata) does it,
# but stricter: when a fact the name depends on is not known to us (H.264 level, frame rate and
# interlacing, the TS packet size, the AAC object type), the answer is no PN rather than a guess.
# A wrong PN makes Samsung and LG refuse a file; a missing one is allowed (DLNA: the TV then
# decides by MIME type). docs/dlna.md lists where and why we differ from minidlna.

_AUDIO_AAC, _AUDIO_AAC_MULT5, _AUDIO_AC3, _AUDIO_MP3, _AUDIO_MP2, _AUDIO_PCM, _AUDIO_AMR = (
    "aac", "aac_mult5", "ac3", "mp3", "mp2", "pcm", "amr"
)  # fmt: skip
_H264_BASELINE = frozenset({"Baseline", "Constrained Baseline"})
# 1080i/720p/576i/480i sizes a broadcast TS may carry at 50 or 59.94 fields: minidlna names
# those AVC_TS_HD_50_* / AVC_TS_HD_60_* from the frame rate, which the library does not keep
_TS_BROADCAST_SIZES = frozenset({(1920, 1080), (1440, 1080), (1280, 720), (720, 576), (720, 480)})


def _audio_profile(media: MediaInfo) -> str | None:
    """minidlna's audio profile of the first audio track (None: none, or one DLNA names no
    profile for here). AAC is taken as AAC-LC at 8-48 kHz: the library keeps neither the AAC
    object type nor the sample rate (HE-AAC files get a PN that names LC)."""
    if not media.audio:
        return None
    a = media.audio[0]
    codec = a.codec
    if codec == "aac":
        if a.channels is None:
            return None
        if a.channels <= 2:
            return _AUDIO_AAC
        return _AUDIO_AAC_MULT5 if a.channels <= 6 else None
    if codec == "ac3":
        return _AUDIO_AC3  # minidlna counts DTS as AC-3 too; DTS is not AC-3: no PN for it
    if codec == "mp3":
        return _AUDIO_MP3
    if codec == "mp2":
        return _AUDIO_MP2
    if codec.startswith("pcm_"):
        return _AUDIO_PCM
    if codec == "amr_nb":
        return _AUDIO_AMR
    return None


def _within(media: MediaInfo, width: int, height: int, bitrate: int | None = None) -> bool:
    """The video fits width x height (and the whole file's bit rate is at most `bitrate`: the
    library keeps the file's rate, never below the video stream's, so the test errs strict)."""
    w, h = media.width, media.height
    if not w or not h or w > width or h > height:
        return False
    return bitrate is None or (media.bitrate is not None and media.bitrate <= bitrate)


def _avc_mp4(media: MediaInfo, audio: str | None) -> str | None:
    profile = media.video_profile
    rate = media.bitrate
    if profile in _H264_BASELINE and rate is not None and _within(media, 352, 288):
        # minidlna: CIF15 below 600 kbit/s, CIF30 below 5 Mbit/s; AAC_520 / AAC_940 by rate.
        # Only the pairs DLNA defines: CIF15 + AAC_520, CIF30 + AAC_940
        if audio == _AUDIO_AAC and rate < 520_000:
            return "AVC_MP4_BL_CIF15_AAC_520"
        if audio == _AUDIO_AAC and 600_000 <= rate < 940_000:
            return "AVC_MP4_BL_CIF30_AAC_940"
        if audio == _AUDIO_AMR and rate < 600_000:
            return "AVC_MP4_BL_CIF15_AMR"
        if audio == _AUDIO_AMR and rate < 5_000_000:
            return "AVC_MP4_BL_CIF30_AMR"
        # else as Main (minidlna's mp4_mp_fallback; a constrained Baseline stream is Main)
    if profile in _H264_BASELINE or profile == "Main":
        # Baseline beyond CIF: minidlna's BL_L3L_SD / BL_L31_HD / BL_L32_HD need the level,
        # which the library does not keep; without it minidlna too falls back to Main
        if _within(media, 720, 576, 10_000_000):
            suffix = {_AUDIO_AC3: "AC3", _AUDIO_AAC: "AAC_MULT5", _AUDIO_AAC_MULT5: "AAC_MULT5",
                      _AUDIO_MP3: "MPEG1_L3"}.get(audio or "")  # fmt: skip
            return f"AVC_MP4_MP_SD_{suffix}" if suffix else None
        if _within(media, 720, 576):
            return None  # an SD picture over SD's rate: not an HD profile either
        if audio == _AUDIO_AAC and _within(media, 1280, 720, 15_000_000):
            return "AVC_MP4_MP_HD_720p_AAC"
        if audio == _AUDIO_AAC and _within(media, 1920, 1080, 21_000_000):
            return "AVC_MP4_MP_HD_1080i_AAC"
        return None
    if profile == "High":
        if audio == _AUDIO_AAC and _within(media, 1920, 1080, 25_000_000):
            return "AVC_MP4_HP_HD_AAC"
        return None
    return None  # High 10, 4:2:2, unknown: no DLNA name


def _avc_ts(media: MediaInfo, audio: str | None) -> str | None:
    profile = media.video_profile
    if (media.width, media.height) in _TS_BROADCAST_SIZES and audio == _AUDIO_AC3:
        return None  # AVC_TS_HD_50_AC3 / HD_60_AC3 or not: depends on the frame rate
    if profile in _H264_BASELINE and _within(media, 352, 288, 384_000):
        name = "AVC_TS_BL_CIF15_"
    elif profile in _H264_BASELINE and _within(media, 352, 288, 3_000_000):
        name = "AVC_TS_BL_CIF30_"
    elif profile in _H264_BASELINE or profile == "Main":
        if _within(media, 720, 576, 10_000_000):
            name = "AVC_TS_MP_SD_"
        elif not _within(media, 720, 576) and _within(media, 1920, 1152, 20_000_000):
            name = "AVC_TS_MP_HD_"
        else:
            return None
    elif profile == "High":
        if audio != _AUDIO_AC3 or not _within(media, 1920, 1152, 30_000_000):
            return None
        name = "AVC_TS_HP_HD_"
    else:
        return None
    # AAC in a TS is ADTS, with no AudioSpecificConfig to read the object type from: minidlna
    # never names it (AVC_TS_*_AAC_MULT5 exist, but no TV needs them) and neither do we
    suffix = {_AUDIO_MP3: "MPEG1_L3", _AUDIO_AC3: "AC3"}.get(audio or "")
    return f"{name}{suffix}_ISO" if suffix else None


def _mpeg2(container: str, media: MediaInfo, audio: str | None) -> str | None:
    if media.audio and audio not in (_AUDIO_MP2, _AUDIO_AC3, _AUDIO_PCM):
        return None  # DLNA's MPEG-2 profiles carry MPEG-1 L2, AC-3 or LPCM audio
    w, h = media.width or 0, media.height or 0
    if container == "mpeg":
        # minidlna: PAL when 576 or 288 lines, else NTSC (also for HD); we name SD only
        if w <= 720 and h in (576, 288):
            return "MPEG_PS_PAL"
        if w <= 720 and h in (480, 240):
            return "MPEG_PS_NTSC"
        return None
    if container == "mpegts" and media.audio and audio != _AUDIO_PCM:
        if w >= 1280 and h >= 720:
            return "MPEG_TS_HD_NA_ISO" if w <= 1920 and h <= 1080 else None
        if w <= 720 and h in (576, 288):
            return "MPEG_TS_SD_EU_ISO"
        if w <= 720 and h in (480, 240):
            return "MPEG_TS_SD_NA_ISO"
    return None


def profile_name(container: str, media: MediaInfo | None, file_name: str = "") -> str | None:
    """DLNA.ORG_PN of a file (container key as profiles.container_key gives it) or of a
    stream we produce with these facts; None when DLNA names no profile or we cannot tell.

    MPEG-TS is named with _ISO (188-byte packets): .m2ts/.mts files usually carry 192-byte
    timestamped packets (_T, another MIME type), which the library does not record: no PN."""
    if media is None or not media.video_codec:
        return None
    ext = PurePosixPath(file_name).suffix.lower()
    if container == "mpegts" and ext in (".m2ts", ".mts", ".m2t", ".tts"):
        return None
    if container == "mp4" and ext in (".3gp", ".3g2"):
        return None
    audio = _audio_profile(media)
    if media.audio and audio is None:
        return None  # an audio track DLNA has no name for here (DTS, E-AC-3, Opus, HE…)
    if media.video_codec == "h264":
        if container == "mp4":
            return _avc_mp4(media, audio)
        if container == "mpegts":
            return _avc_ts(media, audio)
        return None
    if media.video_codec == "mpeg2video":
        return _mpeg2(container, media, audio)
    return None


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
