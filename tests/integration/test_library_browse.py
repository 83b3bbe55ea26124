"""Pages of a 20k-item library stay quick (DLNA Browse and the panel page through them): the
queries must walk indexes, not sort or count the whole table per page."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from sokoul_appliance.bus import EventBus
from sokoul_appliance.host import Host
from sokoul_appliance.library import LibraryManager
from sokoul_appliance.library.model import ROOT_FOLDER, folder_id, stable_id
from sokoul_appliance.store.database import Store

N = 20_000


@pytest.fixture
async def big(tmp_path: Path) -> AsyncIterator[LibraryManager]:
    store = Store(tmp_path / "state/sokoul.db")
    await store.start()
    lib = LibraryManager(
        Host(tmp_path / "root"), store, EventBus(), CollectorRegistry(),
        roots=("/srv/media/library",), watch=False,
    )  # fmt: skip
    now = time.time()
    items, fts, shows = [], [], set()
    for n in range(N):
        movie = n % 2 == 1
        title = f"Title {(n * 7919) % N:05d}"
        show = None if movie else stable_id("sh", f"show {n // 2 % 200}")
        if show:
            shows.add((show, f"Show {n // 2 % 200}"))
        folder = f"Movies/{title} ({n})" if movie else f"Shows/Show {n // 2 % 200}/Season 01"
        items.append((
            f"it-{n:016x}", f"{folder}/{title}.mkv", "/srv/media/library", folder_id(folder),
            "movie" if movie else "episode", title, 2000, show, None if movie else 1,
            None if movie else n, 1000, 1, now + n, now, "[]",
        ))  # fmt: skip
        fts.append((n + 1, title, "", "", title))
    async with store.transaction() as db:
        await db.executemany(
            "INSERT INTO library_shows (id, title, year) VALUES (?, ?, NULL)", sorted(shows)
        )
        await db.executemany(
            "INSERT INTO library_items (id, rel_path, root, folder_id, kind, title, year, "
            "show_id, season, episode, size, mtime_ns, added_at, updated_at, sidecars) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            items,
        )
        await db.executemany(
            "INSERT INTO library_fts (rowid, title, show, episode_title, file_name) "
            "VALUES (?, ?, ?, ?, ?)",
            fts,
        )
        await lib._rebuild_containers(db)
    yield lib
    await store.stop()


async def _timed(coro):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = await coro
    return result, time.perf_counter() - start


async def test_pages_of_a_20k_library_are_quick(big: LibraryManager) -> None:
    lib = big
    # (bounds are generous for a loaded 2-core machine; a whole-table sort or a query per
    # folder took 5-8 s here)
    (total, page), took = await _timed(lib.items(kind="movie", offset=5000, limit=100))
    assert total == N // 2 and len(page) == 100 and took < 0.5
    assert [i.title for i in page] == sorted(i.title for i in page)
    (_, recent), took = await _timed(lib.items(sort="added", limit=100))
    assert recent[0].id == f"it-{N - 1:016x}" and took < 0.5
    movies = folder_id("Movies")
    folders, took = await _timed(lib.subfolders(movies, offset=9900, limit=100))
    assert len(folders) == 100 and all(f.children == 1 for f in folders) and took < 0.5
    assert await lib.subfolder_count(movies) == N // 2
    assert [f.name for f in await lib.subfolders(ROOT_FOLDER)] == ["Movies", "Shows"]
    shows, took = await _timed(lib.shows())
    assert len(shows) == 200 and shows[0].episodes == N // 2 // 200 and took < 0.5
    found, took = await _timed(lib.search("title 0001"))
    assert found and took < 0.5
