"""Tier migration: a kill -9 in the middle of a copy leaves the source intact and resume()
finishes the move (real ext4 filesystems on loop devices, real SQLite journal)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from sokoul_appliance.host import Host
from sokoul_appliance.storage.migration import MigrationError, MigrationOptions, Migrator
from sokoul_appliance.store.database import Store
from tests.storage_doubles import LoopDisk, run, unmount_all_under

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("losetup"), reason="needs root and losetup"
)
REPO = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from sokoul_appliance.host import Host
    from sokoul_appliance.storage.migration import MigrationOptions, Migrator
    from sokoul_appliance.store.database import Store

    async def main() -> None:
        store = Store(Path(sys.argv[2]))
        await store.start()
        options = MigrationOptions(chunk_bytes=1 << 20, rate_limit_bytes_per_s=4 << 20)
        await Migrator(Host(Path(sys.argv[1])), store, options).move(sys.argv[3], "to_cold")

    asyncio.run(main())
    """
)


@pytest.fixture
def tiers(tmp_path: Path) -> Iterator[Host]:
    root, work = tmp_path / "root", tmp_path / "images"
    root.mkdir()
    work.mkdir()
    disks = []
    try:
        for name, where in (("nvme1n1", "srv/media"), ("sda", "srv/cold")):
            disk = LoopDisk(root, work, name, 64, "Test", name.upper())
            disks.append(disk)
            run("mkfs.ext4", "-q", "-F", disk.node)
            (root / where).mkdir(parents=True)
            run("mount", disk.node, str(root / where))
        yield Host(root)
    finally:
        unmount_all_under(root)
        for d in disks:
            d.cleanup()


def tree_hashes(top: Path) -> dict[str, str]:
    return {
        str(p.relative_to(top)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(top.rglob("*"))
        if p.is_file()
    }


def journal(db: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT state, copied_bytes FROM storage_migrations").fetchall()


async def test_kill_mid_copy_keeps_source_and_resumes(tiers: Host, tmp_path: Path) -> None:
    item = "library/Big Film (2024)"
    src = tiers.path(f"/srv/media/{item}")
    (src / "Subs").mkdir(parents=True)
    (src / "film.mkv").write_bytes(os.urandom(24 << 20))
    (src / "Subs/en.srt").write_bytes(os.urandom(3000))
    (src / "film.nfo").write_text("<movie/>")
    want = tree_hashes(src)
    db = tmp_path / "state" / "sokoul.db"
    db.parent.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tiers.root), str(db), item], env=env)
    try:
        container = tiers.path("/srv/cold/library/.sokoul-migrating-1")
        part = container / "Big Film (2024)" / "film.mkv"
        for _ in range(300):  # until the copy is well under way (about 2 s at 4 MiB/s)
            if part.exists() and part.stat().st_size >= 6 << 20:
                break
            assert child.poll() is None, "the migration ended before it could be interrupted"
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the copy never started")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    # killed mid-copy: source untouched, nothing at the final place, journal says copying
    assert tree_hashes(src) == want
    assert not tiers.path(f"/srv/cold/{item}").exists()
    assert 6 << 20 <= part.stat().st_size < 24 << 20
    assert [s for s, _ in journal(db)] == ["copying"]

    store = Store(db)
    await store.start()
    try:
        done = await Migrator(tiers, store).resume()
    finally:
        await store.stop()
    assert [(d.item, d.direction, d.files) for d in done] == [(item, "to_cold", 3)]
    assert done[0].size_bytes == (24 << 20) + 3000 + len("<movie/>")
    assert tree_hashes(tiers.path(f"/srv/cold/{item}")) == want
    assert not src.exists()
    assert not container.exists()
    assert journal(db) == [("done", done[0].size_bytes)]


async def test_existing_destination_refuses_and_keeps_source(tiers: Host, tmp_path: Path) -> None:
    item = "library/Clash"
    src = tiers.path(f"/srv/media/{item}")
    src.mkdir(parents=True)
    (src / "a.mkv").write_bytes(os.urandom(1 << 20))
    want = tree_hashes(src)
    tiers.path(f"/srv/cold/{item}").mkdir(parents=True)
    store = Store(tmp_path / "s.db")
    await store.start()
    try:
        migrator = Migrator(tiers, store, MigrationOptions())
        with pytest.raises(MigrationError, match="already exists"):
            await migrator.move(item, "to_cold")
        with pytest.raises(MigrationError, match="not on the media drive"):
            await migrator.move("library/Nothing", "to_cold")
    finally:
        await store.stop()
    assert tree_hashes(src) == want


async def test_cancelled_move_stops_the_copy_and_resumes(tiers: Host, tmp_path: Path) -> None:
    item = "library/film.mkv"
    src = tiers.path(f"/srv/media/{item}")
    src.parent.mkdir(parents=True)
    src.write_bytes(os.urandom(16 << 20))
    want = hashlib.sha256(src.read_bytes()).hexdigest()
    store = Store(tmp_path / "s.db")
    await store.start()
    try:
        slow = Migrator(tiers, store, MigrationOptions(rate_limit_bytes_per_s=8 << 20))
        task = asyncio.create_task(slow.move(item, "to_cold"))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert hashlib.sha256(src.read_bytes()).hexdigest() == want
        assert not tiers.path(f"/srv/cold/{item}").exists()
        done = await Migrator(tiers, store).resume()
        assert [d.item for d in done] == [item]
    finally:
        await store.stop()
    assert hashlib.sha256(tiers.path(f"/srv/cold/{item}").read_bytes()).hexdigest() == want
    assert not src.exists()


async def test_move_many_pipelines_and_skips_a_failing_item(tiers: Host, tmp_path: Path) -> None:
    want: dict[str, dict[str, str]] = {}
    for i in range(4):
        item = tiers.path(f"/srv/media/library/Item {i}")
        item.mkdir(parents=True)
        (item / "big.bin").write_bytes(os.urandom((3 + i) << 20))
        (item / "small.txt").write_bytes(os.urandom(100))
        want[f"library/Item {i}"] = tree_hashes(item)
    tiers.path("/srv/cold/library/Item 2").mkdir(parents=True)  # blocks item 2
    store = Store(tmp_path / "s.db")
    await store.start()
    try:
        moved, errors = await Migrator(tiers, store).move_many(list(want), "to_cold")
        states = await store.fetchall("SELECT item, state FROM storage_migrations ORDER BY id")
    finally:
        await store.stop()
    assert [m.item for m in moved] == ["library/Item 0", "library/Item 1", "library/Item 3"]
    assert len(errors) == 1 and "Item 2 already exists" in str(errors[0])
    for m in moved:
        assert tree_hashes(tiers.path(f"/srv/cold/{m.item}")) == want[m.item]
        assert not tiers.path(f"/srv/media/{m.item}").exists()
    assert tree_hashes(tiers.path("/srv/media/library/Item 2")) == want["library/Item 2"]
    assert [(r["item"], r["state"]) for r in states] == [
        ("library/Item 0", "done"),
        ("library/Item 1", "done"),
        ("library/Item 3", "done"),
    ]
    assert not list(tiers.path("/srv/cold/library").glob(".sokoul-migrating-*"))
