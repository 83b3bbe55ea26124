"""Remux or transcode for clients that cannot play a file as it is: ffmpeg writes MPEG-TS to a
pipe and the HTTP answer carries it as it is produced (no temporary file, no waiting for the end).

The video encoder is a per-board hook: ``SoftwareEncoder`` (libx264) everywhere; a board profile
may hand the streamer a hardware encoder (V4L2 M2M, Rockchip MPP, the Sky1 VPU) with the same
two methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sokoul_appliance.library.probe import MediaInfo
from sokoul_appliance.stream.profiles import ClientProfile, TranscodeTarget

DIRECT = "direct"
REMUX = "remux"  # video copied, audio copied or re-encoded, new container
TRANSCODE = "transcode"


class VideoEncoder(Protocol):
    name: str

    def input_args(self, media: MediaInfo | None) -> list[str]:
        """Arguments before -i (hardware decoding, e.g. ['-hwaccel', 'drm'])."""
        ...

    def video_args(self, target: TranscodeTarget, media: MediaInfo | None) -> list[str]:
        """Arguments that produce ``target.video_codec`` at most ``target.max_height`` tall."""
        ...


class SoftwareEncoder:
    name = "libx264"

    def __init__(self, preset: str = "veryfast", threads: int = 0) -> None:
        self.preset = preset
        self.threads = threads

    def input_args(self, media: MediaInfo | None) -> list[str]:
        return []

    def video_args(self, target: TranscodeTarget, media: MediaInfo | None) -> list[str]:
        height = target.max_height
        args = [
            "-c:v", "libx264", "-preset", self.preset, "-profile:v", "high", "-level", "4.1",
            "-pix_fmt", "yuv420p",
            "-vf", f"scale=-2:'min({height},ih)':flags=bicubic",
            "-b:v", target.video_bitrate, "-maxrate", target.video_bitrate,
            "-bufsize", target.video_bitrate, "-g", "50",
        ]  # fmt: skip
        if self.threads:
            args += ["-threads", str(self.threads)]
        return args


@dataclass(frozen=True)
class Plan:
    mode: str  # DIRECT | REMUX | TRANSCODE
    copy_audio: bool = False


def decide(
    profile: ClientProfile,
    media: MediaInfo | None,
    container: str,
    force: bool = False,
    reencode: bool = False,
) -> Plan:
    """``reencode``: the video cannot be copied even when its codec is right (e.g. an H.264
    level above what a Chromecast decodes)."""
    if not force and profile.can_direct_play(media, container):
        return Plan(DIRECT)
    copy_audio = profile.can_copy_audio(media)
    if not reencode and profile.can_copy_video(media):
        return Plan(REMUX, copy_audio)
    return Plan(TRANSCODE, copy_audio)


def ffmpeg_argv(
    path: Path,
    plan: Plan,
    target: TranscodeTarget,
    media: MediaInfo | None,
    encoder: VideoEncoder,
    start: float = 0.0,
    end: float | None = None,
) -> list[str]:
    """ffmpeg writing MPEG-TS to stdout; ``start`` seeks the input (fast, from the keyframe
    before, decoding up to the exact time when transcoding)."""
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"]
    if plan.mode == TRANSCODE:
        argv += encoder.input_args(media)
    if start > 0:
        argv += ["-ss", f"{start:.3f}"]
    argv += ["-i", f"file:{path}"]
    if end is not None:
        argv += ["-t", f"{end - start:.3f}"]
    argv += ["-map", "0:v:0?", "-map", "0:a:0?", "-sn", "-dn"]
    if plan.mode == REMUX:
        argv += ["-c:v", "copy"]
    else:
        argv += encoder.video_args(target, media)
    if plan.copy_audio and start == 0:
        # (a copied stream starts at the packet before the seek point: after a seek, audio is
        # re-encoded so that it is cut at the same time as the video)
        argv += ["-c:a", "copy"]
    else:
        argv += [
            "-c:a", target.audio_codec, "-b:a", target.audio_bitrate,
            "-ac", str(target.audio_channels),
        ]  # fmt: skip
    if target.container == "mp4":
        # fragmented MP4 (a Chromecast's target): playable while written, no seek back needed
        argv += ["-movflags", "frag_keyframe+empty_moov+default_base_moof"]
    argv += ["-f", target.container, "-muxdelay", "0", "pipe:1"]
    return argv
