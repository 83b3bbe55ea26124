"""Seeding GC and the optional watched-media cleanup, on plain folders with a real SQLite."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sokoul_appliance.host import Host
from sokoul_appliance.storage.gc import SeedingGC
from sokoul_appliance.store.database import Store


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = Store(tmp_path / "state" / "sokoul.db")
    await s.start()
    yield s
    await s.stop()


async def test_done_seeding_downloads_are_removed_once(tmp_path: Path, store: Store) -> None:
    root = tmp_path / "root"
    downloads = root / "srv/media/downloads"
    (downloads / "Film.2020.1080p/Subs").mkdir(parents=True)
    (downloads / "Film.2020.1080p/film.mkv").write_bytes(b"x" * 1000)
    (downloads / "Film.2020.1080p/Subs/en.srt").write_text("1")
    (downloads / "ep.s01e01.mkv").write_bytes(b"y" * 10)
    (downloads / "still-seeding.mkv").write_bytes(b"z")
    gc = SeedingGC(Host(root), store)
    with pytest.raises(ValueError):
        await gc.mark_done_seeding("t0", ["/srv/media/library/Film"])
    await gc.mark_done_seeding(
        "t1", ["/srv/media/downloads/Film.2020.1080p", "/srv/media/downloads/ep.s01e01.mkv"]
    )
    await gc.mark_done_seeding("t2", ["/srv/media/downloads/already-gone.mkv"])
    assert await gc.pending() == 3
    removed = await gc.collect()
    assert sorted(removed) == [
        "/srv/media/downloads/Film.2020.1080p",
        "/srv/media/downloads/ep.s01e01.mkv",
    ]
    assert sorted(p.name for p in downloads.iterdir()) == ["still-seeding.mkv"]
    assert await gc.pending() == 0
    assert await gc.collect() == []


async def test_watched_cleanup_removes_only_old_watched_library_items(
    tmp_path: Path, store: Store
) -> None:
    root = tmp_path / "root"
    library = root / "srv/media/library"
    now = time.time()
    for name in ("Old", "Recent", "Never"):
        (library / name).mkdir(parents=True)
        (library / name / "f.mkv").write_bytes(b"v")
    async with store.transaction() as db:
        for item, watched in (("Old", now - 40 * 86400), ("Recent", now - 86400), ("Never", None)):
            await db.execute(
                "INSERT INTO storage_items(item, tier, last_watched) VALUES (?, 'media', ?)",
                (f"library/{item}", watched),
            )
    gc = SeedingGC(Host(root), store)
    assert await gc.cleanup_watched(30, now) == ["/srv/media/library/Old"]
    assert sorted(p.name for p in library.iterdir()) == ["Never", "Recent"]
