"""Tiny test videos made with ffmpeg's lavfi sources (testsrc + sine): nothing is downloaded."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SRT = """1
00:00:00,500 --> 00:00:01,500
Hello from the sidecar

2
00:00:02,000 --> 00:00:03,000
Second line
"""


def need_ffmpeg() -> None:
    if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
        pytest.skip("ffmpeg/ffprobe are not installed (apt-get install ffmpeg)")


def make_video(
    path: Path,
    seconds: float = 2.0,
    vcodec: str = "libx264",
    size: str = "320x240",
    acodec: str = "aac",
    fmt: str | None = None,
) -> Path:
    """A short testsrc video with a sine tone, in the container of ``path``'s suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc=size={size}:rate=25:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
        "-c:v", vcodec, "-pix_fmt", "yuv420p", "-g", "25",
    ]  # fmt: skip
    if vcodec == "libx264":
        argv += ["-preset", "ultrafast"]
    if vcodec == "libx265":
        argv += ["-preset", "ultrafast", "-x265-params", "log-level=error"]
    argv += ["-c:a", acodec, "-shortest"]
    if fmt:
        argv += ["-f", fmt]
    argv.append(str(path))
    subprocess.run(argv, check=True, timeout=120)
    return path
