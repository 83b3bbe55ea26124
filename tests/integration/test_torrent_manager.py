"""TorrentManager in a supervisor-like setting: it starts and restarts its engine process,
downloads from a loopback seeder, follows the thermal / storage / VPN events, publishes
DownloadFinished and exports its metrics. Simulated board: downloads under the state dir."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from sokoul_appliance.bus import EventBus
from sokoul_appliance.events import (
    DownloadFinished,
    PauseHeavyWork,
    ResumeHeavyWork,
    SettingsChanged,
    StorageDegraded,
    StorageRecovered,
    TorrentLimitRequest,
    VpnPortForwarded,
)
from sokoul_appliance.host import Host
from sokoul_appliance.storage.placement import StorageUnavailable
from sokoul_appliance.torrent.client import EngineError
from sokoul_appliance.torrent.manager import TorrentConfig, TorrentManager
from tests.integration.test_torrent_engine import (
    FILES,
    Content,
    EngineProc,
    free_port,
    sha256,
    start_lt_seeder,
)

pytest.importorskip("libtorrent")
MiB = 1024 * 1024


class DictSettings:
    """Settings as the store has them: a key the store does not know raises KeyError."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.values[key]


class StorageDouble:
    def __init__(self) -> None:
        self.up = True
        self.marked: list[tuple[str, list[str]]] = []

    def downloads_dir(self) -> str:
        if not self.up:
            raise StorageUnavailable("The media drive is not available.")
        return "/srv/media/downloads"

    async def mark_done_seeding(self, torrent: str, paths: list[str]) -> None:
        self.marked.append((torrent, paths))


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.bus = EventBus()
        self.registry = CollectorRegistry()
        self.storage = StorageDouble()
        self.config = TorrentConfig(state_dir=tmp / "torrent", listen_port=free_port())
        self.settings = DictSettings()
        self.manager = TorrentManager(
            Host(tmp / "root"), self.bus, self.settings, self.registry, self.storage, self.config
        )

    def metric(self, name: str) -> float:
        value = self.registry.get_sample_value(name)
        return 0.0 if value is None else value


@pytest.fixture
async def rig(work: Path) -> AsyncIterator[Rig]:
    (work / "root").mkdir()
    r = Rig(work)
    await r.manager.start()
    try:
        await r.manager.wait_ready(30)
        yield r
    finally:
        pid = r.manager.snapshot()["engine"]["pid"]
        await r.manager.stop()
        if pid:  # stop() ended the engine it started
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


@pytest.fixture
def engines() -> Any:
    made: list[EngineProc] = []
    yield made
    for e in made:
        e.stop()


async def until(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def test_download_through_the_manager(
    rig: Rig, content: Content, engines: list[EngineProc], work: Path
) -> None:
    m = rig.manager
    assert m.snapshot()["simulated"] is True
    seeder = await start_lt_seeder(engines, work, content, upload_limit=10 * MiB)
    with rig.bus.subscribe(DownloadFinished) as sub:
        tid = await m.add(torrent=content.torrent)
        await m.engine_request("connect", torrent=tid, peer=f"127.0.0.1:{seeder.port}")
        await until(lambda: any(t["progress"] > 0 for t in m.snapshot()["torrents"]))
        await until(lambda: rig.metric("sokoul_torrent_peers_connected") >= 1)
        # libtorrent's rate is an average: the first sample with progress may still say 0
        await until(
            lambda: (
                (rig.metric("sokoul_download_rate_bytes") or 0) > 0
                or m.snapshot()["torrents"][0]["progress"] == 1.0
            )
        )
        row = m.snapshot()["torrents"][0]
        assert row["id"] == tid and row["name"] == "Show" and row["size"] == sum(FILES.values())
        assert set(row) >= {"progress", "download_rate", "upload_rate", "peers", "eta", "state",
                            "playable"}  # fmt: skip
        finished = await asyncio.wait_for(sub.get(), 60)
    assert finished.torrent == tid and finished.name == "Show"
    downloads = rig.config.state_dir / "downloads"
    assert sorted(finished.paths) == sorted(str(downloads / rel) for rel in FILES)
    for rel in FILES:
        assert sha256(downloads / rel) == content.hashes[rel]
    await until(lambda: m.snapshot()["torrents"][0]["state"] == "seeding")
    assert m.snapshot()["torrents"][0]["playable"] is True
    assert rig.metric("sokoul_download_bytes_total") == sum(FILES.values())
    await until(lambda: rig.registry.get_sample_value(
        "sokoul_download_torrents", {"state": "seeding"}) == 1)  # fmt: skip
    assert rig.registry.get_sample_value("sokoul_download_torrents", {"state": "paused"}) == 0
    # the seeder uploaded to us, we uploaded nothing back: ratio 0 of what we downloaded
    assert rig.metric("sokoul_torrent_seed_ratio") == 0.0
    # a stream read through the manager: the bytes of the file
    files = await m.files(tid)
    video = next(f for f in files if f["path"] == "Show/video.mkv")
    await m.open_stream(tid, video["index"], bitrate=500_000)
    data = await m.read(tid, video["index"], 1000, 4096, timeout=5)
    assert data == (content.root / "Show/video.mkv").read_bytes()[1000:5096]
    await until(lambda: rig.metric("sokoul_stream_buffer_seconds") > 0)
    await m.remove(tid, delete_files=True)
    await until(lambda: m.snapshot()["torrents"] == [])


async def test_thermal_storage_and_vpn_events_reach_the_engine(rig: Rig) -> None:
    m = rig.manager

    def session() -> dict[str, Any]:
        return m.snapshot()["engine"]["session"]

    rig.bus.publish(TorrentLimitRequest(0.25, "TZB0 at 76.0 °C"))
    await until(lambda: session().get("download_limit") == int(50 * MiB * 0.25))
    assert session()["upload_limit"] == int(50 * MiB * 0.25)
    assert "Speed limited to 25%" in m.status()[1]
    rig.bus.publish(TorrentLimitRequest(1.0, ""))
    await until(lambda: session().get("download_limit") == 0)

    rig.bus.publish(PauseHeavyWork("critical temperature"))
    await until(lambda: session().get("paused") is True)
    assert m.status() == ("degraded", "Downloads are paused to cool down: critical temperature")
    rig.bus.publish(ResumeHeavyWork("cooled down"))
    await until(lambda: session().get("paused") is False)

    rig.bus.publish(StorageDegraded("cold", "cold drive gone"))  # not ours: nothing changes
    rig.bus.publish(StorageDegraded("media", "The media drive stopped answering."))
    await until(lambda: session().get("paused") is True)
    assert m.status()[0] == "degraded"
    rig.bus.publish(StorageRecovered("media"))
    await until(lambda: session().get("paused") is False)
    assert m.status()[0] == "ok"

    port = free_port()
    rig.bus.publish(VpnPortForwarded(port))
    await until(lambda: session().get("listen_interfaces") == f"127.0.0.1:{port}")
    await until(lambda: _listening(port), 10)
    assert m.snapshot()["engine"]["listen_port"] == port


async def test_limit_settings_apply_live_and_thermal_takes_the_lower(rig: Rig) -> None:
    m = rig.manager

    def session() -> dict[str, Any]:
        return m.snapshot()["engine"]["session"]

    rig.settings.values.update(
        {"torrent.download_limit": 2 * MiB, "torrent.upload_limit": 300 * 1024}
    )
    rig.bus.publish(SettingsChanged(("torrent.download_limit", "torrent.upload_limit")))
    await until(lambda: session().get("download_limit") == 2 * MiB)
    assert session()["upload_limit"] == 300 * 1024
    limits = m.snapshot()["limits"]
    assert limits["configured"] == {"download": 2 * MiB, "upload": 300 * 1024}
    assert limits["thermal"] is None
    # hot: the thermal limit (1 % of 50 MiB/s = 512 KiB/s) is lower than the download limit
    # but not than the upload limit: each direction gets the lower of the two
    rig.bus.publish(TorrentLimitRequest(0.01, "TZB0 at 80.0 °C"))
    await until(lambda: session().get("download_limit") == int(50 * MiB * 0.01))
    assert session()["upload_limit"] == 300 * 1024
    assert m.snapshot()["limits"]["thermal"] == int(50 * MiB * 0.01)
    # a change while hot still composes
    rig.settings.values["torrent.download_limit"] = 100 * 1024
    rig.bus.publish(SettingsChanged(("torrent.download_limit",)))
    await until(lambda: session().get("download_limit") == 100 * 1024)
    rig.bus.publish(TorrentLimitRequest(1.0, ""))
    rig.settings.values.update({"torrent.download_limit": 0, "torrent.upload_limit": 0})
    rig.bus.publish(SettingsChanged(("torrent.upload_limit",)))
    await until(lambda: session().get("download_limit") == 0 and session()["upload_limit"] == 0)


async def test_engine_killed_is_restarted_with_its_torrents(rig: Rig, content: Content) -> None:
    m = rig.manager
    tid = await m.add(torrent=content.torrent, paused=True)
    await m.engine_request("save")
    pid = m.snapshot()["engine"]["pid"]
    os.kill(pid, signal.SIGKILL)
    await until(lambda: m.snapshot()["engine"]["restarts"] == 1 and m.status()[0] == "ok", 30)
    assert m.snapshot()["engine"]["pid"] != pid
    await until(lambda: [t["id"] for t in m.snapshot()["torrents"]] == [tid])
    assert m.snapshot()["torrents"][0]["state"] == "paused"


async def test_bad_input_is_refused_with_a_clear_error(rig: Rig, content: Content) -> None:
    m = rig.manager
    with pytest.raises(EngineError, match="magnet link cannot be read"):
        await m.add(magnet="magnet:?xt=urn:btih:123")
    with pytest.raises(EngineError, match="damaged"):
        await m.add(torrent=b"garbage")
    assert m.snapshot()["torrents"] == []
    assert m.status()[0] == "ok"


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
