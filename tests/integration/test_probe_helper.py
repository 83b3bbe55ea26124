"""The probe helper (library/probe_worker.py): a real helper process running real ffprobes,
answering exactly what probe_file answers, started once, started again after it died, and
ended by close()."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import pytest

from sokoul_appliance.host import Host
from sokoul_appliance.library.probe import ProbeError, probe_file
from sokoul_appliance.library.probe_worker import ProbeHelper, ProbeHelperError
from tests.media_samples import make_video, need_ffmpeg

pytestmark = pytest.mark.integration


async def test_probes_through_one_helper_as_ffprobe_answers(tmp_path: Path) -> None:
    need_ffmpeg()
    videos = [
        make_video(tmp_path / "a.mkv"),
        make_video(tmp_path / "b.mp4", size="640x360"),
        make_video(tmp_path / "c.ts", acodec="ac3"),
    ]
    junk = tmp_path / "notes.mkv"
    junk.write_text("not a video")
    host = Host(Path("/"))
    marker = tmp_path / "argv"
    # the prefix is what starts the helper (on the appliance: systemd-run into the slice)
    helper = ProbeHelper(lambda: ("sh", "-c", f'echo "$@" > {marker}; exec "$@"', "sh"))
    fifo = tmp_path / "waiting.ts"
    try:
        got = await asyncio.gather(*(helper.probe(host, v) for v in videos))
        assert got == [await probe_file(host, v) for v in videos]
        assert got[2].container == "mpegts" and got[2].ts_packet_size == 188
        assert helper.starts == 1 and helper.pid is not None
        assert marker.read_text().split()[1:] == ["-m", "sokoul_appliance.library.probe_worker"]
        # a file ffprobe cannot read: the same ProbeError as a direct probe
        with pytest.raises(ProbeError) as direct:
            await probe_file(host, junk)
        with pytest.raises(ProbeError) as through:
            await helper.probe(host, junk)

        # (the same text but for the addresses in ffprobe's log prefix: "[matroska @ 0x…]")
        def text(e: pytest.ExceptionInfo[ProbeError]) -> str:
            return re.sub(r"0x[0-9a-f]+", "0x…", str(e.value))

        assert text(through) == text(direct) and "ffprobe could not read it" in text(direct)
        first = helper.pid

        # the helper dies: the next probe starts another one
        assert first is not None
        os.kill(first, signal.SIGKILL)
        for _ in range(100):
            if helper.pid is None:
                break
            await asyncio.sleep(0.05)
        assert await helper.probe(host, videos[0]) == got[0]
        assert helper.starts == 2 and helper.pid not in (None, first)

        # a probe in flight when the helper dies ends in ProbeHelperError (the caller probes
        # the file another way), never in a ProbeError stored against the file. A FIFO keeps
        # ffprobe waiting for data.
        os.mkfifo(fifo)
        pending = asyncio.create_task(helper.probe(host, fifo))
        await asyncio.sleep(1.0)
        assert not pending.done()
        pid = helper.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ProbeHelperError, match="ended"):
            await asyncio.wait_for(pending, 10)
    finally:
        # also when an assertion failed: let an ffprobe waiting on the FIFO (orphaned or
        # the helper's) see its end and exit, so that no process is left behind
        for _ in range(100 if fifo.exists() else 0):
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                break
            except OSError:  # ENXIO: no reader (yet, or any more)
                await asyncio.sleep(0.05)
        await helper.close()
    assert helper.pid is None


async def test_a_helper_that_cannot_start_says_so(tmp_path: Path) -> None:
    helper = ProbeHelper(lambda: (str(tmp_path / "no-such-program"),))
    with pytest.raises(ProbeHelperError, match="did not start"):
        await helper.probe(Host(Path("/")), tmp_path / "a.mkv")
    assert helper.starts == 1
    await helper.close()


async def test_close_lets_the_helper_answer_first(tmp_path: Path) -> None:
    need_ffmpeg()
    video = make_video(tmp_path / "a.mkv")
    helper = ProbeHelper()
    probe = asyncio.create_task(helper.probe(Host(Path("/")), video))
    await asyncio.sleep(0)  # the request is on its way
    for _ in range(100):
        if helper.pid is not None:
            break
        await asyncio.sleep(0.01)
    proc = helper._proc
    assert proc is not None
    await asyncio.sleep(0.2)
    await helper.close()  # stdin closed: it answers what it was asked, then exits 0
    assert (await probe).video_codec == "h264"
    assert proc.returncode == 0
