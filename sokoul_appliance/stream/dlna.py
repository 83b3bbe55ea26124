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
# but stricter: when a fact the name depends on is not known (an item probed before these facts
# were kept, a stream that does not say), the answer is no PN rather than a guess. A wrong PN
# makes Samsung and LG refuse a file; a missing one is allowed (DLNA: the TV then decides by
# MIME type). docs/dlna.md lists where and why we differ from minidlna.

_AUDIO_AAC, _AUDIO_AAC_MULT5, _AUDIO_AC3, _AUDIO_MP3, _AUDIO_MP2, _AUDIO_PCM, _AUDIO_AMR = (
    "aac", "aac_mult5", "ac3", "mp3", "mp2", "pcm", "amr"
)  # fmt: skip
_H264_BASELINE = frozenset({"Baseline", "Constrained Baseline"})
# the sizes a broadcast TS carries: with AC-3, Main/High 720p at 59.94 frames is
# AVC_TS_HD_60_AC3 (minidlna 1.3.0 names no other file HD_50 / HD_60: see _broadcast)
_TS_BROADCAST_SIZES = frozenset({(1920, 1080), (1440, 1080), (1280, 720), (720, 576), (720, 480)})
_NTSC_RATE = 30000 / 1001


def _audio_profile(media: MediaInfo) -> str | None:
    """minidlna's audio profile of the first audio track (None: none, or one DLNA names no
    profile for here, or a fact it depends on is unknown)."""
    if not media.audio:
        return None
    a = media.audio[0]
    codec = a.codec
    if codec == "aac":
        # AAC-LC at 8-48 kHz (minidlna: object type LC from the AudioSpecificConfig); HE-AAC,
        # Main, LTP… are other DLNA profiles (HEAAC_*) or none: not named here
        if a.profile != "LC" or a.sample_rate is None or not 8000 <= a.sample_rate <= 48000:
            return None
        if a.channels is None or a.bitrate is None:
            return None
        if a.channels <= 2 and a.bitrate <= 576_000:
            return _AUDIO_AAC
        if a.channels <= 6 and a.bitrate <= 1_440_000:
            return _AUDIO_AAC_MULT5
        return None
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


def _within(
    media: MediaInfo, width: int, height: int, rate: int | None = None, limit: int = 0
) -> bool:
    """The video fits width x height (and, with a limit, `rate` is known and at most it)."""
    w, h = media.width, media.height
    if not w or not h or w > width or h > height:
        return False
    return not limit or (rate is not None and rate <= limit)


def _video_rate(media: MediaInfo) -> int | None:
    """The video stream's bit rate (minidlna's vc->bit_rate), else the whole file's: never
    lower, so a limit tested on it errs strict (MPEG-TS streams do not state their own)."""
    return media.video_bitrate or media.bitrate


def _avc_mp4(media: MediaInfo, audio: str | None) -> str | None:
    profile = media.video_profile
    rate = media.bitrate  # the file's: minidlna's ctx->bit_rate, for the Baseline names
    if profile in _H264_BASELINE and _within(media, 352, 288):
        if rate is None:
            return None
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
    elif profile in _H264_BASELINE and audio == _AUDIO_AAC and _within(media, 1280, 720):
        # Baseline beyond CIF, by level and the file's rate (minidlna); else as Main
        level = media.video_level
        if level is None or rate is None:
            return None  # BL_L31_HD or MP_HD_720p? cannot tell
        sd = _within(media, 720, 576)
        if sd and level == 30 and rate <= 5_000_000:
            return "AVC_MP4_BL_L3L_SD_AAC"
        if level <= 31 and rate <= 15_000_000:
            return "AVC_MP4_BL_L31_HD_AAC"
        if not sd and level <= 32 and rate <= 21_000_000:
            return "AVC_MP4_BL_L32_HD_AAC"
    vrate = _video_rate(media)
    if profile in _H264_BASELINE or profile == "Main":
        if _within(media, 720, 576, vrate, 10_000_000):
            suffix = {_AUDIO_AC3: "AC3", _AUDIO_AAC: "AAC_MULT5", _AUDIO_AAC_MULT5: "AAC_MULT5",
                      _AUDIO_MP3: "MPEG1_L3"}.get(audio or "")  # fmt: skip
            return f"AVC_MP4_MP_SD_{suffix}" if suffix else None
        if _within(media, 720, 576):
            return None  # an SD picture over SD's rate: not an HD profile either
        if audio == _AUDIO_AAC and _within(media, 1280, 720, vrate, 15_000_000):
            return "AVC_MP4_MP_HD_720p_AAC"
        if audio == _AUDIO_AAC and _within(media, 1920, 1080, vrate, 21_000_000):
            return "AVC_MP4_MP_HD_1080i_AAC"
        return None
    if profile == "High":
        if audio == _AUDIO_AAC and _within(media, 1920, 1080, vrate, 25_000_000):
            return "AVC_MP4_HP_HD_AAC"
        return None
    return None  # High 10, 4:2:2, unknown: no DLNA name


def _broadcast(media: MediaInfo) -> str | None:
    """At a broadcast size: 'HD_60' for AVC_TS_HD_60_* (720p at 59.94 frames), '' when the
    MP/HP names apply (any rate up to 30 frames, interlaced or not; 720p50), None when the
    frame rate is unknown or over what those names carry (1080p50/60, 576p50).

    1080i/576i at 25 frames and 1080i/480i at 29.97 could also be called AVC_TS_HD_50_* /
    HD_60_* (minidlna's code means to), but minidlna 1.3.0 names such files MP_HD / MP_SD
    (its interlace test does not fire: measured on a 1080i25 file, docs/dlna.md), TVs have
    been served those names for years, and they are valid ones for 1080i: we follow."""
    fps = media.frame_rate
    if fps is None:
        return None
    if (media.width, media.height) == (1280, 720):
        if abs(fps - 2 * _NTSC_RATE) < 0.01:
            return "HD_60"
        return "" if fps <= 50.01 else None
    return "" if fps <= 30.01 else None


TTS_MIME = "video/vnd.dlna.mpeg-tts"  # MPEG-TS in 192-byte packets (DLNA's _T / bare names)


def _ts_suffix(media: MediaInfo) -> str | None:
    """The end of an MPEG-TS profile name, from the probed packets (as minidlna 1.3.0):
    '_ISO' for 188-byte packets (MIME video/mpeg), '_T' for 192-byte packets that carry
    timestamps, '' for 192-byte packets whose timestamps are zero (both with MIME
    video/vnd.dlna.mpeg-tts: ts_mime); None when unknown or 204-byte: no name."""
    if media.ts_packet_size == 188:
        return "_ISO"
    if media.ts_packet_size == 192 and media.ts_timestamped is not None:
        return "_T" if media.ts_timestamped else ""
    return None


def ts_mime(media: MediaInfo | None) -> str | None:
    """video/vnd.dlna.mpeg-tts for a file of 192-byte TS packets, else None. DLNA ties
    the _T and unsuffixed MPEG-TS names to that MIME type (minidlna sends it with them)."""
    return TTS_MIME if media is not None and media.ts_packet_size == 192 else None


def _avc_ts(media: MediaInfo, audio: str | None) -> str | None:
    end = _ts_suffix(media)
    if end is None:
        return None
    profile = media.video_profile
    if (media.width, media.height) in _TS_BROADCAST_SIZES and audio == _AUDIO_AC3:
        broadcast = _broadcast(media)
        if broadcast is None:
            return None
        if broadcast and profile in ("Main", "High"):
            return f"AVC_TS_{broadcast}_AC3{end}"
    vrate = _video_rate(media)
    if profile in _H264_BASELINE and _within(media, 352, 288, vrate, 384_000):
        name = "AVC_TS_BL_CIF15_"
    elif profile in _H264_BASELINE and _within(media, 352, 288, vrate, 3_000_000):
        name = "AVC_TS_BL_CIF30_"
    elif profile in _H264_BASELINE or profile == "Main":
        if _within(media, 720, 576, vrate, 10_000_000):
            name = "AVC_TS_MP_SD_"
        elif not _within(media, 720, 576) and _within(media, 1920, 1152, vrate, 20_000_000):
            name = "AVC_TS_MP_HD_"
        else:
            return None
    elif profile == "High":
        if audio != _AUDIO_AC3 or not _within(media, 1920, 1152, vrate, 30_000_000):
            return None
        name = "AVC_TS_HP_HD_"
    else:
        return None
    # AAC in a TS is ADTS, with no AudioSpecificConfig to read the object type from: minidlna
    # never names it (AVC_TS_*_AAC_MULT5 exist, but no TV needs them) and neither do we
    suffix = {_AUDIO_MP3: "MPEG1_L3", _AUDIO_AC3: "AC3"}.get(audio or "")
    return f"{name}{suffix}{end}" if suffix else None


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
        end = _ts_suffix(media)
        if end is None:
            return None
        if w >= 1280 and h >= 720:
            return f"MPEG_TS_HD_NA{end}" if w <= 1920 and h <= 1080 else None
        if w <= 720 and h in (576, 288):
            return f"MPEG_TS_SD_EU{end}"
        if w <= 720 and h in (480, 240):
            return f"MPEG_TS_SD_NA{end}"
    return None


def profile_name(container: str, media: MediaInfo | None, file_name: str = "") -> str | None:
    """DLNA.ORG_PN of a file (container key as profiles.container_key gives it) or of a
    stream we produce with these facts; None when DLNA names no profile or we cannot tell.

    MPEG-TS is named from its packets as probed from the file (``MediaInfo.ts_packet_size``,
    ``ts_timestamped``): _ISO for 188 bytes; _T or no suffix for 192 bytes, which go with
    the MIME type ts_mime() gives. A stream we produce says nothing of them: no name."""
    if media is None or not media.video_codec:
        return None
    ext = PurePosixPath(file_name).suffix.lower()
    if container == "mp4" and ext in (".3gp", ".3g2"):
        return None
    audio = _audio_profile(media)
    if media.audio and audio is None:
        return None  # an audio track DLNA has no name for here (DTS, E-AC-3, Opus, HE-AAC…)
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
