"""Stream-while-downloading over HTTP: a torrent's file, still downloading from a real aria2c
seeder on loopback (throttled), served by the streamer at /stream/dl-… through the torrent
manager's ByteSource. HEAD gives the full size, a range of the last MiB comes back byte-exact
before the download completes, bytes that cannot arrive give 503 (never garbage), and the time
from "add" to the first playable byte is measured.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from sokoul_appliance.bus import EventBus
from sokoul_appliance.host import Host
from sokoul_appliance.library import LibraryManager
from sokoul_appliance.store.database import Store
from sokoul_appliance.stream import StreamService
from sokoul_appliance.torrent.manager import TorrentConfig, TorrentManager
from tests.integration.test_torrent_engine import (
    FILES,
    Aria2Seeder,
    Content,
    free_port,
)

pytest.importorskip("libtorrent")
pytestmark = [
    pytest.mark.skipif(shutil.which("aria2c") is None, reason="needs aria2c (apt)"),
    pytest.mark.timeout(180),
]
MiB = 1024 * 1024
VIDEO = "Show/video.mkv"


class NoSettings:
    def get(self, key: str) -> Any:
        raise KeyError(key)


class NoStorage:
    def downloads_dir(self) -> str:
        return "/srv/media/downloads"

    async def mark_done_seeding(self, torrent: str, paths: list[str]) -> None:
        return None


@dataclass
class Rig:
    base: str
    http: aiohttp.ClientSession
    manager: TorrentManager
    service: StreamService
    registry: CollectorRegistry


@pytest.fixture
async def rig(work: Path) -> AsyncIterator[Rig]:
    root = work / "root"
    root.mkdir()
    host = Host(root)
    registry = CollectorRegistry()
    bus = EventBus()
    config = TorrentConfig(state_dir=work / "torrent", listen_port=free_port())
    manager = TorrentManager(host, bus, NoSettings(), registry, NoStorage(), config)
    store = Store(work / "state/sokoul.db")
    await store.start()
    lib = LibraryManager(host, store, bus, registry, roots=("/srv/media/library",))
    service = StreamService(host, lib, registry, sources=manager.sources, bus=bus)
    await manager.start()
    await service.start()
    app = web.Application()
    app.add_routes(service.routes())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    http = aiohttp.ClientSession()
    try:
        await manager.wait_ready(30)
        yield Rig(f"http://127.0.0.1:{port}", http, manager, service, registry)
    finally:
        await http.close()
        await runner.cleanup()
        await service.stop()
        await manager.stop()
        await store.stop()


async def progress(m: TorrentManager, tid: str) -> float:
    st = await m.engine_request("status", torrent=tid)
    return float(st["progress"])


async def test_a_downloading_file_streams_over_http(rig: Rig, content: Content) -> None:
    m = rig.manager
    movie = (content.root / VIDEO).read_bytes()
    size = len(movie)
    seeder = Aria2Seeder(content, upload_limit="3M")  # ~13 s for the whole torrent
    try:
        t0 = time.monotonic()
        tid = await m.add(torrent=content.torrent)
        await m.engine_request("connect", torrent=tid, peer=f"127.0.0.1:{seeder.port}")
        play = await m.play(tid)  # the largest file: the movie
        play_s = time.monotonic() - t0
        assert play["name"] == "video.mkv" and play["size"] == size == FILES[VIDEO]
        assert play["stream"] == f"/stream/{play['id']}" and play["id"].startswith("dl-")
        url = rig.base + play["stream"]

        # HEAD needs no bytes: the full size and ranges from the torrent's metadata
        async with rig.http.head(url) as r:
            assert r.status == 200
            assert int(r.headers["Content-Length"]) == size
            assert r.headers["Accept-Ranges"] == "bytes"
            assert r.headers["Content-Type"] == "video/x-matroska"
        async with rig.http.head(url, headers={"Range": f"bytes={size - MiB}-"}) as r:
            assert r.status == 206
            assert r.headers["Content-Range"] == f"bytes {size - MiB}-{size - 1}/{size}"

        async with rig.http.get(url, headers={"Range": "bytes=0-65535"}) as r:
            assert r.status == 206
            first = await r.read()
        first_byte_s = time.monotonic() - t0
        assert first == movie[:65536]

        # the last MiB (MKV cues / MP4 moov at the end): right bytes, download not complete
        async with rig.http.get(url, headers={"Range": f"bytes={size - MiB}-"}) as r:
            assert r.status == 206
            assert r.headers["Content-Range"] == f"bytes {size - MiB}-{size - 1}/{size}"
            tail = await r.read()
        at = await progress(m, tid)
        assert tail == movie[size - MiB :]
        assert at < 1.0, "the download finished before the last MiB was served"

        # a range in the middle, across piece boundaries, once it arrives
        mid = size // 2 + 12345
        async with rig.http.get(url, headers={"Range": f"bytes={mid}-{mid + 700_000}"}) as r:
            assert r.status == 206
            assert await r.read() == movie[mid : mid + 700_001]
        print(
            f"add -> first playable byte over HTTP: {first_byte_s:.2f} s (play at {play_s:.2f} s); "
            f"last MiB served at {at:.0%} downloaded"
        )
        assert first_byte_s < 10.0

        # the whole file, once complete, is the seeder's file
        async with rig.http.get(url) as r:
            assert r.status == 200
            assert int(r.headers["Content-Length"]) == size
            whole = await r.read()
        assert whole == movie
        growing = rig.registry.get_sample_value(
            "sokoul_stream_requests_total", {"mode": "growing", "status": "206"}
        )
        assert growing == 3
        # removed: the stream goes with it
        await m.remove(tid, delete_files=True)
        assert m.sources.get(play["id"]) is None
        async with rig.http.get(url) as r:
            assert r.status == 404
    finally:
        seeder.stop()


async def test_play_twice_reuses_the_stream_and_refuses_bad_files(
    rig: Rig, content: Content
) -> None:
    m = rig.manager
    tid = await m.add(torrent=content.torrent)  # no peer: nothing can arrive
    first = await m.play(tid)
    url = rig.base + first["stream"]
    # a read whose pieces do not come answers 503 after the timeout (never garbage)
    rig.service.read_timeout = 1.5
    async with rig.http.get(url, headers={"Range": "bytes=0-65535"}) as r:
        assert r.status == 503, await r.text()
        assert r.headers["Retry-After"] == "5"
        assert "not downloaded yet" in await r.text()
    # a download in error, or an engine that is down: 503 with the reason
    await m.stop()
    async with rig.http.get(url, headers={"Range": "bytes=0-65535"}) as r:
        assert r.status == 503
        assert "cannot be played now: The torrent engine is not running" in await r.text()
    await m.start()
    await m.wait_ready(30)
    again = await m.play(tid)
    assert again["id"] == first["id"] and len(m.sources) == 1
    files = await m.files(tid)
    notes = next(f for f in files if f["path"] == "Show/notes.txt")
    other = await m.play(tid, notes["index"])
    assert other["id"] != first["id"] and other["size"] == FILES["Show/notes.txt"]
    assert len(m.sources) == 2
    from sokoul_appliance.torrent.client import EngineError

    with pytest.raises(EngineError, match="no file number 99"):
        await m.play(tid, 99)
    await m.remove(tid)
    assert len(m.sources) == 0
    await asyncio.sleep(0)
