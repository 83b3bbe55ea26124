"""Subtitle text: SRT <-> WebVTT, and text subtitle streams read out of a container by ffmpeg."""

from __future__ import annotations

import re
from pathlib import Path

from sokoul_appliance.host import Host

_SRT_TIME = re.compile(r"(\d{1,2}:\d{2}:\d{2}),(\d{3})")
_VTT_TIME = re.compile(r"(?:(\d{1,2}):)?(\d{2}):(\d{2})\.(\d{3})")


def decode(data: bytes) -> str:
    """Subtitle files come in UTF-8 (with or without BOM) or a legacy 8-bit code page."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def srt_to_vtt(text: str) -> str:
    body = _SRT_TIME.sub(r"\1.\2", text.replace("\r\n", "\n"))
    return "WEBVTT\n\n" + body.lstrip()


def vtt_to_srt(text: str) -> str:
    blocks = re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip())
    cues: list[str] = []
    for block in blocks:
        lines = block.split("\n")
        timing = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if timing is None:
            continue  # the WEBVTT header, NOTE and STYLE blocks

        def srt_time(m: re.Match[str]) -> str:
            h = int(m.group(1) or 0)
            return f"{h:02d}:{m.group(2)}:{m.group(3)},{m.group(4)}"

        start, _, end = lines[timing].partition("-->")
        when = (
            f"{_VTT_TIME.sub(srt_time, start.strip())} --> "
            f"{_VTT_TIME.sub(srt_time, end.strip().split(' ')[0])}"
        )
        cues.append(f"{len(cues) + 1}\n{when}\n" + "\n".join(lines[timing + 1 :]))
    return "\n\n".join(cues) + "\n"


def convert(data: bytes, source_format: str, target_format: str) -> bytes:
    if source_format == target_format:
        return data
    text = decode(data)
    if target_format == "vtt":
        return srt_to_vtt(text).encode()
    return vtt_to_srt(text).encode()


async def extract_embedded(
    host: Host, path: Path, stream_index: int, target_format: str, timeout: float = 60.0
) -> bytes:
    """One text subtitle stream of a container, as SRT or WebVTT (ffmpeg, with a timeout)."""
    muxer = "webvtt" if target_format == "vtt" else "srt"
    result = await host.run(
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
        "-i", f"file:{path}", "-map", f"0:{stream_index}", "-f", muxer, "pipe:1",
        timeout=timeout,
    )  # fmt: skip
    return result.stdout.encode()
