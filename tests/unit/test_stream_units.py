"""Pure pieces of the streamer: ranges, DLNA time-seek and contentFeatures, client profiles
(chosen by User-Agent from the TOML data), the direct/remux/transcode decision, ffmpeg argv,
subtitle conversion."""

from __future__ import annotations

from pathlib import Path

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
