"""Optional TMDB enrichment: titles, years, overviews and posters from themoviedb.org.

Only with a key (the setting ``content.tmdb_api_key``: a v3 API key, sent as ``api_key=``, or
a v4 read access token, a JWT starting with ``eyJ``, sent as ``Authorization: Bearer``).
Identity is by id: a movie or show is searched once (``/3/search/movie``, ``/3/search/tv``);
once it has a TMDB id, only ``/3/movie/{id}`` / ``/3/tv/{id}`` are asked. Posters are fetched
once into a local cache (``<state>/posters/<movie|tv>-<id>.jpg``, written atomically).

Offline first: without a key nothing is asked; without network, on HTTP errors, 401, 429
(Retry-After honoured), timeouts or malformed answers the library stays as it is, the status
says why, and the next pass comes after a growing pause (never a hot loop). A title TMDB does
not know is remembered (kind, normalized title, year) and asked again after ``miss_retry``.
Passes run in the background after scans, a few requests at a time, paced.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp

from sokoul_appliance.bus import EventBus
from sokoul_appliance.events import SettingsChanged
from sokoul_appliance.library.metrics import LibraryMetrics
from sokoul_appliance.library.naming import normalize_title
from sokoul_appliance.store.database import Store
from sokoul_appliance.tasks import cancel_and_wait

log = logging.getLogger("sokoul.library.tmdb")

KEY_SETTING = "content.tmdb_api_key"
MAX_POSTER_BYTES = 5 * 1024 * 1024
BATCH = 8  # look-ups between two commits
_YEAR = re.compile(r"^(\d{4})")
_POSTER_PATH = re.compile(r"^/[A-Za-z0-9_-]{1,100}\.(jpg|jpeg|png)$")
_POSTER_FILE = re.compile(r"^(movie|tv)-[0-9]{1,12}\.(jpg|png)$")  # ours, in the cache


@dataclass(frozen=True)
class TmdbConfig:
    api_key: Callable[[], str | None]  # the current key; '' or None: enrichment is off
    posters: Path  # the poster cache (a real directory; the supervisor's state dir/posters)
    base_url: str = "https://api.themoviedb.org"
    image_base: str = "https://image.tmdb.org/t/p/w342"
    concurrency: int = 3  # requests at once
    interval: float = 0.05  # between two request starts (TMDB allows ~40/s; we stay well under)
    timeout: float = 10.0  # per request
    miss_retry: float = 86400.0  # a title TMDB did not know is asked again after a day
    refresh_after: float = 30 * 86400.0  # details (overview, poster) asked again by id
    refresh_per_pass: int = 200  # at most this many refreshes a pass (a big library spreads)
    retry_base: float = 60.0  # after a failed pass: 1 min, 2, 4 ... up to retry_max
    retry_max: float = 3600.0
    max_retry_after: float = 60.0  # a longer 429 Retry-After ends the pass (retried then)


class TmdbError(Exception):
    """A pass cannot go on (the message is for the panel)."""

    retry_after: float | None = None


class TmdbRefused(TmdbError):
    pass


class TmdbThrottled(TmdbError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def auth_for(key: str) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, query params): a v4 read token (a JWT, 'eyJ…') goes in Authorization, a v3
    key in ?api_key=."""
    if key.startswith("eyJ") and key.count(".") == 2:
        return {"Authorization": f"Bearer {key}"}, {}
    return {}, {"api_key": key}


def retry_after_seconds(value: str | None, default: float = 10.0) -> float:
    """Retry-After as delta-seconds or an HTTP date; ``default`` when absent or unreadable."""
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


def _year(date: Any) -> int | None:
    m = _YEAR.match(date) if isinstance(date, str) else None
    return int(m.group(1)) if m else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def image_kind(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    return None


def write_atomically(path: Path, data: bytes) -> None:
    """temp file + fsync + rename (+ fsync of the folder): whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Match:
    """What TMDB says about one movie or show (search result or details)."""

    kind: str  # 'movie' | 'tv'
    tmdb_id: int
    title: str
    year: int | None
    overview: str | None
    poster_path: str | None

    @staticmethod
    def from_json(kind: str, data: Any) -> Match | None:
        if not isinstance(data, dict):
            return None
        tmdb_id = data.get("id")
        title = _str(data.get("title" if kind == "movie" else "name"))
        if not isinstance(tmdb_id, int) or isinstance(tmdb_id, bool) or tmdb_id <= 0 or not title:
            return None
        poster = _str(data.get("poster_path"))
        return Match(
            kind,
            tmdb_id,
            title,
            _year(data.get("release_date" if kind == "movie" else "first_air_date")),
            _str(data.get("overview")),
            poster if poster and _POSTER_PATH.match(poster) else None,
        )


def best_match(kind: str, title: str, year: int | None, results: Any) -> Match | None:
    """The search hit for (title, year): same folded title (or original title) and a year
    within one of ours; else, with a year, the first hit of that year; else none."""
    if not isinstance(results, list):
        return None
    wanted = normalize_title(title)
    hits: list[tuple[Match, set[str]]] = []
    for r in results[:20]:
        m = Match.from_json(kind, r)
        if m is None:
            continue
        names = {normalize_title(m.title)}
        original = r.get("original_title" if kind == "movie" else "original_name")
        if isinstance(original, str):
            names.add(normalize_title(original))
        hits.append((m, names))
    for m, names in hits:
        if wanted in names and (year is None or m.year is None or abs(m.year - year) <= 1):
            return m
    if year is not None:
        for m, _ in hits:
            if m.year == year:
                return m
    return None


class TmdbEnricher:
    """Owned by the LibraryManager: started and stopped with it, woken after its scans."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        metrics: LibraryMetrics,
        config: TmdbConfig | None,
        on_change: Callable[[int], None],
    ) -> None:
        self.store = store
        self.bus = bus
        self.metrics = metrics
        self.config = config
        self._on_change = on_change
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(config.concurrency if config else 1)
        self._next_start = 0.0
        self._wake = asyncio.Event()
        self._force = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._retry_at: float | None = None  # monotonic; a failed pass waits for it
        self._backoff = config.retry_base if config else 60.0
        self.state = "off"
        self.detail = "No TMDB key is set: titles come from the file names only."
        self.matched = 0
        self.pending = 0
        self.missed = 0
        self.posters = 0
        self.last_pass_at: float | None = None
        self.running = False
        self._pass_lock = asyncio.Lock()

    # ---- lifecycle -------------------------------------------------------------------------

    def _key(self) -> str:
        if self.config is None:
            return ""
        return (self.config.api_key() or "").strip()

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._runner(), name="library-tmdb"))
        self._tasks.append(asyncio.create_task(self._listen(), name="library-tmdb-settings"))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def wake(self) -> None:
        """After a scan: a pass when the last one did not fail (else at its retry time)."""
        self._wake.set()

    async def _listen(self) -> None:
        with self.bus.subscribe(SettingsChanged) as sub:
            while True:
                event = await sub.get()
                if isinstance(event, SettingsChanged) and KEY_SETTING in event.keys:
                    # a new key: try now, whatever the last pass said
                    self._retry_at = None
                    self._backoff = self.config.retry_base if self.config else 60.0
                    self._force.set()
                    self._wake.set()

    async def _runner(self) -> None:
        while True:
            if self._retry_at is not None:
                delay = self._retry_at - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._force.wait(), delay)
            else:
                await self._wake.wait()
            self._wake.clear()
            self._force.clear()
            try:
                await self.enrich()
            except Exception as e:  # reported; the next pass comes after the back-off
                log.exception("TMDB pass failed")
                self._failed(f"The TMDB look-up failed: {e}", None)

    def _failed(self, detail: str, retry_after: float | None) -> None:
        self.state, self.detail = "error", detail
        pause = retry_after if retry_after is not None else self._backoff
        if self.config is not None and retry_after is None:
            self._backoff = min(self._backoff * 2, self.config.retry_max)
        self._retry_at = time.monotonic() + max(1.0, pause)
        self.detail += f" Next try in {_human(pause)}."

    def snapshot(self) -> dict[str, Any]:
        state, detail = self.state, self.detail
        if state == "off" and self.last_pass_at is None and self._key():
            state, detail = "starting", "TMDB look-ups start after the library scan."
        return {
            "state": state,
            "detail": detail,
            "matched": self.matched,
            "pending": self.pending,
            "missed": self.missed,
            "posters": self.posters,
            "running": self.running,
            "last_pass_at": self.last_pass_at,
        }

    # ---- one pass --------------------------------------------------------------------------

    async def enrich(self) -> dict[str, int]:
        """One pass: search what has no TMDB id, fetch details of ids without them, fetch
        missing posters, forget what nothing refers to. Returns counts ({'matched', 'missed',
        'details', 'posters', 'pruned'}, what this pass did). Never raises for TMDB's or the
        network's failures: they go into the status and set the time of the next try."""
        async with self._pass_lock:
            return await self._enrich()

    async def _enrich(self) -> dict[str, int]:
        done = {"matched": 0, "missed": 0, "details": 0, "posters": 0, "pruned": 0}
        key = self._key()
        if not key or self.config is None:
            self._retry_at = None  # nothing to retry: the next pass comes with a scan or a key
            self.state = "off"
            self.detail = (
                "No TMDB key is set: titles come from the file names only."
                if self.config is not None
                else "TMDB look-ups are not set up here (on a simulated board, SOKOUL_TMDB_URL "
                "names a TMDB to use)."
            )
            await self._count()
            return done
        self.running = True
        changed = 0
        try:
            try:
                for kind in ("movie", "tv"):
                    m, x = await self._search_pending(key, kind)
                    done["matched"] += m
                    done["missed"] += x
                    changed += m
                done["details"] = await self._fill_details(key)
                done["posters"] = await self._fetch_posters()
                changed += done["posters"]
                done["pruned"] = await self._prune()
            except TmdbError as e:
                self._failed(str(e), e.retry_after)
                log.warning("TMDB: %s", e)
            else:
                self._retry_at = None
                self._backoff = self.config.retry_base
                self.state = "ok"
            self.last_pass_at = time.time()
            await self._count()
            if self.state == "ok":
                self.detail = (
                    f"{self.matched} item(s) matched on TMDB, {self.posters} poster(s) cached"
                    + (f", {self.missed} not found" if self.missed else "")
                    + (f", {self.pending} to look up" if self.pending else "")
                    + "."
                )
        finally:
            self.running = False
            if changed:
                self._on_change(changed)
        return done

    async def _search_pending(self, key: str, kind: str) -> tuple[int, int]:
        """Search every movie (kind 'movie') or show ('tv') without a TMDB id whose (title,
        year) is not a recent miss. Returns (matched, missed)."""
        assert self.config is not None
        if kind == "movie":
            rows = await self.store.fetchall(
                "SELECT num, title, year FROM library_items "
                "WHERE kind = 'movie' AND available = 1 AND tmdb_id IS NULL"
            )
        else:
            rows = await self.store.fetchall(
                "SELECT s.id, s.title, s.year FROM library_shows s WHERE s.tmdb_id IS NULL "
                "AND EXISTS (SELECT 1 FROM library_items i WHERE i.show_id = s.id "
                "AND i.available = 1)"
            )
        if not rows:
            return 0, 0
        misses = {
            r[0]
            for r in await self.store.fetchall(
                "SELECT key FROM library_tmdb_misses WHERE kind = ? AND missed_at > ?",
                (kind, time.time() - self.config.miss_retry),
            )
        }

        def group() -> list[tuple[str, tuple[str, int | None, list[Any]]]]:
            # (normalized title, year) -> its rows; guessit-free but 20k titles are not for
            # the event loop
            groups: dict[str, tuple[str, int | None, list[Any]]] = {}
            for r in rows:
                norm = normalize_title(r[1])
                key_ = f"{norm}|{r[2] or ''}"
                if norm and key_ not in misses:
                    groups.setdefault(key_, (r[1], r[2], []))[2].append(r[0])
            return list(groups.items())

        matched = missed = 0
        todo = await asyncio.to_thread(group)
        for start in range(0, len(todo), BATCH):
            chunk = todo[start : start + BATCH]
            results = await asyncio.gather(
                *(self._search(key, kind, title, year) for _, (title, year, _) in chunk),
                return_exceptions=True,
            )
            problem: BaseException | None = None
            async with self.store.transaction() as db:
                for (miss_key, (_, _, refs)), res in zip(chunk, results, strict=True):
                    if isinstance(res, BaseException):
                        problem = problem or res
                        continue
                    if res is None:
                        missed += len(refs)
                        await db.execute(
                            "INSERT INTO library_tmdb_misses (kind, key, missed_at) "
                            "VALUES (?, ?, ?) ON CONFLICT(kind, key) DO UPDATE SET "
                            "missed_at = excluded.missed_at",
                            (kind, miss_key, time.time()),
                        )
                        continue
                    await self._save(db, res)
                    marks = ", ".join("?" * len(refs))
                    if kind == "movie":
                        sql = f"UPDATE library_items SET tmdb_id = ? WHERE num IN ({marks})"
                    else:
                        sql = f"UPDATE library_shows SET tmdb_id = ? WHERE id IN ({marks})"
                    await db.execute(sql, (res.tmdb_id, *refs))
                    matched += len(refs)
            if problem is not None:
                raise problem
        return matched, missed

    async def _search(self, key: str, kind: str, title: str, year: int | None) -> Match | None:
        params = {"query": title, "include_adult": "false"}
        if year:
            params["year" if kind == "movie" else "first_air_date_year"] = str(year)
        data = await self._get_json(key, f"/3/search/{kind}", params)
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            self.metrics.tmdb_requests.labels(result="error").inc()
            raise TmdbError("TMDB sent an answer this appliance cannot read (no results list).")
        hit = best_match(kind, title, year, results)
        self.metrics.tmdb_requests.labels(result="ok" if hit else "miss").inc()
        return hit

    async def _save(self, db: Any, m: Match) -> None:
        await db.execute(
            "INSERT INTO library_tmdb (kind, tmdb_id, title, year, overview, poster_path, "
            "poster_file, fetched_at) VALUES (?, ?, ?, ?, ?, ?, NULL, ?) "
            "ON CONFLICT(kind, tmdb_id) DO UPDATE SET title = excluded.title, "
            "year = excluded.year, overview = excluded.overview, "
            "poster_file = CASE WHEN library_tmdb.poster_path IS excluded.poster_path "
            "THEN library_tmdb.poster_file ELSE NULL END, "
            "poster_path = excluded.poster_path, fetched_at = excluded.fetched_at",
            (m.kind, m.tmdb_id, m.title, m.year, m.overview, m.poster_path, time.time()),
        )

    async def _fill_details(self, key: str) -> int:
        """ID first: ids we hold without their details (e.g. the cache was lost) are asked
        by id, never searched again; so are details older than ``refresh_after`` (a new
        overview or poster on TMDB; the oldest first, ``refresh_per_pass`` at a time)."""
        assert self.config is not None
        rows = await self.store.fetchall(
            "SELECT 'movie', i.tmdb_id FROM library_items i WHERE i.tmdb_id IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM library_tmdb t WHERE t.kind = 'movie' "
            "AND t.tmdb_id = i.tmdb_id) "
            "UNION SELECT 'tv', s.tmdb_id FROM library_shows s WHERE s.tmdb_id IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM library_tmdb t WHERE t.kind = 'tv' "
            "AND t.tmdb_id = s.tmdb_id)"
        )
        rows += await self.store.fetchall(
            "SELECT kind, tmdb_id FROM library_tmdb WHERE fetched_at < ? "
            "ORDER BY fetched_at LIMIT ?",
            (time.time() - self.config.refresh_after, self.config.refresh_per_pass),
        )
        done = 0
        for start in range(0, len(rows), BATCH):
            chunk = [(r[0], r[1]) for r in rows[start : start + BATCH]]
            results = await asyncio.gather(
                *(self._details(key, kind, tmdb_id) for kind, tmdb_id in chunk),
                return_exceptions=True,
            )
            problem: BaseException | None = None
            async with self.store.transaction() as db:
                for (kind, tmdb_id), res in zip(chunk, results, strict=True):
                    if isinstance(res, BaseException):
                        problem = problem or res
                    elif res is None:  # the id is gone from TMDB: search again next pass
                        table = "library_items" if kind == "movie" else "library_shows"
                        await db.execute(
                            f"UPDATE {table} SET tmdb_id = NULL WHERE tmdb_id = ?", (tmdb_id,)
                        )
                    else:
                        await self._save(db, res)
                        done += 1
            if problem is not None:
                raise problem
        return done

    async def _details(self, key: str, kind: str, tmdb_id: int) -> Match | None:
        data = await self._get_json(key, f"/3/{kind}/{tmdb_id}", {}, missing_ok=True)
        if data is None:
            self.metrics.tmdb_requests.labels(result="miss").inc()
            return None
        m = Match.from_json(kind, data)
        if m is None or m.tmdb_id != tmdb_id:
            self.metrics.tmdb_requests.labels(result="error").inc()
            raise TmdbError(f"TMDB sent details this appliance cannot read for {kind} {tmdb_id}.")
        self.metrics.tmdb_requests.labels(result="ok").inc()
        return m

    async def _fetch_posters(self) -> int:
        """Download the posters not cached yet (or whose file went away)."""
        assert self.config is not None
        rows = await self.store.fetchall(
            "SELECT kind, tmdb_id, poster_path, poster_file FROM library_tmdb "
            "WHERE poster_path IS NOT NULL"
        )
        folder = self.config.posters

        def missing() -> list[Any]:
            return [r for r in rows if not r[3] or not (folder / r[3]).is_file()]

        todo = await asyncio.to_thread(missing)
        done = 0
        for start in range(0, len(todo), BATCH):
            chunk = todo[start : start + BATCH]
            results = await asyncio.gather(
                *(self._poster(r[0], r[1], r[2]) for r in chunk), return_exceptions=True
            )
            problem: BaseException | None = None
            async with self.store.transaction() as db:
                for r, res in zip(chunk, results, strict=True):
                    if isinstance(res, BaseException):
                        problem = problem or res
                        continue
                    # None: TMDB has no such image any more; forget the path
                    await db.execute(
                        "UPDATE library_tmdb SET poster_file = ?, poster_path = "
                        "CASE WHEN ? IS NULL THEN NULL ELSE poster_path END "
                        "WHERE kind = ? AND tmdb_id = ?",
                        (res, res, r[0], r[1]),
                    )
                    done += res is not None
            if problem is not None:
                raise problem
        return done

    async def _prune(self) -> int:
        """Forget what no item or show refers to any more (an unavailable item still does):
        its row and its poster file; and files in the cache no row names. Returns the files
        removed."""
        assert self.config is not None
        async with self.store.transaction() as db:
            await db.execute(
                "DELETE FROM library_tmdb WHERE (kind = 'movie' AND tmdb_id NOT IN "
                "(SELECT tmdb_id FROM library_items WHERE tmdb_id IS NOT NULL)) OR "
                "(kind = 'tv' AND tmdb_id NOT IN "
                "(SELECT tmdb_id FROM library_shows WHERE tmdb_id IS NOT NULL))"
            )
        keep = {
            r[0]
            for r in await self.store.fetchall(
                "SELECT poster_file FROM library_tmdb WHERE poster_file IS NOT NULL"
            )
        }
        folder = self.config.posters

        def remove() -> int:
            removed = 0
            try:
                names = os.listdir(folder)
            except FileNotFoundError:
                return 0
            for name in names:
                if _POSTER_FILE.match(name) and name not in keep:
                    with contextlib.suppress(FileNotFoundError):
                        (folder / name).unlink()
                        removed += 1
            return removed

        return await asyncio.to_thread(remove)

    async def _poster(self, kind: str, tmdb_id: int, poster_path: str) -> str | None:
        """Fetch one poster into the cache; its file name, or None when TMDB has none."""
        assert self.config is not None
        url = self.config.image_base.rstrip("/") + poster_path
        body = await self._request(url, {}, {}, missing_ok=True, binary=True)
        if body is None:
            return None
        assert isinstance(body, bytes)
        ext = image_kind(body[:16])
        if ext is None:
            self.metrics.tmdb_requests.labels(result="error").inc()
            raise TmdbError(f"The poster of {kind} {tmdb_id} from TMDB is not a JPEG or PNG.")
        name = f"{kind}-{tmdb_id}.{ext}"
        await asyncio.to_thread(write_atomically, self.config.posters / name, body)
        self.metrics.tmdb_requests.labels(result="ok").inc()
        return name

    # ---- HTTP ------------------------------------------------------------------------------

    async def _get_json(
        self, key: str, path: str, params: dict[str, str], missing_ok: bool = False
    ) -> Any:
        assert self.config is not None
        headers, auth = auth_for(key)
        return await self._request(
            self.config.base_url.rstrip("/") + path,
            {**params, **auth},
            {**headers, "Accept": "application/json"},
            missing_ok=missing_ok,
        )

    async def _pace(self) -> None:
        """Request starts are ``interval`` apart (and wait for a 429's Retry-After)."""
        assert self.config is not None
        now = time.monotonic()
        start = max(now, self._next_start)
        self._next_start = start + self.config.interval
        if start > now:
            await asyncio.sleep(start - now)

    async def _request(
        self,
        url: str,
        params: dict[str, str],
        headers: dict[str, str],
        missing_ok: bool = False,
        binary: bool = False,
    ) -> Any:
        """JSON (or bytes); None for a 404 when ``missing_ok``. Raises TmdbError (with a
        sentence for the panel) for everything else that is not a 2xx answer."""
        assert self.config is not None
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
                headers={"User-Agent": "SOKOUL-Appliance"},
            )
        host = url.split("/")[2] if url.count("/") >= 2 else url
        for _ in range(3):
            await self._pace()
            async with self._slots:
                try:
                    async with self._session.get(url, params=params, headers=headers) as r:
                        if r.status == 401:
                            self.metrics.tmdb_requests.labels(result="error").inc()
                            raise TmdbRefused(
                                "TMDB refused the API key (HTTP 401). Check the key under "
                                "Settings → Content (a v3 API key or a v4 read access token)."
                            )
                        if r.status == 429:
                            self.metrics.tmdb_requests.labels(result="throttled").inc()
                            wait = retry_after_seconds(r.headers.get("Retry-After"))
                            if wait > self.config.max_retry_after:
                                raise TmdbThrottled(
                                    "TMDB asks this appliance to slow down (HTTP 429).", wait
                                )
                            self._next_start = max(self._next_start, time.monotonic() + wait)
                            continue
                        if r.status == 404 and missing_ok:
                            return None
                        if r.status >= 300:
                            self.metrics.tmdb_requests.labels(result="error").inc()
                            raise TmdbError(f"TMDB answered HTTP {r.status} ({host}).")
                        if binary:
                            body = await r.content.read(MAX_POSTER_BYTES + 1)
                            if len(body) > MAX_POSTER_BYTES:
                                self.metrics.tmdb_requests.labels(result="error").inc()
                                raise TmdbError("A poster from TMDB is larger than 5 MiB.")
                            return body
                        text = await r.text()
                except TmdbError:
                    raise
                except TimeoutError:
                    self.metrics.tmdb_requests.labels(result="error").inc()
                    raise TmdbError(
                        f"TMDB did not answer within {self.config.timeout:g} s ({host})."
                    ) from None
                except aiohttp.ClientError as e:
                    self.metrics.tmdb_requests.labels(result="error").inc()
                    raise TmdbError(
                        f"TMDB cannot be reached ({host}: {e.__class__.__name__}). "
                        "The library works without it; check the internet connection."
                    ) from None
            try:
                return json.loads(text)
            except ValueError:
                self.metrics.tmdb_requests.labels(result="error").inc()
                raise TmdbError("TMDB sent an answer that is not JSON.") from None
        raise TmdbThrottled(
            "TMDB kept asking this appliance to slow down (HTTP 429).",
            self.config.max_retry_after,
        )

    # ---- figures and queries ---------------------------------------------------------------

    async def _count(self) -> None:
        row = await self.store.fetchone(
            "SELECT "
            "SUM(CASE WHEN (i.kind = 'movie' AND i.tmdb_id IS NOT NULL) OR "
            "(i.kind = 'episode' AND s.tmdb_id IS NOT NULL) THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN (i.kind = 'movie' AND i.tmdb_id IS NULL) OR "
            "(i.kind = 'episode' AND s.tmdb_id IS NULL) THEN 1 ELSE 0 END) "
            "FROM library_items i LEFT JOIN library_shows s ON s.id = i.show_id "
            "WHERE i.available = 1"
        )
        self.matched = int(row[0] or 0) if row else 0
        unmatched = int(row[1] or 0) if row else 0
        self.posters = int(
            await self.store.scalar(
                "SELECT COUNT(*) FROM library_tmdb WHERE poster_file IS NOT NULL"
            )
        )
        self.metrics.tmdb_posters.set(self.posters)
        if self.config is None or not self._key():
            self.missed, self.pending = 0, unmatched
            return
        # items whose (title, year) TMDB did not know lately: not pending, missed
        misses = {
            (r[0], r[1])
            for r in await self.store.fetchall(
                "SELECT kind, key FROM library_tmdb_misses WHERE missed_at > ?",
                (time.time() - self.config.miss_retry,),
            )
        }
        rows = await self.store.fetchall(
            "SELECT CASE WHEN i.kind = 'movie' THEN 'movie' ELSE 'tv' END, "
            "COALESCE(s.title, i.title), COALESCE(s.year, i.year) "
            "FROM library_items i LEFT JOIN library_shows s ON s.id = i.show_id "
            "WHERE i.available = 1 AND ((i.kind = 'movie' AND i.tmdb_id IS NULL) OR "
            "(i.kind = 'episode' AND s.tmdb_id IS NULL))"
        )

        def count_missed() -> int:
            return sum(
                1
                for kind, title, year in rows
                if (kind, f"{normalize_title(title)}|{year or ''}") in misses
            )

        self.missed = await asyncio.to_thread(count_missed) if misses else 0
        self.pending = unmatched - self.missed

    async def details(self, item_ids: list[str]) -> dict[str, dict[str, Any]]:
        """TMDB facts of these items: {id: {tmdb_id, tmdb_title, overview, poster_file}}."""
        if not item_ids:
            return {}
        rows = await self.store.fetchall(
            "SELECT i.id, t.tmdb_id, t.title, t.overview, t.poster_file, t.kind "
            "FROM library_items i LEFT JOIN library_shows s ON s.id = i.show_id "
            "JOIN library_tmdb t ON t.kind = CASE WHEN i.kind = 'movie' THEN 'movie' "
            "ELSE 'tv' END AND t.tmdb_id = CASE WHEN i.kind = 'movie' THEN i.tmdb_id "
            f"ELSE s.tmdb_id END WHERE i.id IN ({', '.join('?' * len(item_ids))})",
            tuple(item_ids),
        )
        return {
            r[0]: {
                "tmdb_id": r[1],
                "tmdb_kind": r[5],
                "tmdb_title": r[2],
                "overview": r[3],
                "poster_file": r[4],
            }
            for r in rows
        }

    async def poster_paths(self, item_ids: list[str]) -> dict[str, Path]:
        """Where the cached TMDB posters of these items are (one query, no file checks: the
        caller reads them in a worker thread and treats a missing one as none)."""
        if self.config is None or not item_ids:
            return {}
        posters = self.config.posters
        return {
            item_id: posters / facts["poster_file"]
            for item_id, facts in (await self.details(item_ids)).items()
            if facts["poster_file"]
        }

    async def poster(self, item_id: str) -> Path | None:
        """The cached TMDB poster of an item, when there is one on disk."""
        if self.config is None:
            return None
        facts = (await self.details([item_id])).get(item_id)
        name = facts["poster_file"] if facts else None
        if not name:
            return None
        path = self.config.posters / name
        return path if await asyncio.to_thread(path.is_file) else None


def _human(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{round(seconds / 3600)} h"
