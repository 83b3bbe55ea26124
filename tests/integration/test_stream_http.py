"""The streamer on a real aiohttp server on 127.0.0.1 over a generated, scanned library:
byte-exact ranges, HEAD, 416, DLNA headers, refusal of paths, transcodes that ffprobe accepts,
time-seek, subtitles, growing files, metrics."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from sokoul_appliance.bus import EventBus
from sokoul_appliance.host import Host
from sokoul_appliance.library import LibraryItem, LibraryManager
from sokoul_appliance.store.database import Store
from sokoul_appliance.stream import SourceRegistry, StreamService
from tests.media_samples import SRT, make_video, need_ffmpeg

LIB = "/srv/media/library"
SAMSUNG_UA = "SEC_HHP_[TV] Samsung Q7 Series (55)/1.0"
LG_UA = "Linux/3.10.19-32.afro.4 UPnP/1.0 LGE WebOS TV LGE_DLNA_SDK/1.6.0 DLNADOC/1.50"


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    need_ffmpeg()
    d = tmp_path_factory.mktemp("stream-samples")
    mp4 = make_video(d / "a.mp4", seconds=3.0)
    (d / "s.srt").write_text(SRT)
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(mp4),
         "-i", str(d / "s.srt"), "-map", "0", "-map", "1", "-c", "copy", "-c:s", "srt",
         "-metadata:s:s:0", "language=fre", str(d / "embedded.mkv")],
        check=True, timeout=60,
    )  # fmt: skip
    return {
        "mp4": mp4,
        "hevc": make_video(d / "b.mkv", seconds=8.0, vcodec="libx265"),
        "embedded": d / "embedded.mkv",
    }


@dataclass
class Rig:
    base: str
    http: aiohttp.ClientSession
    lib: LibraryManager
    service: StreamService
    registry: CollectorRegistry
    movie: LibraryItem
    hevc: LibraryItem
    movie_file: Path


@pytest.fixture
async def rig(tmp_path: Path, samples: dict[str, Path]) -> AsyncIterator[Rig]:
    root = tmp_path / "root"
    lib_dir = root / LIB.lstrip("/")
    movie_file = lib_dir / "Movies/Inception (2010)/Inception (2010).mp4"
    movie_file.parent.mkdir(parents=True)
    shutil.copyfile(samples["mp4"], movie_file)
    (movie_file.parent / "Inception (2010).en.srt").write_text(SRT)
    hevc_file = lib_dir / "Shows/Severance/Season 02/Severance - S02E10.mkv"
    hevc_file.parent.mkdir(parents=True)
    shutil.copyfile(samples["hevc"], hevc_file)
    (tmp_path / "secret.txt").write_text("not for you")
    heat = lib_dir / "Movies/Heat (1995)/Heat (1995).mkv"
    heat.parent.mkdir(parents=True)
    shutil.copyfile(samples["embedded"], heat)

    store = Store(tmp_path / "state/sokoul.db")
    await store.start()
    registry = CollectorRegistry()
    host = Host(root)
    lib = LibraryManager(host, store, EventBus(), registry, roots=(LIB,))
    await lib.scan()
    bus = EventBus()
    service = StreamService(host, lib, registry, sources=SourceRegistry(), bus=bus)
    await service.start()
    app = web.Application()
    app.add_routes(service.routes())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    http = aiohttp.ClientSession()
    movies = (await lib.items(kind="movie", query="inception"))[1]
    episodes = (await lib.items(kind="episode"))[1]
    try:
        yield Rig(
            f"http://127.0.0.1:{port}",
            http,
            lib,
            service,
            registry,
            movies[0],
            episodes[0],
            movie_file,
        )
    finally:
        await http.close()
        await service.stop()
        await runner.cleanup()
        await store.stop()


def _metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def _settled(registry: CollectorRegistry, name: str, want: float, **labels: str) -> float:
    """The server counts just after the client has the last byte: wait a moment for it."""
    for _ in range(100):
        if _metric(registry, name, **labels) == want:
            break
        await asyncio.sleep(0.02)
    return _metric(registry, name, **labels)


@pytest.fixture(autouse=True)
def _no_server_errors(caplog: pytest.LogCaptureFixture):  # type: ignore[no-untyped-def]
    """aiohttp logs a handler's exception after the answer went out: none may appear."""
    yield
    records = [*caplog.get_records("call"), *caplog.get_records("teardown")]
    errors = [r for r in records if r.levelname == "ERROR" and "aiohttp" in r.name]
    assert errors == [], [r.getMessage() for r in errors]


async def test_full_get_and_head_are_the_file(rig: Rig) -> None:
    data = rig.movie_file.read_bytes()
    url = f"{rig.base}/stream/{rig.movie.id}"
    async with rig.http.get(url) as r:
        assert r.status == 200
        body = await r.read()
        assert r.headers["Content-Type"] == "video/mp4"
        assert r.headers["Accept-Ranges"] == "bytes"
        assert r.headers["transferMode.dlna.org"] == "Streaming"
        features = r.headers["contentFeatures.dlna.org"]
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert features == (
        "DLNA.ORG_PN=AVC_MP4_BL_CIF15_AAC_520;DLNA.ORG_OP=01;DLNA.ORG_CI=0;"
        "DLNA.ORG_FLAGS=01700000000000000000000000000000"
    )
    async with rig.http.head(url) as r:
        assert r.status == 200
        assert int(r.headers["Content-Length"]) == len(data)
        assert await r.read() == b""
    assert await _settled(
        rig.registry, "sokoul_stream_bytes_total", len(data), mode="direct", client="generic"
    ) == len(data)
    assert (
        _metric(rig.registry, "sokoul_stream_time_to_first_byte_seconds_count", mode="direct") == 2
    )


async def test_a_viewing_is_announced_once_for_tiering(rig: Rig) -> None:
    """The first GET of a viewing publishes ItemPlayed (the storage room's 'last watched');
    a HEAD and the further range requests of the same viewing do not."""
    from sokoul_appliance.events import ItemPlayed

    url = f"{rig.base}/stream/{rig.movie.id}"
    assert rig.service.bus is not None
    with rig.service.bus.subscribe(ItemPlayed) as sub:
        async with rig.http.head(url) as r:
            assert r.status == 200
        assert sub.queue.empty()
        for start in (0, 1000, 5000):
            async with rig.http.get(url, headers={"Range": f"bytes={start}-{start + 99}"}) as r:
                assert r.status == 206
                await r.read()
        assert sub.queue.get_nowait() == ItemPlayed(rig.movie.id, rig.movie.appliance_path)
        assert rig.movie.appliance_path.startswith("/srv/media/library/Movies/Inception (2010)/")
        assert sub.queue.empty()


async def test_ranges_reassemble_to_the_exact_file(rig: Rig) -> None:
    data = rig.movie_file.read_bytes()
    size = len(data)
    url = f"{rig.base}/stream/{rig.movie.id}"
    step = 7777
    parts = []
    for start in range(0, size, step):
        end = min(start + step, size) - 1
        async with rig.http.get(url, headers={"Range": f"bytes={start}-{end}"}) as r:
            assert r.status == 206
            assert r.headers["Content-Range"] == f"bytes {start}-{end}/{size}"
            parts.append(await r.read())
    assert hashlib.sha256(b"".join(parts)).hexdigest() == hashlib.sha256(data).hexdigest()

    async with rig.http.get(url, headers={"Range": "bytes=-500"}) as r:
        assert r.status == 206
        assert await r.read() == data[-500:]
        assert r.headers["Content-Range"] == f"bytes {size - 500}-{size - 1}/{size}"
    async with rig.http.get(url, headers={"Range": f"bytes={size - 10}-"}) as r:
        assert r.status == 206 and await r.read() == data[-10:]
    async with rig.http.get(url, headers={"Range": f"bytes=100-{size * 2}"}) as r:
        assert r.status == 206 and await r.read() == data[100:]
    for bad in (f"bytes={size}-", f"bytes={size + 5}-{size + 10}"):
        async with rig.http.get(url, headers={"Range": bad}) as r:
            assert r.status == 416, bad
            assert r.headers["Content-Range"] == f"bytes */{size}"


async def test_paths_and_unknown_ids_are_refused(rig: Rig) -> None:
    for path in (
        "/stream/..%2F..%2Fsecret.txt",
        "/stream/%2e%2e%2fsecret.txt",
        "/stream/it-..",
        "/stream/it-0123456789abcdef",
        "/stream/" + rig.movie.rel_path.replace("/", "%2F"),
        "/stream/sh-0123456789abcdef",
        "/stream/dl-0123456789abcdef",
        f"/subtitles/{rig.movie.id}/..%2F..%2Fsecret.txt",
        f"/subtitles/{rig.movie.id}/9.srt",
        f"/subtitles/{rig.movie.id}/0.ass",
    ):
        async with rig.http.get(rig.base + path) as r:
            assert r.status == 404, path
            assert b"not for you" not in await r.read()
    async with rig.http.get(rig.base + "/stream/../../secret.txt") as r:
        assert r.status == 404

    # a sidecar that is a symlink out of the video's folder is listed but never read
    folder = rig.movie_file.parent
    secret = folder.parents[5] / "secret.txt"
    assert secret.read_text() == "not for you"
    (folder / "Inception (2010).zz.srt").symlink_to(secret)
    await rig.lib.scan()
    item = await rig.lib.item(rig.movie.id)
    assert item is not None
    tracks = item.subtitles()
    assert [t.language for t in tracks] == ["en", "zz"]
    async with rig.http.get(f"{rig.base}/subtitles/{item.id}/1.srt") as r:
        assert r.status == 404
        assert b"not for you" not in await r.read()


async def test_samsung_gets_its_mime_and_caption_info(rig: Rig) -> None:
    headers = {
        "User-Agent": SAMSUNG_UA,
        "getcontentFeatures.dlna.org": "1",
        "getCaptionInfo.sec": "1",
        "transferMode.dlna.org": "Interactive",
    }
    async with rig.http.head(f"{rig.base}/stream/{rig.hevc.id}", headers=headers) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "video/x-mkv"  # direct: Samsung plays MKV/HEVC
        assert r.headers["transferMode.dlna.org"] == "Interactive"
        assert "CaptionInfo.sec" not in r.headers  # this episode has no subtitles
    async with rig.http.head(f"{rig.base}/stream/{rig.movie.id}", headers=headers) as r:
        caption = r.headers["CaptionInfo.sec"]
    assert caption == f"{rig.base}/subtitles/{rig.movie.id}/0.srt"
    async with rig.http.get(caption, headers=headers) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/srt; charset=utf-8"
        assert await r.text() == SRT
    async with rig.http.get(f"{rig.base}/subtitles/{rig.movie.id}/0.vtt") as r:
        text = await r.text()
        assert r.headers["Content-Type"] == "text/vtt; charset=utf-8"
    assert text.startswith("WEBVTT\n\n1\n00:00:00.500 --> 00:00:01.500\nHello from the sidecar")
    # LG gets no CaptionInfo.sec (its profile says so) but the same file
    async with rig.http.head(
        f"{rig.base}/stream/{rig.movie.id}", headers={**headers, "User-Agent": LG_UA}
    ) as r:
        assert "CaptionInfo.sec" not in r.headers


def _ffprobe(data: bytes, tmp: Path) -> dict:  # type: ignore[type-arg]
    path = tmp / "out.ts"
    path.write_bytes(data)
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
         str(path)],
        check=True, capture_output=True, timeout=60,
    ).stdout  # fmt: skip
    return json.loads(out)  # type: ignore[no-any-return]


async def test_hevc_mkv_is_transcoded_for_a_generic_client(rig: Rig, tmp_path: Path) -> None:
    url = f"{rig.base}/stream/{rig.hevc.id}"
    async with rig.http.head(url) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "video/mp2t"
        assert "DLNA.ORG_OP=10;DLNA.ORG_CI=1" in r.headers["contentFeatures.dlna.org"]
        # a transcode names no DLNA profile: its H.264 profile is the encoder's choice
        assert "DLNA.ORG_PN" not in r.headers["contentFeatures.dlna.org"]
        assert "Content-Length" not in r.headers
    async with rig.http.get(url) as r:
        assert r.status == 200
        data = await r.read()
    info = _ffprobe(data, tmp_path)
    assert info["format"]["format_name"] == "mpegts"
    codecs = sorted(s["codec_name"] for s in info["streams"])
    assert codecs == ["aac", "h264"]
    assert 7.0 < float(info["format"]["duration"]) < 9.0
    sent = _metric(rig.registry, "sokoul_stream_bytes_total", mode="transcode", client="generic")
    assert sent == len(data)
    assert (
        _metric(rig.registry, "sokoul_stream_time_to_first_byte_seconds_count", mode="transcode")
        == 1
    )
    for _ in range(100):  # ffmpeg is reaped just after the last chunk went out
        if rig.service.snapshot()["transcodes"]["running"] == 0:
            break
        await asyncio.sleep(0.02)
    assert rig.service.snapshot()["transcodes"]["running"] == 0


async def test_time_seek_starts_near_the_asked_time(rig: Rig, tmp_path: Path) -> None:
    url = f"{rig.base}/stream/{rig.hevc.id}"
    headers = {"TimeSeekRange.dlna.org": "npt=00:00:05.000-"}
    async with rig.http.get(url, headers=headers) as r:
        assert r.status == 200
        d = rig.hevc.duration
        assert d is not None and 7.9 < d < 8.1
        assert r.headers["TimeSeekRange.dlna.org"] == f"npt=5.000-{d:.3f}/{d:.3f}"
        data = await r.read()
    duration = float(_ffprobe(data, tmp_path)["format"]["duration"])
    assert 2.5 < duration < 3.6  # 8 s file from 5 s: about 3 s left
    async with rig.http.get(url, headers={"TimeSeekRange.dlna.org": "npt=2-4"}) as r:
        data = await r.read()
    assert 1.5 < float(_ffprobe(data, tmp_path)["format"]["duration"]) < 2.6
    async with rig.http.get(url, headers={"TimeSeekRange.dlna.org": "npt=30-"}) as r:
        assert r.status == 416
    async with rig.http.get(url, headers={"TimeSeekRange.dlna.org": "bytes=1-"}) as r:
        assert r.status == 400


async def test_a_forced_remux_copies_h264(rig: Rig, tmp_path: Path) -> None:
    async with rig.http.get(f"{rig.base}/stream/{rig.movie.id}?transcode=1") as r:
        assert r.status == 200
        # H.264 copied, AAC in MPEG-TS: no DLNA name (as minidlna: ADTS AAC is not named)
        assert r.headers["contentFeatures.dlna.org"].startswith("DLNA.ORG_OP=10;DLNA.ORG_CI=1")
        data = await r.read()
    info = _ffprobe(data, tmp_path)
    assert info["format"]["format_name"] == "mpegts"
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 320, 240)
    assert _metric(rig.registry, "sokoul_stream_bytes_total", mode="remux", client="generic") == (
        len(data)
    )


async def test_transcode_slots_are_limited(rig: Rig) -> None:
    rig.service._transcodes = asyncio.Semaphore(0)
    async with rig.http.get(f"{rig.base}/stream/{rig.hevc.id}") as r:
        assert r.status == 503
        assert r.headers["Retry-After"] == "10"


class _Growing:
    """A ByteSource whose bytes 'arrive' after a delay past a watermark."""

    def __init__(self, data: bytes, ready: int) -> None:
        self.data = data
        self.ready = ready
        self.name = "Film.2020.mp4"
        self.reads: list[tuple[int, int]] = []

    @property
    def size(self) -> int:
        return len(self.data)

    async def read(self, offset: int, length: int, timeout: float) -> bytes:
        self.reads.append((offset, length))
        if offset + length > self.ready:
            await asyncio.sleep(0.01)
            self.ready = min(len(self.data), self.ready + 100_000)
        return self.data[offset : min(offset + length, self.ready)]


class _Stalled(_Growing):
    async def read(self, offset: int, length: int, timeout: float) -> bytes:
        raise TimeoutError


async def test_files_still_downloading_are_served_through_a_byte_source(rig: Rig) -> None:
    data = bytes(range(256)) * 4000  # 1 MB
    source = _Growing(data, ready=50_000)
    object_id = rig.service.sources.add(source)
    url = f"{rig.base}/stream/{object_id}"
    async with rig.http.get(url) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "video/mp4"
        assert await r.read() == data
    async with rig.http.get(url, headers={"Range": "bytes=700000-700099"}) as r:
        assert r.status == 206
        assert r.headers["Content-Range"] == f"bytes 700000-700099/{len(data)}"
        assert await r.read() == data[700000:700100]
    async with rig.http.get(url, headers={"Range": "bytes=-10"}) as r:
        assert await r.read() == data[-10:]
    async with rig.http.get(url, headers={"Range": f"bytes={len(data)}-"}) as r:
        assert r.status == 416
    async with rig.http.head(url) as r:
        assert int(r.headers["Content-Length"]) == len(data)
    stalled = rig.service.sources.add(_Stalled(data, 0))
    async with rig.http.get(f"{rig.base}/stream/{stalled}") as r:
        assert r.status == 503
    rig.service.sources.remove(object_id)
    async with rig.http.get(url) as r:
        assert r.status == 404
    assert _metric(rig.registry, "sokoul_stream_bytes_total", mode="growing", client="generic") == (
        len(data) + 100 + 10
    )


async def test_an_item_on_an_unmounted_tier_answers_503(rig: Rig) -> None:
    real = rig.movie_file.parents[2]
    real.rename(real.with_name("away"))
    await rig.lib.scan()
    async with rig.http.get(f"{rig.base}/stream/{rig.movie.id}") as r:
        assert r.status == 503


async def test_embedded_text_subtitles_are_read_out(rig: Rig) -> None:
    heat = (await rig.lib.search("heat"))[0]
    assert [(t.n, t.format, t.language, t.source) for t in heat.subtitles()] == [
        (0, "subrip", "fre", "embedded")
    ]
    async with rig.http.get(f"{rig.base}/subtitles/{heat.id}/0.srt") as r:
        assert r.status == 200
        text = await r.text()
    # the muxer may shift the track by the file's start time (here AAC priming, ~23 ms)
    assert re.search(r"^00:00:00,5\d\d --> 00:00:01,5\d\d\nHello from the sidecar$", text, re.M)
    async with rig.http.get(f"{rig.base}/subtitles/{heat.id}/0.vtt") as r:
        assert (await r.text()).startswith("WEBVTT")
    async with rig.http.get(f"{rig.base}/subtitles/{heat.id}/1.srt") as r:
        assert r.status == 404


async def test_conversions_wait_while_heavy_work_is_paused(rig: Rig) -> None:
    from sokoul_appliance.events import PauseHeavyWork, ResumeHeavyWork

    assert rig.service.bus is not None
    rig.service.bus.publish(PauseHeavyWork("TZB0 at 86 °C"))
    for _ in range(50):
        await asyncio.sleep(0.01)
        if rig.service.heavy_paused:
            break
    async with rig.http.get(f"{rig.base}/stream/{rig.hevc.id}") as r:
        assert r.status == 503 and "TZB0 at 86 °C" in await r.text()
    async with rig.http.get(f"{rig.base}/stream/{rig.movie.id}") as r:
        assert r.status == 200  # direct play goes on
    assert rig.service.status()[0] == "degraded"
    rig.service.bus.publish(ResumeHeavyWork("cool again"))
    for _ in range(50):
        await asyncio.sleep(0.01)
        if not rig.service.heavy_paused:
            break
    async with rig.http.get(f"{rig.base}/stream/{rig.hevc.id}") as r:
        assert r.status == 200 and len(await r.read()) > 10_000
