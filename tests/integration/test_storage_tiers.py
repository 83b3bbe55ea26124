"""Storage tiers on real loop devices (root): detect, confirm + format, mount through mount
units, placement, migration to a cold tier past the watermark, degraded mode and recovery.

The host seam sees the loop devices through a fake root (``Host(tmp_path/"root")``):
``/sys/block/nvme0n1`` … with size/model/serial and ``/dev/nvme0n1`` … as real block nodes
(mknod with each loop device's major:minor), as udev would show real drives. ``mkfs``, ``mount``
and ``blkid`` act on those nodes, i.e. on the real loop devices."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from sokoul_appliance.bus import EventBus
from sokoul_appliance.events import ItemPlayed, StorageDegraded, StorageRecovered
from sokoul_appliance.host import Host
from sokoul_appliance.storage import FormatRefused, StorageConfig, StorageManager
from sokoul_appliance.storage.formatting import current_drives
from sokoul_appliance.storage.placement import StorageUnavailable
from sokoul_appliance.store.database import Store
from sokoul_appliance.store.settings import Settings
from tests.storage_doubles import LoopDisk, MountingUnitControl, run, unmount_all_under, wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("losetup") or not shutil.which("mkfs.ext4"),
    reason="needs root, losetup and mkfs.ext4",
)

SYSTEM_MODEL, MEDIA_MODEL, COLD_MODEL = "Samsung SSD 980 PRO 1TB", "WD Blue SN580 2TB", "USB HDD"


class Board:
    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "root"
        self.work = tmp / "images"
        self.root.mkdir()
        self.work.mkdir()
        self.host = Host(self.root)
        self.disks: list[LoopDisk] = []

    def disk(self, name: str, size_mb: int, model: str, serial: str) -> LoopDisk:
        d = LoopDisk(self.root, self.work, name, size_mb, model, serial)
        self.disks.append(d)
        return d

    def system_drive(self) -> LoopDisk:
        """nvme0n1 holds / (per /proc/mounts); its filesystem carries /var/lib/sokoul."""
        disk = self.disk("nvme0n1", 64, SYSTEM_MODEL, "S5GXNF0R000001")
        (self.root / "proc").mkdir()
        (self.root / "proc/mounts").write_text("/dev/nvme0n1 / ext4 rw,relatime 0 0\n")
        run("mkfs.ext4", "-q", "-F", "-L", "sokoul-root", disk.node)
        state = self.root / "var/lib/sokoul"
        state.mkdir(parents=True)
        run("mount", disk.node, str(state))
        return disk

    def cleanup(self) -> None:
        unmount_all_under(self.root)
        for d in self.disks:
            d.cleanup()


@pytest.fixture
def board(tmp_path: Path) -> Iterator[Board]:
    b = Board(tmp_path)
    try:
        yield b
    finally:
        b.cleanup()


class Rig:
    def __init__(self, board: Board, **config: object) -> None:
        self.board = board
        self.bus = EventBus()
        self.store = Store(board.host.path("/var/lib/sokoul/sokoul.db"))
        self.settings = Settings(self.store, self.bus)
        self.registry = CollectorRegistry()
        self.units = MountingUnitControl(board.host)
        cfg = {"monitor_interval": 0.2, "tiering_interval": 3600.0, "health_interval": 3600.0}
        cfg.update(config)
        self.manager = StorageManager(
            board.host,
            self.store,
            self.settings,
            self.bus,
            self.registry,
            self.units,
            StorageConfig(**cfg),  # type: ignore[arg-type]
        )

    async def start(self) -> None:
        await self.store.start()
        await self.settings.load()
        await self.manager.start()

    async def stop(self) -> None:
        await self.manager.stop()
        await self.store.stop()

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def write_random(path: Path, size: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def free_ratio(path: Path) -> float:
    st = os.statvfs(path)
    return st.f_bavail / st.f_blocks


@pytest.fixture
async def rig(board: Board) -> AsyncIterator[Rig]:
    board.system_drive()
    r = Rig(board)
    try:
        yield r
    finally:
        await r.stop()


async def test_tiers_end_to_end(board: Board, rig: Rig) -> None:
    media = board.disk("nvme1n1", 96, MEDIA_MODEL, "WD-MEDIA-0001")
    cold = board.disk("sda", 128, COLD_MODEL, "USB-COLD-0001")
    host, root = board.host, board.root

    # detect: three drives, the system one flagged
    drives = {d.name: d for d in await current_drives(host)}
    assert sorted(drives) == ["nvme0n1", "nvme1n1", "sda"]
    assert drives["nvme0n1"].holds_system and not drives["nvme1n1"].holds_system
    assert drives["nvme1n1"].confirm_text == media.confirm_text
    assert drives["nvme1n1"].size_bytes == 96 << 20

    # the wizard's plan, confirmed for the media drive → formatted and mounted on start
    await rig.store.start()
    await rig.settings.load()
    await rig.settings.update(
        {
            "storage.plan": {
                "system_drive": "nvme0n1",
                "media_drive": "nvme1n1",
                "format_media": True,
                "confirmed": {"model": MEDIA_MODEL, "serial": "WD-MEDIA-0001"},
            },
            # the household's tiering rules (Settings): keep 15 % free, move anything idle
            "storage.free_watermark_percent": 15,
            "storage.cold_after_days": 0,
        }
    )
    await rig.manager.start()
    assert rig.manager.snapshot()["rules"] == {
        "free_watermark": 0.15,
        "min_idle_days": 0.0,
        "cleanup_watched_days": None,
    }
    await wait_for(lambda: rig.manager.available("media"))
    uuid = run("blkid", "-c", "/dev/null", "-p", "-s", "UUID", "-o", "value", media.node)
    assert run("blkid", "-c", "/dev/null", "-p", "-s", "LABEL", "-o", "value", media.node) == (
        "sokoul-media"
    )
    unit = (root / "etc/systemd/system/srv-media.mount").read_text()
    assert f"What=/dev/disk/by-uuid/{uuid}\n" in unit and "Where=/srv/media\n" in unit
    assert os.readlink(root / "etc/systemd/system/local-fs.target.wants/srv-media.mount") == (
        "../srv-media.mount"
    )
    assert ("start", "srv-media.mount") in rig.units.calls
    assert os.path.ismount(root / "srv/media")
    assert os.stat(root / "srv/media").st_dev == os.stat(media.node).st_rdev
    state, detail = rig.manager.status()
    assert state == "ok" and detail.startswith("Media drive nvme1n1 at /srv/media, ")
    assert " GiB free of " in detail

    # the system drive and a wrong confirmation are refused; the cold drive's bytes unchanged
    with pytest.raises(FormatRefused, match="running system"):
        await rig.manager.format_drive("nvme0n1", "cold", f"{SYSTEM_MODEL} S5GXNF0R000001")
    before = cold.sha256()
    with pytest.raises(FormatRefused, match="does not match"):
        await rig.manager.format_drive("sda", "cold", f"{COLD_MODEL} USB-COLD-0002")
    assert cold.sha256() == before
    # a slow mount job (several monitor passes long): the new drive is not reported as
    # failing meanwhile, nor unmounted and remounted by a recovery attempt
    rig.units.start_delay = 1.0
    await rig.manager.format_drive("sda", "cold", cold.confirm_text)
    rig.units.start_delay = 0.0
    assert rig.manager.available("cold")
    assert os.path.ismount(root / "srv/cold")
    await asyncio.sleep(0.5)  # a couple more monitor passes
    assert ("stop", "srv-cold.mount") not in rig.units.calls
    assert not [a for a in rig.manager.snapshot()["last_actions"] if a["action"] == "degraded"]
    assert os.path.ismount(root / "srv/cold")

    # placement: a download lands on the media filesystem
    downloads = rig.manager.downloads_dir()
    assert downloads == "/srv/media/downloads"
    dl = host.path(downloads) / "ubuntu.iso"
    dl_sha = await asyncio.to_thread(write_random, dl, 4 << 20)
    assert os.stat(dl).st_dev == os.stat(media.node).st_rdev

    # fill the library past the 15 % watermark, in the library's own layout (one folder a
    # film under Movies/: each film is a tiering item); items watched in order 0, 1, 2, …
    library = host.path(rig.manager.library_dir())
    items: dict[str, str] = {}
    n = 0
    while free_ratio(root / "srv/media") >= 0.15:
        item = f"library/Movies/Film {n:02d} (20{n:02d})"
        items[item] = await asyncio.to_thread(
            write_random, library / item.removeprefix("library/") / "film.mkv", 8 << 20
        )
        await rig.manager.record_watched(item, 1_000_000 + n)
        n += 1
    assert n >= 5 and free_ratio(root / "srv/media") < 0.15
    moved = await rig.manager.rebalance()
    assert moved, "nothing moved although free space is below the watermark"
    assert free_ratio(root / "srv/media") >= 0.15
    order = list(items)
    assert [m.item for m in moved] == order[: len(moved)]  # oldest watched first
    for m in moved:
        cold_file = root / "srv/cold" / m.item / "film.mkv"
        assert sha256(cold_file) == items[m.item]
        assert not (root / "srv/media" / m.item).exists()
        assert os.stat(cold_file).st_dev == os.stat(cold.node).st_rdev
    for item in order[len(moved) :]:
        assert sha256(root / "srv/media" / item / "film.mkv") == items[item]
    assert rig.metric("sokoul_storage_migrated_bytes_total", direction="to_cold") == sum(
        m.size_bytes for m in moved
    )
    assert not list((root / "srv/cold/library").glob("**/.sokoul-migrating-*"))
    assert (root / "srv/media/library/Movies").is_dir()  # films moved, not the category

    # back on demand
    back = await rig.manager.recall(moved[0].item)
    assert sha256(root / "srv/media" / back.item / "film.mkv") == items[back.item]
    assert not (root / "srv/cold" / back.item).exists()

    # a film played (the stream room's ItemPlayed) is watched now, on either tier; played from
    # cold it comes back by itself when it fits on media above the watermark, else stays
    async def watched(item: str) -> tuple[str, float]:
        row = await rig.store.fetchone(
            "SELECT tier, last_watched FROM storage_items WHERE item = ?", (item,)
        )
        return (row["tier"], row["last_watched"]) if row else ("", 0.0)

    def acted(action: str, item: str) -> bool:
        return any(
            a["action"] == action and item in a["detail"]
            for a in rig.manager.snapshot()["last_actions"]
        )

    on_media, on_cold, fits = order[-1], order[-2], order[-3]
    assert fits not in [m.item for m in moved]
    _, failed = await rig.manager.migrator.move_many([on_cold, fits], "to_cold")
    assert not failed
    rig.bus.publish(ItemPlayed("it-m", f"/srv/media/{on_media}/film.mkv"))
    await rig.settings.update({"storage.free_watermark_percent": 90})
    rig.bus.publish(ItemPlayed("it-c", f"/srv/cold/{on_cold}/film.mkv"))
    await wait_for(lambda: acted("kept on cold storage", on_cold))
    assert (await watched(on_cold))[0] == "cold" and (await watched(on_cold))[1] > 1e9
    assert (await watched(on_media))[0] == "media" and (await watched(on_media))[1] > 1e9
    assert (root / "srv/cold" / on_cold / "film.mkv").exists()
    await rig.settings.update({"storage.free_watermark_percent": 1})
    rig.bus.publish(ItemPlayed("it-f", f"/srv/cold/{fits}/film.mkv"))
    await wait_for(lambda: (root / "srv/media" / fits / "film.mkv").exists())
    await wait_for(lambda: not (root / "srv/cold" / fits).exists())
    await wait_for(lambda: not rig.manager._jobs)  # the move's journal is written last
    assert sha256(root / "srv/media" / fits / "film.mkv") == items[fits]
    assert (await watched(fits))[0] == "media"
    await rig.settings.update({"storage.free_watermark_percent": 15})

    # metrics: real usage; no NVMe smart log on this machine → wear/temperature absent
    await rig.manager.wait_checked()
    free = rig.metric("sokoul_storage_free_bytes", role="media")
    assert free is not None and free > 0
    assert rig.metric("sokoul_storage_used_bytes", role="cold") is not None
    await rig.manager.refresh_health()
    assert rig.metric("sokoul_drive_wear_ratio", drive="nvme1n1") is None
    assert rig.metric("sokoul_drive_temperature_celsius", drive="nvme1n1") is None
    snap = rig.manager.snapshot()
    assert [d["role"] for d in snap["drives"]] == ["system", "media", "cold"]
    assert snap["drives"][1]["free_bytes"] > 0 and snap["drives"][1]["state"] == "ok"

    # degraded: the media drive disappears
    sentinel = host.path("/var/lib/sokoul/sentinel.bin")
    sentinel_sha = await asyncio.to_thread(write_random, sentinel, 1 << 20)
    with rig.bus.subscribe(StorageDegraded, StorageRecovered) as sub:
        run("umount", "-l", str(root / "srv/media"))
        media.detach()
        event = await asyncio.wait_for(sub.get(), 5)
        assert event == StorageDegraded("media", event.reason)
        assert "Downloads are paused" in event.reason
        state, detail = rig.manager.status()
        assert state == "degraded" and "media drive" in detail
        with pytest.raises(StorageUnavailable):
            rig.manager.downloads_dir()
        assert rig.metric("sokoul_storage_free_bytes", role="media") is None
        assert rig.metric("sokoul_storage_degraded", role="media") == 1
        ended = [(t.get_name(), t.exception()) for t in rig.manager._tasks if t.done()]
        assert ended == []  # the manager is alive (every task still running)
        await rig.manager.wait_checked()
        assert sha256(sentinel) == sentinel_sha
        assert await rig.store.scalar("SELECT COUNT(*) FROM storage_drives") == 2
        assert rig.manager.snapshot()["drives"][1]["state"] == "degraded"
        assert rig.manager.available("cold")

        # recovered: the drive is back (maybe on another loop device) → remounted
        media.attach()
        event = await asyncio.wait_for(sub.get(), 10)
        assert event == StorageRecovered("media")
    assert os.path.ismount(root / "srv/media")
    assert os.stat(root / "srv/media").st_dev == os.stat(media.node).st_rdev
    assert sha256(dl) == dl_sha
    assert rig.manager.status()[0] == "ok"
    assert rig.manager.downloads_dir() == "/srv/media/downloads"
    actions = [a["action"] for a in rig.manager.snapshot()["last_actions"]]
    assert "degraded" in actions and "recovered" in actions


async def test_plan_with_wrong_confirmation_formats_nothing(board: Board, rig: Rig) -> None:
    media = board.disk("nvme1n1", 64, MEDIA_MODEL, "WD-MEDIA-0001")
    before = media.sha256()
    await rig.store.start()
    await rig.settings.load()
    await rig.manager.start()
    assert rig.manager.status()[0] == "not_configured"
    # the wizard (after start) confirmed another drive's serial (a swapped drive since)
    await rig.settings.update(
        {
            "storage.plan": {
                "system_drive": "nvme0n1",
                "media_drive": "nvme1n1",
                "format_media": True,
                "confirmed": {"model": MEDIA_MODEL, "serial": "WD-MEDIA-9999"},
            }
        }
    )
    await wait_for(lambda: rig.manager.status()[0] == "error")
    assert "not the drive you confirmed" in rig.manager.status()[1]
    assert media.sha256() == before
    assert not (board.root / "etc/systemd/system/srv-media.mount").exists()
    assert rig.units.calls == []
    with pytest.raises(StorageUnavailable):
        rig.manager.downloads_dir()
