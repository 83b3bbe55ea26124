"""Removing what is no longer needed: torrents that met their seeding goal (the torrent engine
marks them; collected hourly) and, only when enabled, library items watched N days ago."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import PurePosixPath

from sokoul_appliance.host import Host
from sokoul_appliance.storage.placement import DOWNLOADS, LIBRARY, area_path, check_item
from sokoul_appliance.storage.roles import MEDIA, MOUNT_POINTS
from sokoul_appliance.store.database import Store


def check_download_path(path: str) -> str:
    """An appliance path strictly inside /srv/media/downloads (what GC may delete)."""
    root = PurePosixPath(area_path(MEDIA, DOWNLOADS))
    p = PurePosixPath(path)
    if not p.is_absolute() or ".." in p.parts or root not in p.parents:
        raise ValueError(f"{path!r} is not inside {root}; GC only removes finished downloads")
    return str(p)


def _remove(host: Host, appliance_path: str) -> bool:
    real = host.path(appliance_path)
    if real.is_dir() and not real.is_symlink():
        shutil.rmtree(real)
    elif real.exists() or real.is_symlink():
        real.unlink()
    else:
        return False
    fd = os.open(real.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


class SeedingGC:
    def __init__(self, host: Host, store: Store) -> None:
        self._host = host
        self._store = store

    async def mark_done_seeding(self, torrent: str, paths: Iterable[str]) -> None:
        """Called by the torrent room when a torrent met its seeding goal (ratio or time) and
        was removed from the engine: its files may go at the next collection."""
        clean = [check_download_path(p) for p in paths]
        now = time.time()
        async with self._store.transaction() as db:
            for p in clean:
                await db.execute(
                    "INSERT INTO storage_gc(path, torrent, marked_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(path) DO UPDATE SET torrent=excluded.torrent, "
                    "marked_at=excluded.marked_at, removed_at=NULL",
                    (p, torrent, now),
                )

    async def pending(self) -> int:
        return int(
            await self._store.scalar("SELECT COUNT(*) FROM storage_gc WHERE removed_at IS NULL")
            or 0
        )

    async def collect(self) -> list[str]:
        """Remove every marked download (the media drive must be mounted: the caller checks)."""
        rows = await self._store.fetchall(
            "SELECT path FROM storage_gc WHERE removed_at IS NULL ORDER BY marked_at"
        )
        removed = []
        for row in rows:
            path = row["path"]
            with contextlib.suppress(FileNotFoundError):
                if await asyncio.to_thread(_remove, self._host, path):
                    removed.append(path)
            async with self._store.transaction() as db:
                await db.execute(
                    "UPDATE storage_gc SET removed_at=? WHERE path=?", (time.time(), path)
                )
        return removed

    async def cleanup_watched(self, days: float, now: float | None = None) -> list[str]:
        """Delete library items on the media drive last watched more than ``days`` ago."""
        limit = (now if now is not None else time.time()) - days * 86400
        rows = await self._store.fetchall(
            "SELECT item FROM storage_items WHERE tier=? AND last_watched IS NOT NULL "
            "AND last_watched < ? ORDER BY last_watched",
            (MEDIA, limit),
        )
        removed = []
        for row in rows:
            rel = check_item(row["item"])
            if rel.parts[0] != LIBRARY:
                continue
            path = f"{MOUNT_POINTS[MEDIA]}/{rel}"
            if await asyncio.to_thread(_remove, self._host, path):
                removed.append(path)
            async with self._store.transaction() as db:
                await db.execute("DELETE FROM storage_items WHERE item=?", (row["item"],))
        return removed
