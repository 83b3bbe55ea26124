"""The library room: scans the library areas, keeps SQLite (+ FTS5) in step, organizes
completed downloads, and answers the queries of the Library page and the DLNA ContentDirectory.

Scans are incremental: a file whose size and mtime are unchanged is not parsed or probed again;
a file that moved (same inode, new name) keeps its object id; a library area that is not there
(its drive is unmounted) keeps its items, marked unavailable. The walk, guessit and the database
reads of a scan run off the event loop (a worker thread, ffprobe subprocesses, aiosqlite's
thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
import time
from array import array
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from prometheus_client import CollectorRegistry

from sokoul_appliance.bus import EventBus
from sokoul_appliance.events import (
    DownloadFinished,
    LibraryUpdated,
    StorageItemMoved,
    StorageItemsRemoved,
    StorageRecovered,
)
from sokoul_appliance.host import Host
from sokoul_appliance.library.files import FileFacts, walk_root
from sokoul_appliance.library.metrics import LibraryMetrics
from sokoul_appliance.library.model import (
    OBJECT_ID,
    ROOT_FOLDER,
    Folder,
    LibraryItem,
    Season,
    Show,
    folder_id,
    season_id,
    stable_id,
)
from sokoul_appliance.library.naming import EPISODE, MOVIE, OTHER, ParsedName, normalize_title
from sokoul_appliance.library.naming import parse_name as guess
from sokoul_appliance.library.organize import OrganizeError, Placed, organize
from sokoul_appliance.library.probe import (
    STALE_MEDIA_SQL,
    MediaInfo,
    ProbeError,
    probe_file,
)
from sokoul_appliance.library.tmdb import TmdbConfig, TmdbEnricher
from sokoul_appliance.library.watch import DirectoryWatcher, folders_under
from sokoul_appliance.store.database import Store
from sokoul_appliance.tasks import cancel_and_wait

log = logging.getLogger("sokoul.library")

DEFAULT_ROOTS = ("/srv/media/library", "/srv/cold/library")
KINDS = (MOVIE, EPISODE, OTHER)
FUZZY_CUTOFF = 80.0  # rapidfuzz WRatio: 'inceptoin' ~ 'Inception' scores 89
_ORDERS = {
    "title": "i.title COLLATE NOCASE, i.year, i.season, i.episode, i.rel_path",
    "added": "i.added_at DESC, i.num DESC",
    "episode": "i.season, i.episode, i.rel_path",
}
_LISTS_KEPT = 32  # page lists kept (filters x sorts); 20k items: 160 kB each
_ITEMS_KEPT = 5000  # LibraryItems kept for pages read again (~1-2 kB each)
_ITEM_SELECT = (
    "SELECT i.*, s.title AS show_title FROM library_items i "
    "LEFT JOIN library_shows s ON s.id = i.show_id"
)


@dataclass(frozen=True)
class ScanResult:
    added: int
    changed: int
    removed: int
    moved: int
    unchanged: int
    probe_failures: int  # of the probe pass run by this scan (0 when it left probing running)
    seconds: float  # to the end of the scan (with its probe pass when it waited for it)
    browsable_seconds: float = 0.0  # to the commit that made the new items browsable
    probed: int = 0  # files probed by this scan's probe pass

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class _Fresh:
    facts: FileFacts
    parsed: ParsedName


@dataclass(frozen=True)
class _Probed:
    num: int
    size: int
    mtime_ns: int
    media: MediaInfo | None
    probe_error: str | None


PROBE_BATCH = 64  # files probed between two commits (each one bumps the library update)


def fts_query(text: str) -> str | None:
    """User words -> an FTS5 query: every word must match as a prefix ('dark kni' finds
    'The Dark Knight'); quotes keep FTS syntax out of it."""
    words = normalize_title(text).split()
    if not words:
        return None
    return " ".join(f'"{w}"*' for w in words[:12])


class LibraryManager:
    name = "library"
    title = "Library"

    def __init__(
        self,
        host: Host,
        store: Store,
        bus: EventBus,
        registry: CollectorRegistry,
        roots: Sequence[str] = DEFAULT_ROOTS,
        downloads: str = "/srv/media/downloads",
        rescan_interval: float = 900.0,
        probe_concurrency: int = 2,
        probe: Callable[[Host, Path], Awaitable[MediaInfo]] = probe_file,
        watch: bool = True,
        watch_debounce: float = 2.0,
        tmdb: TmdbConfig | None = None,
    ) -> None:
        self.host = host
        self.store = store
        self.bus = bus
        self.metrics = LibraryMetrics(registry)
        self.roots = tuple(roots)  # appliance paths; the first one receives organized downloads
        self.downloads = downloads
        self.rescan_interval = rescan_interval
        self._probe = probe
        self.probe_concurrency = probe_concurrency
        self._probe_slots = asyncio.Semaphore(probe_concurrency)
        self._scan_lock = asyncio.Lock()
        self._probe_lock = asyncio.Lock()
        self._probe_wake = asyncio.Event()
        self.probing = False
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._rescan = asyncio.Event()
        self.update_id = 0  # bumps on every change (DLNA SystemUpdateID)
        self.last_scan: ScanResult | None = None
        self.last_scan_at: float | None = None
        self.last_error: str | None = None
        self.scanning = False
        self._counts: dict[str, int] = dict.fromkeys(KINDS, 0)
        self._generation = 0  # bumps after every committed write to library_items
        # rowid -> LibraryItem of pages read lately (a TV scrolling back and forth reads the
        # same pages again); dropped whole by _written(), per row by a probe batch. A read
        # that raced a write (_item_generation moved) is not kept.
        self._items_kept: OrderedDict[int, LibraryItem] = OrderedDict()
        self._item_generation = 0
        self._lists: OrderedDict[tuple[str, tuple[Any, ...], str], tuple[int, array[int]]] = (
            OrderedDict()
        )
        self._missing_roots: tuple[str, ...] = ()
        self.organize_problems: deque[dict[str, Any]] = deque(maxlen=20)
        self._watch = watch
        self._watcher = DirectoryWatcher(self.request_scan, watch_debounce)
        self._watching = False
        # optional TMDB enrichment (off without a key): runs after scans, in the background
        self.tmdb = TmdbEnricher(store, bus, self.metrics, tmdb, self._enriched)

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self._refresh_counts()
        if self._watch:
            self._watching = self._watcher.start()
        self._tasks.append(asyncio.create_task(self._scanner(), name="library-scanner"))
        self._tasks.append(asyncio.create_task(self._prober(), name="library-prober"))
        self._tasks.append(asyncio.create_task(self._listen(), name="library-events"))
        await self.tmdb.start()
        self._rescan.set()  # first scan right away

    async def stop(self) -> None:
        # a probe pass starts no new ffprobe now and ends after the (at most
        # probe_concurrency) running ones: cancelling it would leave them behind
        self._stopping = True
        for _ in range(200):
            if not self.probing:
                break
            await asyncio.sleep(0.05)
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        await self.tmdb.stop()
        self._watcher.close()
        self._watching = False
        self._stopping = False

    def set_probe_concurrency(self, n: int) -> None:
        """How many ffprobes run at once (before start: the supervisor sizes it to the
        background slice's cores)."""
        assert not self.probing, "set before the probe pass runs"
        self.probe_concurrency = max(1, n)
        self._probe_slots = asyncio.Semaphore(self.probe_concurrency)

    def request_scan(self) -> None:
        self._rescan.set()

    async def _scanner(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._rescan.wait(), self.rescan_interval)
            self._rescan.clear()
            try:
                await self.scan(wait_probed=False)
            except Exception as e:  # a scan failure is reported, the next one tries again
                log.exception("library scan failed")
                self.last_error = f"The last library scan failed: {e}"

    async def _listen(self) -> None:
        with self.bus.subscribe(
            StorageItemMoved, StorageItemsRemoved, StorageRecovered, DownloadFinished
        ) as sub:
            while True:
                event = await sub.get()
                if isinstance(event, DownloadFinished):
                    await self._organize_finished(event)
                else:
                    self._rescan.set()

    def _download_entry(self, path: str) -> str | None:
        """The top entry under downloads/ (the torrent's folder, or its single file) that
        holds ``path`` (an appliance path, or a real path under a simulated root)."""
        real_root = str(self.host.root)
        if not self.host.live and path.startswith(real_root + "/"):
            path = path[len(real_root) :]
        rel = (
            PurePosixPath(path).relative_to(self.downloads)
            if path.startswith(self.downloads + "/")
            else None
        )
        if rel is None or not rel.parts or ".." in rel.parts:
            return None
        return f"{self.downloads}/{rel.parts[0]}"

    async def _organize_finished(self, event: DownloadFinished) -> None:
        entries = sorted({e for p in event.paths if (e := self._download_entry(p))})
        for entry in entries:
            try:
                ids = await self.organize_download(entry)
                log.info("organized %s: %d item(s)", entry, len(ids))
            except (OrganizeError, OSError, ValueError) as e:
                log.warning("could not organize %s: %s", entry, e)
                self.organize_problems.append(
                    {"torrent": event.torrent, "name": event.name, "problem": str(e),
                     "at": time.time()}
                )  # fmt: skip

    # ---- status ----------------------------------------------------------------------------

    def status(self) -> tuple[str, str]:
        total = sum(self._counts.values())
        if self.last_error:
            return "error", self.last_error
        if self.last_scan is None:
            return "starting", "The first library scan is running."

        def n(count: int, one: str, many: str) -> str:
            return f"{count} {one if count == 1 else many}"

        detail = (
            f"{n(self._counts[MOVIE], 'movie', 'movies')}, "
            f"{n(self._counts[EPISODE], 'episode', 'episodes')}, "
            f"{n(self._counts[OTHER], 'other video', 'other videos')} ({total} in all)."
        )
        if self._missing_roots:
            return "degraded", detail + " Not reachable now: " + ", ".join(self._missing_roots)
        return "ok", detail

    def snapshot(self) -> dict[str, Any]:
        state, detail = self.status()
        return {
            "state": state,
            "detail": detail,
            "counts": dict(self._counts),
            "roots": [{"path": r, "available": r not in self._missing_roots} for r in self.roots],
            "scanning": self.scanning,
            "last_scan": None if self.last_scan is None else self.last_scan.to_dict(),
            "last_scan_at": self.last_scan_at,
            "update_id": self.update_id,
            "probe_concurrency": self.probe_concurrency,
            "organize_problems": list(self.organize_problems),
            "watch": {
                "active": self._watching and self._watcher.problem is None,
                "folders": self._watcher.watches,
                "problem": self._watcher.problem,
            },
            "tmdb": self.tmdb.snapshot(),
        }

    def _enriched(self, changed: int) -> None:
        """TMDB matched items or cached posters: DLNA clients re-read (art, titles)."""
        self.update_id += 1
        self.bus.publish(LibraryUpdated(self.update_id, 0, changed, 0))

    async def _refresh_counts(self) -> None:
        counts = dict.fromkeys(KINDS, 0)
        for row in await self.store.fetchall(
            "SELECT kind, COUNT(*) FROM library_items WHERE available = 1 GROUP BY kind"
        ):
            counts[row[0]] = row[1]
        self._counts = counts
        for kind, n in counts.items():
            self.metrics.items.labels(kind=kind).set(n)

    # ---- scanning --------------------------------------------------------------------------

    def _walk(self) -> tuple[dict[str, FileFacts], tuple[str, ...]]:
        found: dict[str, FileFacts] = {}
        missing = []
        for root in self.roots:
            real = self.host.path(root)
            if not real.is_dir():
                missing.append(root)
                continue
            for facts in walk_root(root, real):
                found.setdefault(facts.rel_path, facts)  # the first tier wins a duplicate
        if self._watching:
            present = [self.host.path(r) for r in self.roots if r not in missing]
            self._watcher.watch(folders_under(present))
        return found, tuple(missing)

    async def scan(self, wait_probed: bool = True) -> ScanResult:
        """Bring the database in step with the library areas; returns what changed.

        Two phases: new and changed files are written (browsable) as soon as their names
        are parsed and stat'ed, then ffprobe fills in their streams (``probe_pending``).
        ``wait_probed``: run that probe pass here before returning; otherwise it is left to
        the background prober (the supervisor's scans)."""
        async with self._scan_lock:
            self.scanning = True
            try:
                result = await self._scan()
            finally:
                self.scanning = False
        self.tmdb.wake()  # the TMDB pass (when a key is set) runs after it, in the background
        if not wait_probed:
            self._probe_wake.set()
            return result
        started = time.monotonic() - result.seconds
        probed, failures = await self.probe_pending()
        result = dataclasses.replace(
            result,
            probe_failures=failures,
            probed=probed,
            seconds=round(time.monotonic() - started, 3),
        )
        self.last_scan = result
        return result

    async def _scan(self) -> ScanResult:
        started = time.monotonic()
        found, missing = await asyncio.to_thread(self._walk)
        self._missing_roots = missing
        rows = await self.store.fetchall(
            "SELECT num, id, rel_path, root, size, mtime_ns, inode, sidecars, available "
            "FROM library_items"
        )
        known = {r["rel_path"]: r for r in rows}
        fresh_paths = [
            p
            for p, f in found.items()
            if p not in known or known[p]["size"] != f.size or known[p]["mtime_ns"] != f.mtime_ns
        ]
        gone = [r for p, r in known.items() if p not in found and r["root"] not in missing]
        # a vanished row whose inode reappeared under a new name is a rename: keep its id
        by_inode = {(r["inode"], r["size"]): r for r in gone}
        renames: dict[str, Any] = {}
        for p in fresh_paths:
            if p not in known:
                hit = by_inode.pop((found[p].inode, found[p].size), None)
                if hit is not None:
                    renames[p] = hit
        gone = [r for r in gone if (r["inode"], r["size"]) in by_inode]
        parsed = await asyncio.to_thread(lambda: {p: guess(p) for p in fresh_paths})
        fresh = [_Fresh(found[p], parsed[p]) for p in fresh_paths]
        now = time.time()
        fresh_set = set(fresh_paths)
        updates = []
        for p, facts in found.items():
            row = known.get(p)
            if row is None or p in fresh_set:
                continue
            sidecars = json.dumps([s.to_dict() for s in facts.sidecars])
            if row["root"] != facts.root or row["sidecars"] != sidecars or not row["available"]:
                updates.append((facts.root, sidecars, facts.inode, now, row["num"]))
        hiding = [r for r in missing if any(x["root"] == r and x["available"] for x in rows)]
        touched = len(updates)
        if fresh or gone or updates or hiding:  # an unchanged library costs no write
            async with self.store.transaction() as db:
                for r in gone:
                    await db.execute("DELETE FROM library_fts WHERE rowid = ?", (r["num"],))
                    await db.execute("DELETE FROM library_items WHERE num = ?", (r["num"],))
                for f in fresh:
                    old: Any = known.get(f.facts.rel_path) or renames.get(f.facts.rel_path)
                    await self._write_item(db, f, old, now)
                await db.executemany(
                    "UPDATE library_items SET root = ?, sidecars = ?, available = 1, "
                    "inode = ?, updated_at = ? WHERE num = ?",
                    updates,
                )
                for root in hiding:
                    cur = await db.execute(
                        "UPDATE library_items SET available = 0 WHERE root = ? AND available = 1",
                        (root,),
                    )
                    touched += cur.rowcount
                await self._rebuild_containers(db)
            self._written()
        changed = sum(1 for p in fresh_paths if p in known)
        result = ScanResult(
            added=len(fresh_paths) - changed - len(renames),
            changed=changed,
            removed=len(gone),
            moved=len(renames),
            unchanged=len(found) - len(fresh_paths),
            probe_failures=0,
            seconds=round(time.monotonic() - started, 3),
            browsable_seconds=round(time.monotonic() - started, 3),
        )
        if fresh_paths or gone or touched:
            self.update_id += 1
            self.bus.publish(
                LibraryUpdated(
                    self.update_id,
                    result.added,
                    result.changed + result.moved + touched,
                    result.removed,
                )
            )
        self.metrics.scan_seconds.observe(result.seconds)
        # counts first: whoever sees last_scan set (status, panel, tests) sees its counts
        await self._refresh_counts()
        self.last_scan, self.last_scan_at, self.last_error = result, time.time(), None
        log.info("library scan: %s", result)
        return result

    async def _prober(self) -> None:
        """The background probe pass: woken after every scan, probes what is pending."""
        while True:
            await self._probe_wake.wait()
            self._probe_wake.clear()
            try:
                await self.probe_pending()
            except Exception:  # reported; the next scan wakes it again
                log.exception("library probe pass failed")

    async def probe_pending(self) -> tuple[int, int]:
        """ffprobe every available item not probed yet, or probed by an older probe (its
        MediaInfo JSON lacks the current ``probe_version``: probed once more, for the facts
        added since), ``probe_concurrency`` at a time, niced, in batches: each batch is one
        commit and one LibraryUpdated (DLNA's SystemUpdateID moves as durations and codecs
        arrive). Returns (probed, failures). A failure is stored as the item's probe_error
        (not retried until the file changes; a re-probe's failure keeps the facts it had);
        a file changed meanwhile keeps its row as the next scan writes it."""
        probed = failures = after = 0  # after: the pass's place (rowid) in the pending rows
        async with self._probe_lock:
            self.probing = True
            try:
                while True:
                    rows = await self.store.fetchall(
                        # the version test adds ~4 ms to this query's 6 ms over 20k rows
                        # (json_valid: one unreadable row never stops the pass)
                        "SELECT num, root, rel_path, size, mtime_ns FROM library_items "
                        "WHERE probe_error IS NULL AND available = 1 AND num > ? "
                        f"AND ({STALE_MEDIA_SQL}) ORDER BY num LIMIT ?",
                        (after, PROBE_BATCH),
                    )
                    if not rows or self._stopping:
                        break
                    after = rows[-1]["num"]
                    done = [
                        d
                        for d in await asyncio.gather(*(self._probe_one(r) for r in rows))
                        if d is not None
                    ]
                    if not done:
                        break
                    async with self.store.transaction() as db:
                        for d in done:
                            m = d.media
                            if m is None:  # the row's facts stay (none, or a re-probe's older)
                                await db.execute(
                                    "UPDATE library_items SET probe_error = ? "
                                    "WHERE num = ? AND size = ? AND mtime_ns = ?",
                                    (d.probe_error, d.num, d.size, d.mtime_ns),
                                )
                                continue
                            await db.execute(
                                "UPDATE library_items SET duration = ?, container = ?, "
                                "video_codec = ?, width = ?, height = ?, media = ?, "
                                "probe_error = NULL WHERE num = ? AND size = ? AND mtime_ns = ?",
                                (
                                    m.duration,
                                    m.container,
                                    m.video_codec,
                                    m.width,
                                    m.height,
                                    m.to_json(),
                                    d.num,
                                    d.size,
                                    d.mtime_ns,
                                ),
                            )
                    # no _written(): a probe changes no column a page list filters or sorts
                    # on, so the kept lists stay valid while a long first probe pass runs
                    self._items_changed(d.num for d in done)
                    n_failed = sum(1 for d in done if d.probe_error)
                    probed, failures = probed + len(done), failures + n_failed
                    self.metrics.probe_failures.inc(n_failed)
                    self.update_id += 1
                    self.bus.publish(LibraryUpdated(self.update_id, 0, len(done), 0))
            finally:
                self.probing = False
        if probed:
            log.info("library probe pass: %d file(s), %d failure(s)", probed, failures)
        return probed, failures

    async def _probe_one(self, row: Any) -> _Probed | None:
        """One file's probe; None when the manager is stopping (left pending)."""
        num, size, mtime_ns = row["num"], row["size"], row["mtime_ns"]
        name = PurePosixPath(row["rel_path"]).name
        async with self._probe_slots:
            if self._stopping:
                return None
            try:
                real = await asyncio.to_thread(self.host.path, f"{row['root']}/{row['rel_path']}")
                media = await self._probe(self.host, real)
            except ProbeError as e:
                return _Probed(num, size, mtime_ns, None, str(e))
            except OSError as e:  # vanished meanwhile, unreadable: one file never stops a pass
                log.warning("probing %s failed: %s", row["rel_path"], e)
                return _Probed(num, size, mtime_ns, None, f"{name}: {e}")
        return _Probed(num, size, mtime_ns, media, None)

    async def _write_item(self, db: Any, f: _Fresh, old: Any, now: float) -> None:
        facts, p = f.facts, f.parsed
        show_id = None
        if p.kind == EPISODE:
            show_id = stable_id("sh", normalize_title(p.title))
            await db.execute(
                "INSERT INTO library_shows (id, title, year) VALUES (?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET year = COALESCE(library_shows.year, "
                "excluded.year)",
                (show_id, p.title, p.year),
            )
        rel_dir = PurePosixPath(facts.rel_path).parent.as_posix()
        values = (
            facts.rel_path,
            facts.root,
            folder_id(rel_dir),
            p.kind,
            p.title,
            p.year,
            show_id,
            p.season if p.kind == EPISODE else None,
            p.episode,
            p.episode_title,
            facts.size,
            facts.mtime_ns,
            facts.inode,
            None,  # duration, container, video_codec, width, height, media, probe_error:
            None,  # filled in by the probe pass that follows (probe_pending)
            None,
            None,
            None,
            None,
            json.dumps([s.to_dict() for s in facts.sidecars]),
            None,
            now,
        )
        if old is None:
            cur = await db.execute(
                "INSERT INTO library_items (rel_path, root, folder_id, kind, title, year, "
                "show_id, season, episode, episode_title, size, mtime_ns, inode, duration, "
                "container, video_codec, width, height, media, sidecars, probe_error, "
                "updated_at, id, added_at, available) "
                f"VALUES ({', '.join('?' * 24)}, 1)",
                (*values, "it-" + secrets.token_hex(8), now),
            )
            num = cur.lastrowid
        else:
            num = old["num"]
            await db.execute(
                "UPDATE library_items SET rel_path = ?, root = ?, folder_id = ?, kind = ?, "
                "title = ?, year = ?, show_id = ?, season = ?, episode = ?, episode_title = ?, "
                "size = ?, mtime_ns = ?, inode = ?, duration = ?, container = ?, "
                "video_codec = ?, width = ?, height = ?, media = ?, sidecars = ?, "
                "probe_error = ?, updated_at = ?, available = 1 WHERE num = ?",
                (*values, num),
            )
            await db.execute("DELETE FROM library_fts WHERE rowid = ?", (num,))
        await db.execute(
            "INSERT INTO library_fts (rowid, title, show, episode_title, file_name) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                num,
                p.title,
                p.title if p.kind == EPISODE else "",
                p.episode_title or "",
                PurePosixPath(facts.rel_path).stem.replace(".", " "),
            ),
        )

    async def _rebuild_containers(self, db: Any) -> None:
        """Folders from the items' paths; shows without episodes dropped."""
        await db.execute(
            "DELETE FROM library_shows WHERE id NOT IN "
            "(SELECT show_id FROM library_items WHERE show_id IS NOT NULL)"
        )
        async with db.execute("SELECT DISTINCT rel_path FROM library_items") as cur:
            paths = [r[0] for r in await cur.fetchall()]
        folders: dict[str, tuple[str | None, str]] = {"": (None, "Library")}
        for p in paths:
            parent = PurePosixPath(p).parent
            while parent.as_posix() not in (".", "") and parent.as_posix() not in folders:
                up = parent.parent.as_posix()
                folders[parent.as_posix()] = (folder_id("" if up == "." else up), parent.name)
                parent = parent.parent
        await db.execute("DELETE FROM library_folders")
        await db.executemany(
            "INSERT INTO library_folders (id, rel_path, parent_id, name) VALUES (?, ?, ?, ?)",
            [(folder_id(rel), rel, parent, name) for rel, (parent, name) in folders.items()],
        )

    # ---- organizing ------------------------------------------------------------------------

    async def organize_download(self, appliance_path: str, link: bool = True) -> list[str]:
        """Put a completed download (file or folder under downloads/) into the library
        (hard links by default: the torrent keeps seeding), scan, and return the new items'
        object ids. Raises OrganizeError with a sentence for the panel."""
        # host.path resolves symlinks (filesystem calls): off the loop like the rest
        real_downloads = await asyncio.to_thread(self.host.path, self.downloads)
        source = await asyncio.to_thread(self.host.path, appliance_path)
        if real_downloads not in source.parents:
            raise ValueError(f"{appliance_path!r} is not under {self.downloads}")
        library = await asyncio.to_thread(self.host.path, self.roots[0])
        placed: list[Placed] = await asyncio.to_thread(
            organize, source, library, link, real_downloads
        )
        # running (the supervisor): the background prober probes the new files; the items are
        # browsable now. Without it (tests, tools): probe them here.
        await self.scan(wait_probed=not self._tasks)
        rels = [
            p.target.relative_to(library).as_posix()
            for p in placed
            if p.target.suffix.lower() not in (".srt", ".vtt")
        ]
        ids = []
        for rel in rels:
            item_id = await self.store.scalar(
                "SELECT id FROM library_items WHERE rel_path = ?", (rel,)
            )
            if item_id:
                ids.append(str(item_id))
        return ids

    # ---- queries (the Library page, the DLNA ContentDirectory, the streamer) --------------

    async def item(self, object_id: str) -> LibraryItem | None:
        if not OBJECT_ID.match(object_id) or not object_id.startswith("it-"):
            return None
        row = await self.store.fetchone(f"{_ITEM_SELECT} WHERE i.id = ?", (object_id,))
        return None if row is None else LibraryItem.from_row(row)

    async def items(
        self,
        kind: str | None = None,
        query: str | None = None,
        show_id: str | None = None,
        season: int | None = None,
        folder: str | None = None,
        sort: str = "title",
        offset: int = 0,
        limit: int = 100,
        include_unavailable: bool = False,
    ) -> tuple[int, list[LibraryItem]]:
        """(total matching, one page). sort: 'title' | 'added' (newest first) | 'episode'."""
        where: list[str] = []
        params: list[Any] = []
        if not include_unavailable:
            where.append("i.available = 1")
        if kind is not None:
            where.append("i.kind = ?")
            params.append(kind)
        if show_id is not None:
            where.append("i.show_id = ?")
            params.append(show_id)
        if season is not None:
            where.append("i.season = ?")
            params.append(season)
        if folder is not None:
            where.append("i.folder_id = ?")
            params.append(folder)
        if query is not None:
            match = fts_query(query)
            if match is None:
                return 0, []
            where.append("i.num IN (SELECT rowid FROM library_fts WHERE library_fts MATCH ?)")
            params.append(match)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        order = _ORDERS.get(sort)
        if order is None:
            raise ValueError(f"unknown sort {sort!r}")
        nums = await self._ordered(clause, tuple(params), order)
        offset, limit = max(0, offset), max(0, min(limit, 1000))
        page = nums[offset : offset + limit]
        if not page:
            return len(nums), []
        return len(nums), await self._page_items(page)

    async def _page_items(self, page: Sequence[int]) -> list[LibraryItem]:
        """The items of these rowids in this order: kept ones as they are, the others read by
        primary key (one query) and kept. A row deleted since the list was read (a write
        racing this read) is left out."""
        kept = self._items_kept
        generation = self._item_generation
        hits = {n: kept[n] for n in page if n in kept}
        missing = [n for n in page if n not in hits]
        fresh: dict[int, LibraryItem] = {}
        if missing:
            rows = await self.store.fetchall(
                f"{_ITEM_SELECT} WHERE i.num IN ({', '.join('?' * len(missing))})",
                tuple(missing),
            )
            if generation != self._item_generation and hits:
                # a write landed while we read: do not mix kept items from before it with
                # rows from after it; read the whole page again
                hits = {}
                rows = await self.store.fetchall(
                    f"{_ITEM_SELECT} WHERE i.num IN ({', '.join('?' * len(page))})",
                    tuple(page),
                )
            fresh = {r["num"]: LibraryItem.from_row(r) for r in rows}
            if generation == self._item_generation:
                kept.update(fresh)
                while len(kept) > _ITEMS_KEPT:
                    kept.popitem(last=False)
        for n in hits:
            kept.move_to_end(n)
        out = []
        for n in page:
            item = hits.get(n) or fresh.get(n)
            if item is not None:
                out.append(item)
        return out

    def _items_changed(self, nums: Iterable[int]) -> None:
        """Rows rewritten in place (a probe batch): their kept items are stale."""
        self._item_generation += 1
        for n in nums:
            self._items_kept.pop(n, None)

    async def _ordered(self, clause: str, params: tuple[Any, ...], order: str) -> array[int]:
        """Every matching item's rowid in page order, read once per library generation and
        kept (an LRU of a few lists, 8 bytes an item): the total is its length, a page is a
        slice. A Browse page then costs one primary-key read of its 100 rows instead of a
        COUNT over the whole result and an OFFSET walk of the index (bench/dlna.sh)."""
        key = (clause, params, order)
        generation = self._generation
        hit = self._lists.get(key)
        if hit is not None and hit[0] == generation:
            self._lists.move_to_end(key)
            return hit[1]
        rows = await self.store.fetchall(
            f"SELECT i.num FROM library_items i{clause} ORDER BY {order}", params
        )
        nums = array("q", (r[0] for r in rows))
        self._lists[key] = (generation, nums)  # read under `generation`: stale once it moves
        self._lists.move_to_end(key)
        while len(self._lists) > _LISTS_KEPT:
            self._lists.popitem(last=False)
        return nums

    def _written(self) -> None:
        """After every committed write to library_items: the kept page lists are stale."""
        self._generation += 1
        self._lists.clear()
        self._item_generation += 1
        self._items_kept.clear()

    async def search(self, query: str, limit: int = 50) -> list[LibraryItem]:
        """FTS5 prefix search; when it finds nothing, titles close to the words (typos:
        'inceptoin' finds Inception), scored by rapidfuzz in a worker thread."""
        found = (await self.items(query=query, limit=limit))[1]
        if found or not normalize_title(query):
            return found
        rows = await self.store.fetchall(
            "SELECT DISTINCT COALESCE(s.title, i.title) FROM library_items i "
            "LEFT JOIN library_shows s ON s.id = i.show_id WHERE i.available = 1"
        )
        titles = [r[0] for r in rows]

        def closest() -> list[str]:
            from rapidfuzz import fuzz, process  # first fuzzy search only (memory, start-up)
            from rapidfuzz.utils import default_process

            hits = process.extract(
                query, titles, scorer=fuzz.WRatio, processor=default_process, limit=5
            )
            return [str(title) for title, score, _ in hits if score >= FUZZY_CUTOFF]

        out: list[LibraryItem] = []
        for title in await asyncio.to_thread(closest):
            rows = await self.store.fetchall(
                f"{_ITEM_SELECT} WHERE i.available = 1 AND (i.title = ? OR s.title = ?) "
                "ORDER BY i.season, i.episode, i.rel_path LIMIT ?",
                (title, title, limit - len(out)),
            )
            out += [LibraryItem.from_row(r) for r in rows]
            if len(out) >= limit:
                break
        return out

    async def recently_added(self, limit: int = 50) -> list[LibraryItem]:
        return (await self.items(sort="added", limit=limit))[1]

    async def shows(self) -> list[Show]:
        rows = await self.store.fetchall(
            "SELECT s.id, s.title, s.year, COUNT(DISTINCT i.season), COUNT(i.num) "
            "FROM library_shows s JOIN library_items i ON i.show_id = s.id "
            "WHERE i.available = 1 GROUP BY s.id ORDER BY s.title COLLATE NOCASE"
        )
        return [Show(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def show(self, show_id: str) -> Show | None:
        return next((s for s in await self.shows() if s.id == show_id), None)

    async def seasons(self, show_id: str) -> list[Season]:
        rows = await self.store.fetchall(
            "SELECT season, COUNT(*) FROM library_items WHERE show_id = ? AND available = 1 "
            "GROUP BY season ORDER BY season",
            (show_id,),
        )
        return [Season(season_id(show_id, r[0] or 0), show_id, r[0] or 0, r[1]) for r in rows]

    async def season(self, object_id: str) -> Season | None:
        """A season by its id (the DLNA layer browses 'se-…' containers)."""
        rows = await self.store.fetchall(
            "SELECT show_id, season, COUNT(*) FROM library_items "
            "WHERE show_id IS NOT NULL AND available = 1 GROUP BY show_id, season"
        )
        for show_id, number, count in rows:
            if season_id(show_id, number or 0) == object_id:
                return Season(object_id, show_id, number or 0, count)
        return None

    async def resolve(self, object_id: str) -> LibraryItem | Show | Season | Folder | None:
        """Any library object by its id: item, show, season or folder (DLNA Browse)."""
        if not OBJECT_ID.match(object_id):
            return None
        kind = object_id[:2]
        if kind == "it":
            return await self.item(object_id)
        if kind == "sh":
            return await self.show(object_id)
        if kind == "se":
            return await self.season(object_id)
        return await self.folder(object_id)

    async def episodes(self, show_id: str, season: int | None = None) -> list[LibraryItem]:
        return (
            await self.items(kind=EPISODE, show_id=show_id, season=season, sort="episode",
                             limit=1000)
        )[1]  # fmt: skip

    async def folder(self, object_id: str = ROOT_FOLDER) -> Folder | None:
        row = await self.store.fetchone(
            "SELECT f.id, f.name, f.parent_id, "
            "(SELECT COUNT(*) FROM library_folders c WHERE c.parent_id = f.id) + "
            "(SELECT COUNT(*) FROM library_items i WHERE i.folder_id = f.id AND i.available = 1)"
            " FROM library_folders f WHERE f.id = ?",
            (object_id,),
        )
        return None if row is None else Folder(row[0], row[1], row[2], row[3])

    async def subfolders(
        self, object_id: str = ROOT_FOLDER, offset: int = 0, limit: int = 1000
    ) -> list[Folder]:
        """One page of a folder's subfolders, by name, with their child counts."""
        rows = await self.store.fetchall(
            "SELECT f.id, f.name, f.parent_id, "
            "(SELECT COUNT(*) FROM library_folders c WHERE c.parent_id = f.id) + "
            "(SELECT COUNT(*) FROM library_items i WHERE i.folder_id = f.id AND i.available = 1)"
            " FROM library_folders f WHERE f.parent_id = ? ORDER BY f.name COLLATE NOCASE"
            " LIMIT ? OFFSET ?",
            (object_id, max(0, min(limit, 5000)), max(0, offset)),
        )
        return [Folder(r[0], r[1], r[2], r[3]) for r in rows]

    async def subfolder_count(self, object_id: str = ROOT_FOLDER) -> int:
        return int(
            await self.store.scalar(
                "SELECT COUNT(*) FROM library_folders WHERE parent_id = ?", (object_id,)
            )
        )

    async def tmdb_details(self, items: Sequence[LibraryItem]) -> dict[str, dict[str, Any]]:
        """What TMDB said about these items (only those matched): {id: {tmdb_id, tmdb_title,
        overview, poster_file}}."""
        return await self.tmdb.details([i.id for i in items])

    async def tmdb_poster(self, item: LibraryItem) -> Path | None:
        """The item's cached TMDB poster file (None without one)."""
        return await self.tmdb.poster(item.id)

    async def bookmarks(self, ids: Sequence[str] | None = None) -> dict[str, int]:
        """{item id: seconds} of every resume bookmark (TVs' X_SetBookmark), or of those
        of ``ids`` that have one (a page of the panel's grid)."""
        if ids is None:
            rows = await self.store.fetchall("SELECT item_id, seconds FROM library_bookmarks")
        elif not ids:
            return {}
        else:
            marks = ",".join("?" * len(ids))
            rows = await self.store.fetchall(
                f"SELECT item_id, seconds FROM library_bookmarks WHERE item_id IN ({marks})",
                tuple(ids),
            )
        return {r[0]: int(r[1]) for r in rows}

    async def set_bookmark(self, item_id: str, seconds: int) -> bool:
        """Remember where playback of an item stopped (0 clears it); False for no such item."""
        if await self.item(item_id) is None:
            return False
        async with self.store.transaction() as db:
            if seconds > 0:
                await db.execute(
                    "INSERT INTO library_bookmarks (item_id, seconds, updated_at) "
                    "VALUES (?, ?, ?) ON CONFLICT(item_id) DO UPDATE SET "
                    "seconds = excluded.seconds, updated_at = excluded.updated_at",
                    (item_id, seconds, time.time()),
                )
            else:
                await db.execute("DELETE FROM library_bookmarks WHERE item_id = ?", (item_id,))
        return True

    async def tmdb_posters(self, items: Sequence[LibraryItem]) -> dict[str, Path]:
        """{item id: cached TMDB poster file} for those of ``items`` that have one."""
        return await self.tmdb.poster_paths([i.id for i in items])

    async def real_path(self, item: LibraryItem) -> Path:
        """The item's file on this machine (through the host seam; resolved in a thread)."""
        return await asyncio.to_thread(self.host.path, item.appliance_path)
