"""Pure pieces of the streamer: ranges, DLNA time-seek and contentFeatures, client profiles
(chosen by User-Agent from the TOML data), the direct/remux/transcode decision, ffmpeg argv,
subtitle conversion."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sokoul_appliance.library.probe import AudioStream, MediaInfo, parse_ffprobe
from sokoul_appliance.stream import dlna
from sokoul_appliance.stream.profiles import (
    ProfileError,
    choose_profile,
    container_key,
    load_profiles,
    parse_profile,
)
from sokoul_appliance.stream.ranges import Unsatisfiable, parse_range
from sokoul_appliance.stream.subtitles import convert, srt_to_vtt, vtt_to_srt
from sokoul_appliance.stream.transcode import (
    DIRECT,
    REMUX,
    TRANSCODE,
    Plan,
    SoftwareEncoder,
    decide,
    ffmpeg_argv,
)

PROFILES = load_profiles()


def _media(vcodec: str = "h264", acodec: str = "aac", height: int = 1080) -> MediaInfo:
    return MediaInfo(
        container="matroska,webm",
        duration=60.0,
        bitrate=5_000_000,
        video_codec=vcodec,
        width=height * 16 // 9,
        height=height,
        pix_fmt="yuv420p",
        audio=(AudioStream(1, acodec, 2, "eng"),),
    )


def test_ranges() -> None:
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=-1000", 100) == (0, 99)
    assert parse_range("bytes=50-1000", 100) == (50, 99)
    assert parse_range("bytes=0-1,5-6", 100) is None  # several ranges: the whole file
    assert parse_range("items=0-1", 100) is None
    assert parse_range("bytes=9-1", 100) is None
    for bad in ("bytes=100-", "bytes=100-200", "bytes=-0"):
        with pytest.raises(Unsatisfiable):
            parse_range(bad, 100)


def test_time_seek_headers() -> None:
    assert dlna.parse_time_seek("npt=10.5-") == (10.5, None)
    assert dlna.parse_time_seek("npt=00:01:02.500-00:02:00") == (62.5, 120.0)
    assert dlna.parse_time_seek("NPT = 5 - 7 /60") == (5.0, 7.0)
    for bad in ("npt=-10", "bytes=1-", "npt=5-4", "npt=1:99:00-", "npt=a-"):
        with pytest.raises(dlna.BadTimeSeek):
            dlna.parse_time_seek(bad)
    assert dlna.format_time_seek(5, None, 60.25) == "npt=5.000-60.250/60.250"
    assert dlna.format_time_seek(5, 7, None) == "npt=5.000-7.000/*"


def test_content_features_flags() -> None:
    assert dlna.content_features() == (
        "DLNA.ORG_OP=01;DLNA.ORG_CI=0;DLNA.ORG_FLAGS=01700000000000000000000000000000"
    )
    assert dlna.content_features("AVC_TS_MP_HD_AAC_MULT5_ISO", dlna.OP_TIMESEEK, True) == (
        "DLNA.ORG_PN=AVC_TS_MP_HD_AAC_MULT5_ISO;DLNA.ORG_OP=10;DLNA.ORG_CI=1;"
        "DLNA.ORG_FLAGS=01700000000000000000000000000000"
    )
    assert dlna.protocol_info("video/mp4", "DLNA.ORG_OP=01").startswith("http-get:*:video/mp4:")
    assert dlna.didl_duration(7261.5) == "2:01:01.500"
    assert dlna.didl_duration(0.0004) == "0:00:00.000"
    assert dlna.didl_duration(None) is None


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        ("SEC_HHP_[TV] Samsung Q7 Series (55)/1.0", "samsung"),
        ("DLNADOC/1.50 SEC_HHP_[TV] UE40ES6100/1.0 UPnP/1.0", "samsung"),
        ("Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36", "samsung"),
        ("Linux/3.10.19-32.afro.4 UPnP/1.0 LGE WebOS TV LGE_DLNA_SDK/1.6.0", "lg"),
        ('UPnP/1.0 DLNADOC/1.50 av=5.0; cn="Sony Corporation"; mn="BRAVIA KDL-40W600B"', "sony"),
        ("VLC/3.0.18 LibVLC/3.0.18", "generic"),
        ("", "generic"),
    ],
)
def test_profiles_are_chosen_by_user_agent(identity: str, expected: str) -> None:
    assert choose_profile(PROFILES, identity).name == expected


def test_profile_files_are_validated(tmp_path: Path) -> None:
    assert {p.name for p in PROFILES} == {"generic", "samsung", "lg", "sony", "chromecast"}
    with pytest.raises(ProfileError, match="containers"):
        parse_profile({"name": "x", "direct_play": {"containers": "mp4"}}, "x.toml")
    with pytest.raises(ProfileError, match="generic"):
        load_profiles(tmp_path)
    (tmp_path / "generic.toml").write_text("name = [")
    with pytest.raises(ProfileError, match=r"generic\.toml"):
        load_profiles(tmp_path)


def test_container_keys() -> None:
    assert container_key("matroska,webm", "a.mkv") == "matroska"
    assert container_key("matroska,webm", "a.webm") == "webm"
    assert container_key("mov,mp4,m4a,3gp,3g2,mj2", "a.mp4") == "mp4"
    assert container_key("mov,mp4,m4a,3gp,3g2,mj2", "a.MOV") == "mov"
    assert container_key(None, "a.mkv") == "matroska"
    assert container_key("mpegts", "a.ts") == "mpegts"


def test_direct_remux_or_transcode() -> None:
    by = {p.name: p for p in PROFILES}
    hevc_mkv = _media("hevc", "eac3", 2160)
    assert decide(by["samsung"], hevc_mkv, "matroska") == Plan(DIRECT)
    assert decide(by["generic"], hevc_mkv, "matroska").mode == TRANSCODE
    h264_mkv = _media("h264", "aac", 1080)
    assert decide(by["generic"], h264_mkv, "matroska") == Plan(REMUX, copy_audio=True)
    assert decide(by["sony"], _media("h264", "dts"), "matroska") == Plan(REMUX, copy_audio=False)
    assert decide(by["generic"], h264_mkv, "mp4") == Plan(DIRECT)
    assert decide(by["generic"], h264_mkv, "mp4", force=True).mode == REMUX
    assert decide(by["generic"], None, "avi") == Plan(DIRECT)  # unprobed: as it is


def test_ffmpeg_argv_for_a_seeked_transcode() -> None:
    generic = choose_profile(PROFILES, None)
    argv = ffmpeg_argv(
        Path("/srv/media/library/-rf.mkv"),
        Plan(TRANSCODE, copy_audio=True),
        generic.transcode,
        _media("hevc"),
        SoftwareEncoder(),
        start=12.5,
        end=20.0,
    )
    assert argv[argv.index("-ss") + 1] == "12.500"
    assert argv.index("-ss") < argv.index("-i")  # input seeking
    assert argv[argv.index("-i") + 1] == "file:/srv/media/library/-rf.mkv"
    assert argv[argv.index("-t") + 1] == "7.500"
    assert argv[argv.index("-c:v") + 1] == "libx264"
    assert argv[argv.index("-c:a") + 1] == "aac"  # re-encoded after a seek, cut with the video
    assert argv[-1] == "pipe:1"
    assert argv[argv.index("-f") + 1] == "mpegts"
    remux = ffmpeg_argv(
        Path("/x.mkv"), Plan(REMUX, True), generic.transcode, None, SoftwareEncoder()
    )
    assert remux[remux.index("-c:v") + 1] == "copy" and remux[remux.index("-c:a") + 1] == "copy"
    assert "-ss" not in remux


def test_subtitle_conversion_round_trip() -> None:
    srt = "1\n00:00:01,000 --> 00:00:02,500\nHello\n\n2\n00:01:00,000 --> 00:01:01,000\nBye\n"
    vtt = srt_to_vtt(srt)
    assert vtt.startswith("WEBVTT\n\n1\n00:00:01.000 --> 00:00:02.500\nHello")
    assert vtt_to_srt(vtt) == srt
    short = "WEBVTT\n\nNOTE hi\n\n00:01.000 --> 00:02.000 align:start\nShort form\n"
    assert vtt_to_srt(short) == "1\n00:00:01,000 --> 00:00:02,000\nShort form\n"
    assert convert("é".encode("cp1252"), "srt", "srt") == "é".encode("cp1252")


def test_ffprobe_json_is_read_into_media_info() -> None:
    info = parse_ffprobe(
        {
            "format": {"format_name": "matroska,webm", "duration": "12.5", "bit_rate": "900"},
            "streams": [
                {"index": 0, "codec_type": "video", "codec_name": "mjpeg",
                 "disposition": {"attached_pic": 1}},
                {"index": 1, "codec_type": "video", "codec_name": "hevc", "width": 3840,
                 "height": 2160, "pix_fmt": "yuv420p10le"},
                {"index": 2, "codec_type": "audio", "codec_name": "eac3", "channels": 6,
                 "tags": {"language": "eng"}},
                {"index": 3, "codec_type": "subtitle", "codec_name": "subrip",
                 "tags": {"language": "fre", "title": "Forced"}},
            ],
        }
    )  # fmt: skip
    assert (info.video_codec, info.resolution, info.duration) == ("hevc", "3840x2160", 12.5)
    assert info.audio == (AudioStream(2, "eac3", 6, "eng"),)
    assert [(s.codec, s.language) for s in info.subtitles] == [("subrip", "fre")]
    assert MediaInfo.from_json(info.to_json()) == info


def _pn_media(
    vcodec: str,
    profile: str | None,
    size: tuple[int, int],
    bitrate: int | None,
    audio: tuple[str, int | None] | None = ("aac", 2),
    container: str = "mov,mp4,m4a,3gp,3g2,mj2",
    **facts: Any,
) -> MediaInfo:
    """Probe facts for a PN case: AAC is LC at 48 kHz, 128 kbit/s unless `facts` say else
    (aac_profile, sample_rate, audio_bitrate); the other MediaInfo fields by name."""
    a_profile = facts.pop("aac_profile", "LC" if audio and audio[0] == "aac" else None)
    a_rate = facts.pop("sample_rate", 48_000)
    a_bits = facts.pop("audio_bitrate", 128_000)
    return MediaInfo(
        container=container,
        duration=60.0,
        bitrate=bitrate,
        video_codec=vcodec,
        width=size[0],
        height=size[1],
        video_profile=profile,
        audio=()
        if audio is None
        else (AudioStream(1, audio[0], audio[1], None, a_profile, a_rate, a_bits),),
        **facts,
    )


MP4, TS, PS = "mp4", "mpegts", "mpeg"
BL, CBL = "Baseline", "Constrained Baseline"
F4, FT, H, V2 = "a.mp4", "a.ts", "h264", "mpeg2video"
A4, AT = "AVC_MP4_", "AVC_TS_"


# (container key, file name, video codec, H.264 profile, WxH, file bit/s, (audio, channels), PN)
# Rows marked "=md" were checked against minidlna 1.3.0 on real files (docs/dlna.md).
@pytest.mark.parametrize(
    ("container", "name", "vcodec", "profile", "size", "rate", "audio", "pn"),
    [
        # MP4, Baseline at CIF: the rate picks CIF15/CIF30 and AAC_520/AAC_940
        (MP4, F4, H, CBL, (320, 240), 251_440, ("aac", 1), A4 + "BL_CIF15_AAC_520"),  # =md
        (MP4, F4, H, BL, (352, 288), 700_000, ("aac", 2), A4 + "BL_CIF30_AAC_940"),
        (MP4, F4, H, BL, (176, 144), 300_000, ("amr_nb", 1), A4 + "BL_CIF15_AMR"),
        # no DLNA name for CIF15 at 520-600k: as Main (minidlna writes CIF15_AAC_940 there)
        (MP4, F4, H, BL, (320, 240), 550_000, ("aac", 2), A4 + "MP_SD_AAC_MULT5"),
        # Baseline beyond CIF: BL_L31_HD or MP_HD_720p depends on the level, not known here
        # (test_dlna_profile_name_from_probed_facts has it)
        (MP4, F4, H, CBL, (1280, 720), 1_301_216, ("aac", 1), None),
        # Main: SD by size and rate, with AAC (stereo or 5.1), AC-3 or MP3
        (MP4, F4, H, "Main", (640, 480), 170_576, ("aac", 1), A4 + "MP_SD_AAC_MULT5"),
        (MP4, F4, H, "Main", (720, 576), 4_000_000, ("aac", 6), A4 + "MP_SD_AAC_MULT5"),
        (MP4, F4, H, "Main", (720, 576), 4_000_000, ("ac3", 6), A4 + "MP_SD_AC3"),
        (MP4, F4, H, "Main", (640, 480), 165_632, ("mp3", 1), A4 + "MP_SD_MPEG1_L3"),
        (MP4, F4, H, "Main", (720, 576), 12_000_000, ("aac", 2), None),  # over SD rate
        (MP4, F4, H, "Main", (720, 576), 4_000_000, ("aac", 8), None),  # 7.1 AAC
        (MP4, F4, H, "Main", (1280, 720), 230_504, ("aac", 1), A4 + "MP_HD_720p_AAC"),  # =md
        (MP4, F4, H, "Main", (1920, 1080), 8_000_000, ("aac", 2), A4 + "MP_HD_1080i_AAC"),
        (MP4, F4, H, "Main", (1920, 1080), 8_000_000, ("aac", 6), None),  # HD: stereo only
        (MP4, F4, H, "Main", (1920, 1080), 8_000_000, ("ac3", 6), None),
        (MP4, F4, H, "Main", (1920, 1080), 30_000_000, ("aac", 2), None),
        # High: HD with stereo AAC only
        (MP4, F4, H, "High", (1280, 720), 235_584, ("aac", 1), A4 + "HP_HD_AAC"),  # =md
        (MP4, F4, H, "High", (1920, 1080), 24_000_000, ("aac", 2), A4 + "HP_HD_AAC"),
        (MP4, F4, H, "High", (3840, 2160), 24_000_000, ("aac", 2), None),  # 4K
        (MP4, F4, H, "High", (1920, 1080), 8_000_000, ("ac3", 6), None),
        (MP4, F4, H, "High", (1920, 1080), 8_000_000, ("eac3", 6), None),
        (MP4, F4, H, "High 10", (320, 240), 247_376, ("aac", 1), None),  # =md
        (MP4, F4, H, "High 4:2:2", (1920, 1080), 8_000_000, ("aac", 2), None),
        (MP4, F4, H, None, (1920, 1080), 8_000_000, ("aac", 2), None),
        (MP4, F4, H, "Main", (640, 480), None, ("aac", 2), None),  # rate unknown
        (MP4, F4, H, "Main", (640, 480), 1_000_000, ("aac", None), None),
        (MP4, F4, H, "Main", (640, 480), 1_000_000, ("dts", 6), None),
        (MP4, F4, H, "Main", (640, 480), 1_000_000, None, None),  # no audio: no name
        (TS, FT, H, "Main", (720, 576), 12_000_000, ("mp3", 2), None),
        (MP4, "a.3gp", "h264", BL, (176, 144), 100_000, ("aac", 1), None),
        (MP4, "a.mp4", "hevc", "Main", (1920, 1080), 8_000_000, ("aac", 2), None),
        ("mov", "a.mov", "h264", "Main", (640, 480), 1_000_000, ("aac", 2), None),
        ("matroska", "a.mkv", "h264", "High", (1920, 1080), 8_000_000, ("aac", 2), None),
        # MPEG-TS with H.264: _ISO (188-byte packets); AC-3 or MP3, never AAC (ADTS)
        (TS, FT, H, "Main", (640, 360), 232_288, ("ac3", 1), AT + "MP_SD_AC3_ISO"),  # =md
        (TS, FT, H, "Main", (1920, 800), 8_000_000, ("ac3", 6), AT + "MP_HD_AC3_ISO"),
        (TS, FT, H, "High", (1920, 800), 8_000_000, ("ac3", 6), AT + "HP_HD_AC3_ISO"),
        (TS, FT, H, "Main", (640, 360), 1_000_000, ("mp3", 2), AT + "MP_SD_MPEG1_L3_ISO"),
        (TS, FT, H, BL, (352, 288), 300_000, ("ac3", 2), AT + "BL_CIF15_AC3_ISO"),
        (TS, FT, H, BL, (352, 288), 2_000_000, ("ac3", 2), AT + "BL_CIF30_AC3_ISO"),
        (TS, FT, H, "Main", (1920, 1080), 343_948, ("aac", 1), None),  # =md
        (TS, FT, H, CBL, (1920, 1080), 639_392, ("aac", 1), None),  # =md
        (TS, FT, H, "High", (1920, 800), 8_000_000, ("mp3", 2), None),  # HP: AC-3 only
        # broadcast sizes with AC-3: AVC_TS_HD_50_AC3 / HD_60_AC3 or not depends on the frame
        # rate and field order, not known here: no PN (with them: the table below)
        (TS, FT, H, "Main", (720, 576), 242_711, ("ac3", 1), None),
        (TS, FT, H, CBL, (1920, 1080), 668_572, ("ac3", 1), None),
        (TS, FT, H, "High", (1280, 720), 302_272, ("ac3", 1), None),
        (TS, "a.m2ts", "h264", "Main", (640, 360), 1_000_000, ("ac3", 2), None),  # 192-byte TS
        (TS, "a.mts", "h264", "Main", (640, 360), 1_000_000, ("ac3", 2), None),
        # MPEG-2
        (PS, "a.mpg", V2, "Main", (720, 576), 1_543_873, ("mp2", 1), "MPEG_PS_PAL"),  # =md
        (PS, "a.mpg", V2, "Main", (720, 480), 1_415_217, ("mp2", 1), "MPEG_PS_NTSC"),  # =md
        (PS, "a.vob", V2, "Main", (720, 576), 5_000_000, ("ac3", 6), "MPEG_PS_PAL"),
        (PS, "a.mpg", V2, "Main", (352, 288), 1_000_000, ("pcm_dvd", 2), "MPEG_PS_PAL"),
        (PS, "a.mpg", V2, "Main", (1920, 1080), 9_000_000, ("mp2", 2), None),
        (PS, "a.mpg", V2, "Main", (720, 576), 5_000_000, ("aac", 2), None),
        (TS, "a.ts", V2, "Main", (720, 576), 1_609_143, ("mp2", 1), "MPEG_TS_SD_EU_ISO"),  # =md
        (TS, "a.ts", V2, "Main", (720, 480), 5_000_000, ("ac3", 2), "MPEG_TS_SD_NA_ISO"),
        (TS, "a.ts", V2, "Main", (1280, 720), 1_314_810, ("ac3", 1), "MPEG_TS_HD_NA_ISO"),  # =md
        (TS, "a.ts", V2, "Main", (640, 360), 5_000_000, ("mp2", 2), None),
        (TS, "a.ts", V2, "Main", (720, 576), 5_000_000, None, None),
        (TS, "a.m2ts", V2, "Main", (1920, 1080), 9_000_000, ("ac3", 2), None),
        ("avi", "a.avi", "mpeg4", None, (640, 480), 1_000_000, ("mp3", 2), None),
    ],
)  # fmt: skip
def test_dlna_profile_name(
    container: str,
    name: str,
    vcodec: str,
    profile: str | None,
    size: tuple[int, int],
    rate: int | None,
    audio: tuple[str, int | None] | None,
    pn: str | None,
) -> None:
    # a TS has the packet size its file would have: 192 for .m2ts/.mts, else 188
    packets = (192 if name.endswith(("m2ts", "mts")) else 188) if container == TS else None
    media = _pn_media(vcodec, profile, size, rate, audio, ts_packet_size=packets)
    assert dlna.profile_name(container, media, name) == pn


# Facts the library probes since probe_version 2 (H.264 level, frame rate, field order, the AAC
# profile, sample rate and bit rate, the video stream's bit rate, the TS packet size):
# (container, file name, H.264 profile, WxH, file bit/s, (audio, channels), facts, PN)
P, I25, I2997, P50, P5994 = (
    {"field_order": "progressive", "frame_rate": 25.0},
    {"field_order": "tt", "frame_rate": 25.0},
    {"field_order": "bb", "frame_rate": 30000 / 1001},
    {"field_order": "progressive", "frame_rate": 50.0},
    {"field_order": "progressive", "frame_rate": 60000 / 1001},
)  # fmt: skip


def _lv(level: int) -> dict[str, Any]:
    return {"video_level": level}


def _vb(rate: int) -> dict[str, Any]:
    return {"video_bitrate": rate}


def _ab(rate: int | None) -> dict[str, Any]:
    return {"audio_bitrate": rate}


@pytest.mark.parametrize(
    ("container", "name", "profile", "size", "rate", "audio", "facts", "pn"),
    [
        # Baseline beyond CIF by level (minidlna); the file's rate
        (MP4, F4, CBL, (1280, 720), 1_301_216, ("aac", 1), _lv(31), A4 + "BL_L31_HD_AAC"),  # =md
        (MP4, F4, BL, (1280, 720), 16_000_000, ("aac", 2), _lv(32), A4 + "BL_L32_HD_AAC"),
        (MP4, F4, BL, (1280, 720), 1_000_000, ("aac", 2), _lv(40), A4 + "MP_HD_720p_AAC"),
        (MP4, F4, BL, (720, 576), 4_000_000, ("aac", 2), _lv(30), A4 + "BL_L3L_SD_AAC"),
        (MP4, F4, BL, (640, 480), 6_000_000, ("aac", 2), _lv(30), A4 + "BL_L31_HD_AAC"),
        (MP4, F4, BL, (720, 576), 4_000_000, ("aac", 2), _lv(32), A4 + "MP_SD_AAC_MULT5"),
        (MP4, F4, BL, (1920, 1080), 4_000_000, ("aac", 2), _lv(40), A4 + "MP_HD_1080i_AAC"),
        (MP4, F4, BL, (1280, 720), 1_000_000, ("ac3", 2), _lv(31), None),  # HD: AAC only
        # the video stream's own rate decides the MP/HP limits when known (the file's is higher)
        (MP4, F4, "Main", (720, 576), 10_500_000, ("aac", 2), _vb(9_800_000),
         A4 + "MP_SD_AAC_MULT5"),
        (MP4, F4, "High", (1920, 1080), 26_000_000, ("aac", 2), _vb(24_000_000), A4 + "HP_HD_AAC"),
        (MP4, F4, "High", (1920, 1080), 26_000_000, ("aac", 2), {}, None),
        # AAC: LC only, at 8-48 kHz, with a known rate (HE-AAC was named as LC before)
        (MP4, F4, "High", (1280, 720), 1_000_000, ("aac", 2), {"aac_profile": "HE-AAC"}, None),
        (MP4, F4, "High", (1280, 720), 1_000_000, ("aac", 2), {"aac_profile": "HE-AACv2"}, None),
        (MP4, F4, "Main", (640, 480), 1_000_000, ("aac", 2), {"aac_profile": "Main"}, None),
        (MP4, F4, "Main", (640, 480), 1_000_000, ("aac", 2), {"aac_profile": None}, None),
        (MP4, F4, "Main", (640, 480), 1_000_000, ("aac", 2), {"sample_rate": 96_000}, None),
        (MP4, F4, "Main", (640, 480), 1_000_000, ("aac", 2), {"sample_rate": None}, None),
        (MP4, F4, "Main", (640, 480), 1_000_000, ("aac", 2), _ab(None), None),
        (MP4, F4, "Main", (640, 480), 1_000_000, ("aac", 2), _ab(600_000), A4 + "MP_SD_AAC_MULT5"),
        (MP4, F4, "High", (1280, 720), 1_000_000, ("aac", 2), _ab(600_000), None),  # MULT5
        (MP4, F4, "Main", (640, 480), 1_000_000, ("aac", 6), _ab(1_500_000), None),
        # broadcast sizes with AC-3: 720p59.94 is HD_60; the rest MP/HP as minidlna 1.3.0 names
        # them (1080i too, docs/dlna.md); 1080p50/60 no name; no frame rate: no name
        (TS, FT, "Main", (720, 576), 242_711, ("ac3", 1), P, AT + "MP_SD_AC3_ISO"),  # =md
        (TS, FT, CBL, (1920, 1080), 668_572, ("ac3", 1), P, AT + "MP_HD_AC3_ISO"),  # =md
        (TS, FT, "High", (1280, 720), 302_272, ("ac3", 1), P, AT + "HP_HD_AC3_ISO"),  # =md
        (TS, FT, "Main", (1920, 1080), 8_000_000, ("ac3", 2), I25, AT + "MP_HD_AC3_ISO"),  # =md
        (TS, FT, "High", (1440, 1080), 8_000_000, ("ac3", 2), I25, AT + "HP_HD_AC3_ISO"),
        (TS, FT, "Main", (720, 576), 4_000_000, ("ac3", 2), I25, AT + "MP_SD_AC3_ISO"),
        (TS, FT, "High", (1920, 1080), 8_000_000, ("ac3", 2), I2997, AT + "HP_HD_AC3_ISO"),
        (TS, FT, "Main", (720, 480), 4_000_000, ("ac3", 2), I2997, AT + "MP_SD_AC3_ISO"),
        (TS, FT, "Main", (1280, 720), 8_000_000, ("ac3", 2), P5994, AT + "HD_60_AC3_ISO"),
        (TS, FT, "High", (1280, 720), 8_000_000, ("ac3", 2), P5994, AT + "HD_60_AC3_ISO"),
        (TS, FT, "High", (1280, 720), 8_000_000, ("ac3", 2), P50, AT + "HP_HD_AC3_ISO"),
        (TS, FT, BL, (1280, 720), 3_000_000, ("ac3", 2), P5994, AT + "MP_HD_AC3_ISO"),  # not MP/HP
        (TS, FT, "Main", (1920, 1080), 8_000_000, ("ac3", 2), P50, None),  # 1080p50
        (TS, FT, "Main", (720, 576), 4_000_000, ("ac3", 2), P50, None),  # 576p50
        (TS, FT, "Main", (1920, 1080), 8_000_000, ("ac3", 2), {"field_order": "tt"}, None),
        (TS, FT, "Main", (1280, 720), 8_000_000, ("ac3", 2), {}, None),  # 59.94 or not?
        (TS, FT, "Main", (1920, 1080), 8_000_000, ("mp3", 2), P50, AT + "MP_HD_MPEG1_L3_ISO"),
        # the TS packet size, as probed from the sync bytes: _ISO with 188 only
        (TS, "a.m2ts", "Main", (640, 360), 1_000_000, ("ac3", 2), {"ts_packet_size": 188},
         AT + "MP_SD_AC3_ISO"),
        (TS, FT, "Main", (640, 360), 1_000_000, ("ac3", 2), {"ts_packet_size": 192}, None),
        (TS, "a.m2ts", "Main", (640, 360), 1_000_000, ("ac3", 2),
         {"ts_packet_size": 192, "ts_timestamped": True}, AT + "MP_SD_AC3_T"),
        (TS, "a.mts", "Main", (640, 360), 1_000_000, ("ac3", 2),
         {"ts_packet_size": 192, "ts_timestamped": False}, AT + "MP_SD_AC3"),
        (TS, "a.m2ts", "High", (1280, 720), 8_000_000, ("ac3", 2),
         {"ts_packet_size": 192, "ts_timestamped": True, **P5994}, AT + "HD_60_AC3_T"),
        (TS, FT, "Main", (640, 360), 1_000_000, ("ac3", 2),
         {"ts_packet_size": 204, "ts_timestamped": True}, None),
        (TS, FT, "Main", (640, 360), 1_000_000, ("ac3", 2), {"ts_packet_size": 204}, None),
        (TS, FT, "Main", (640, 360), 1_000_000, ("ac3", 2), {"ts_packet_size": None}, None),
    ],
)  # fmt: skip
def test_dlna_profile_name_from_probed_facts(
    container: str,
    name: str,
    profile: str,
    size: tuple[int, int],
    rate: int,
    audio: tuple[str, int],
    facts: dict[str, Any],
    pn: str | None,
) -> None:
    facts = {"ts_packet_size": 188 if container == TS else None, **facts}
    media = _pn_media(H, profile, size, rate, audio, **facts)
    assert dlna.profile_name(container, media, name) == pn


def test_dlna_profile_name_of_mpeg2_ts_needs_188_byte_packets() -> None:
    mpeg2 = _pn_media(V2, "Main", (720, 576), 5_000_000, ("mp2", 2), ts_packet_size=188)
    assert dlna.profile_name("mpegts", mpeg2, "a.ts") == "MPEG_TS_SD_EU_ISO"
    for size in (192, None):
        assert dlna.profile_name("mpegts", replace(mpeg2, ts_packet_size=size), "a.ts") is None


def test_dlna_profile_name_needs_facts() -> None:
    assert dlna.profile_name("mp4", None, "a.mp4") is None
    no_video = _pn_media("h264", "Main", (640, 480), 1_000_000)
    assert dlna.profile_name("mp4", replace(no_video, video_codec=None), "a.mp4") is None


def test_converted_streams_name_a_profile_only_when_sure(tmp_path: Path) -> None:
    """A remux keeps the file's video: named when the audio it sends (copied, or the target's
    after a time seek) gives the same name either way; a transcode is never named."""
    from prometheus_client import CollectorRegistry

    from sokoul_appliance.host import Host
    from sokoul_appliance.library.model import LibraryItem
    from sokoul_appliance.stream import StreamService

    service = StreamService(Host(tmp_path), None, CollectorRegistry())  # type: ignore[arg-type]
    generic = service.profile_for(None)

    def item(media: MediaInfo, name: str) -> LibraryItem:
        return LibraryItem(
            id="it-0123456789abcdef", kind="movie", title="X", year=None, show_id=None,
            show_title=None, season=None, episode=None, episode_title=None,
            rel_path=f"Movies/{name}", root="/srv/media/library", folder_id="fo-1", size=1,
            mtime_ns=0, duration=60.0, container=media.container,
            video_codec=media.video_codec, width=media.width, height=media.height, media=media,
            sidecars=(), probe_error=None, available=True, added_at=0.0,
        )  # fmt: skip

    main_ac3 = _pn_media("h264", "Main", (640, 360), 1_000_000, ("ac3", 2), "matroska,webm")
    # MKV → remux to MPEG-TS: AC-3 copied would be AVC_TS_MP_SD_AC3_ISO, but after a seek the
    # audio is AAC (unnamed in a TS): no PN
    plan, choice = service.choose(item(main_ac3, "a.mkv"), generic, force=True)
    assert plan.mode == REMUX and plan.copy_audio
    assert "DLNA.ORG_PN" not in choice.content_features
    # direct play of the same facts in a TS file (188-byte packets, as probed): named
    ts = replace(main_ac3, container="mpegts", ts_packet_size=188)
    plan, choice = service.choose(item(ts, "a.ts"), generic)
    assert plan.mode == DIRECT
    assert choice.content_features.startswith("DLNA.ORG_PN=AVC_TS_MP_SD_AC3_ISO;DLNA.ORG_OP=01")
    assert choice.mime_type == generic.mime_for("mpegts", "video/mp2t")
    # 192-byte packets (.m2ts, .mts): _T with timestamps, no suffix when they are zero; both
    # with DLNA's MIME type for such a TS (as minidlna sends them); unknown: no name, and the
    # profile's usual MIME type
    for stamped, pn in ((True, "AVC_TS_MP_SD_AC3_T"), (False, "AVC_TS_MP_SD_AC3")):
        m2ts = replace(ts, ts_packet_size=192, ts_timestamped=stamped)
        plan, choice = service.choose(item(m2ts, "a.m2ts"), generic)
        assert plan.mode == DIRECT
        assert choice.content_features.startswith(f"DLNA.ORG_PN={pn};DLNA.ORG_OP=01")
        assert choice.mime_type == "video/vnd.dlna.mpeg-tts"
    unknown = replace(ts, ts_packet_size=192)
    plan, choice = service.choose(item(unknown, "a.m2ts"), generic)
    assert "DLNA.ORG_PN" not in choice.content_features
    assert choice.mime_type == generic.mime_for("mpegts", "video/mp2t")
    # a transcode (HEVC) is never named
    hevc = replace(main_ac3, video_codec="hevc")
    plan, choice = service.choose(item(hevc, "a.mkv"), generic)
    assert plan.mode == TRANSCODE and "DLNA.ORG_PN" not in choice.content_features
