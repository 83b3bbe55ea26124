"""The probe facts DLNA.ORG_PN needs (H.264 level, frame rate, field order, the AAC profile,
sample rate and bit rate, the video stream's bit rate, the MPEG-TS packet size), read by the
real ffprobe from small generated files, and MediaInfo JSON from before them still loading."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from sokoul_appliance.host import Host
from sokoul_appliance.library.probe import (
    PROBE_VERSION,
    AudioStream,
    MediaInfo,
    probe_file,
    ts_packet_size,
    ts_timestamped,
)
from sokoul_appliance.stream import dlna
from tests.media_samples import need_ffmpeg

X264 = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")


def _make(path: Path, size: str, *args: str, rate: str = "25") -> Path:
    need_ffmpeg()
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}:duration=1",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1",
         *args, "-shortest", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path


async def _probe(path: Path) -> MediaInfo:
    return await probe_file(Host(path.parent), path)


async def test_baseline_hd_mp4_facts(tmp_path: Path) -> None:
    mp4 = _make(tmp_path / "bl.mp4", "1280x720", *X264, "-profile:v", "baseline",
                "-level", "3.1", "-c:a", "aac", "-b:a", "96k")  # fmt: skip
    info = await _probe(mp4)
    assert (info.video_profile, info.video_level) == ("Constrained Baseline", 31)
    assert (info.frame_rate, info.field_order) == (25.0, "progressive")
    assert info.video_bitrate is not None and 0 < info.video_bitrate <= (info.bitrate or 0)
    assert info.ts_packet_size is None and info.probe_version == PROBE_VERSION
    a = info.audio[0]
    assert (a.codec, a.profile, a.sample_rate, a.channels) == ("aac", "LC", 48000, 1)
    assert a.bitrate is not None and 50_000 < a.bitrate < 150_000
    assert MediaInfo.from_json(info.to_json()) == info
    # minidlna 1.3.0 names this file the same (docs/dlna.md)
    assert dlna.profile_name("mp4", info, "bl.mp4") == "AVC_MP4_BL_L31_HD_AAC"


async def test_aac_object_type_other_than_lc(tmp_path: Path) -> None:
    """AAC Main (ffmpeg's encoder writes no HE-AAC; HE-AAC is the same case): not named."""
    mp4 = _make(tmp_path / "main.mp4", "1280x720", *X264, "-preset", "veryfast",
                "-profile:v", "high", "-c:a", "aac", "-profile:a", "aac_main")  # fmt: skip
    info = await _probe(mp4)
    assert info.video_profile == "High" and info.audio[0].profile == "Main"
    assert dlna.profile_name("mp4", info, "main.mp4") is None
    named = replace(info, audio=(replace(info.audio[0], profile="LC"),))
    assert dlna.profile_name("mp4", named, "main.mp4") == "AVC_MP4_HP_HD_AAC"


async def test_interlaced_broadcast_ts_and_packet_sizes(tmp_path: Path) -> None:
    ts = _make(tmp_path / "i50.ts", "1920x1080", *X264, "-profile:v", "main",
               "-flags", "+ildct+ilme", "-x264opts", "tff=1", "-c:a", "ac3")  # fmt: skip
    info = await _probe(ts)
    assert info.container == "mpegts" and info.ts_packet_size == 188
    assert (info.frame_rate, info.field_order) == (25.0, "tt")
    assert info.audio[0].codec == "ac3" and info.audio[0].sample_rate == 48000
    # as minidlna 1.3.0 names it (not AVC_TS_HD_50_AC3_ISO: docs/dlna.md)
    assert dlna.profile_name("mpegts", info, "i50.ts") == "AVC_TS_MP_HD_AC3_ISO"
    # the same streams in 192-byte packets (timestamped, as .m2ts): no _ISO name
    m2ts = tmp_path / "i50.m2ts"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(ts),
         "-c", "copy", "-mpegts_m2ts_mode", "1", str(m2ts)],
        check=True, timeout=120,
    )  # fmt: skip
    info = await _probe(m2ts)
    assert (info.ts_packet_size, info.ts_timestamped) == (192, True)
    assert dlna.profile_name("mpegts", info, "i50.m2ts") == "AVC_TS_MP_HD_AC3_T"  # as minidlna
    assert dlna.ts_mime(info) == "video/vnd.dlna.mpeg-tts"
    # the same packets with their 4-byte headers zeroed: the name without a suffix
    data = bytearray(m2ts.read_bytes())
    for at in range(0, len(data), 192):
        data[at : at + 4] = bytes(4)
    zeroed = tmp_path / "zeroed.m2ts"
    zeroed.write_bytes(bytes(data))
    info = await _probe(zeroed)
    assert (info.ts_packet_size, info.ts_timestamped) == (192, False)
    assert dlna.profile_name("mpegts", info, "zeroed.m2ts") == "AVC_TS_MP_HD_AC3"
    # NTSC film rate, progressive
    p = _make(tmp_path / "p.ts", "640x360", *X264, "-c:a", "ac3", rate="24000/1001")
    info = await _probe(p)
    assert info.field_order == "progressive" and info.frame_rate == pytest.approx(23.976, 1e-4)


def test_ts_packet_size_from_sync_bytes() -> None:
    def stream(size: int, count: int = 6, lead: int = 0) -> bytes:
        pad = size - 188
        packet = b"\0" * pad + b"\x47" + b"\x11" * 187
        return b"\x00" * lead + packet * count

    assert ts_packet_size(stream(188)) == 188
    assert ts_packet_size(stream(192)) == 192
    assert ts_packet_size(stream(204)) == 204
    assert ts_packet_size(stream(188, lead=17)) == 188
    assert ts_packet_size(b"\x47" + b"\0" * 1000) is None
    assert ts_packet_size(b"") is None


def test_ts_timestamps_from_the_192_byte_packet_headers() -> None:
    def stream(stamp: bytes, lead: int = 0, count: int = 5) -> bytes:
        packet = stamp + b"\x47" + b"\x11" * 187
        return b"\x00" * lead + packet * count

    assert ts_timestamped(stream(b"\x1a\x2b\x3c\x4d")) is True
    assert ts_timestamped(stream(b"\x00\x00\x00\x01", lead=50)) is True
    assert ts_timestamped(stream(bytes(4))) is False
    assert ts_timestamped(stream(bytes(4), lead=7)) is False
    # a stray 0x47 before the real first packet does not shift where the header is read
    assert ts_timestamped(b"\x47" + stream(b"\x00\x00\x07\x00", lead=3)) is True
    assert ts_timestamped(b"\x47" + b"\x11" * 187 + b"\x47" + b"\x11" * 187 * 4) is None
    assert ts_timestamped(b"") is None


def test_media_info_json_from_before_the_new_facts_loads() -> None:
    old = json.dumps(
        {"audio": [{"channels": 2, "codec": "aac", "index": 1, "language": "eng"}],
         "bitrate": 900, "container": "mov,mp4,m4a,3gp,3g2,mj2", "duration": 12.5,
         "height": 720, "pix_fmt": "yuv420p", "subtitles": [], "video_codec": "h264",
         "video_profile": "Main", "width": 1280},
        sort_keys=True,
    )  # fmt: skip
    info = MediaInfo.from_json(old)
    assert info.probe_version == 1 and info.audio == (AudioStream(1, "aac", 2, "eng"),)
    assert (info.video_level, info.frame_rate, info.field_order) == (None, None, None)
    assert (info.video_bitrate, info.ts_packet_size) == (None, None)
    # the facts PN needs are unknown: no PN (before, this said AVC_MP4_MP_HD_720p_AAC)
    assert dlna.profile_name("mp4", info, "a.mp4") is None
    # and what is written now reads back whole, with the version
    again = MediaInfo.from_json(info.to_json())
    assert again == info and json.loads(info.to_json())["probe_version"] == 1
    assert json.loads(MediaInfo("mpegts", 1.0, 1, "h264", 2, 2).to_json())["probe_version"] == (
        PROBE_VERSION
    )
