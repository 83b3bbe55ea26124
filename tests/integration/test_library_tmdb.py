"""TMDB enrichment against an offline double of TMDB (an aiohttp server on 127.0.0.1): match by
search then by id, posters cached atomically and served, no key → no request, every failure
leaves the library as it was with a status that says why, a poster beside the file wins."""

from __future__ import annotations

import asyncio
import json
import struct
import threading
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from sokoul_appliance.bus import EventBus
from sokoul_appliance.events import LibraryUpdated, SettingsChanged
from sokoul_appliance.host import Host
from sokoul_appliance.library import LibraryManager
from sokoul_appliance.library.tmdb import TmdbConfig
from sokoul_appliance.store.database import Store

pytestmark = pytest.mark.integration

V3_KEY = "0123456789abcdef0123456789abcdef"
V4_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiIwMTIzIiwic2NvcGVzIjpbImFwaV9yZWFkIl19.c2lnbmF0dXJl"


def png(width: int, height: int, rgb: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A valid PNG (8-bit RGB, one colour) made with zlib + struct."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


MOVIES = {
    27205: {
        "id": 27205,
        "title": "Inception",
        "original_title": "Inception",
        "release_date": "2010-07-15",
        "overview": "A thief who steals corporate secrets through dream-sharing.",
        "poster_path": "/inception.png",
    },
    10378: {
        "id": 10378,
        "title": "Big Buck Bunny",
        "original_title": "Big Buck Bunny",
        "release_date": "2008-05-30",
        "overview": "A giant rabbit takes revenge on three bullies.",
        "poster_path": "/bunny.png",
    },
}
SHOWS = {
    95396: {
        "id": 95396,
        "name": "Severance",
        "original_name": "Severance",
        "first_air_date": "2022-02-17",
        "overview": "Mark leads a team of office workers whose memories have been divided.",
        "poster_path": "/severance.png",
    }
}


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    authorization: str | None


@dataclass
class FakeTmdb:
    """TMDB's search, details and image endpoints on 127.0.0.1. ``fail`` scripts the next
    answers: '401', '429:<seconds>', '500', 'badjson', 'slow'."""

    fail: list[str] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    posters: dict[str, bytes] = field(default_factory=dict)
    slow: float = 3.0
    url: str = ""
    _runner: web.AppRunner | None = None

    def __post_init__(self) -> None:
        self.posters = {
            "/inception.png": png(68, 100, (30, 60, 160)),
            "/bunny.png": png(68, 100, (60, 160, 30)),
            "/severance.png": png(68, 100, (160, 160, 160)),
        }

    def requests(self, prefix: str = "/") -> list[Seen]:
        return [s for s in self.seen if s.path.startswith(prefix)]

    async def start(self) -> FakeTmdb:
        app = web.Application()
        app.router.add_get("/3/search/{kind}", self._search)
        app.router.add_get("/3/{kind}/{id}", self._details)
        app.router.add_get("/t/p/w342/{name}", self._image)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _scripted(self, request: web.Request) -> web.StreamResponse | None:
        self.seen.append(
            Seen(request.path, dict(request.query), request.headers.get("Authorization"))
        )
        if not self.fail:
            return None
        mode = self.fail.pop(0)
        if mode == "401":
            return web.json_response({"status_code": 7, "status_message": "Invalid"}, status=401)
        if mode.startswith("429"):
            wait = mode.partition(":")[2] or "1"
            return web.json_response({}, status=429, headers={"Retry-After": wait})
        if mode == "500":
            return web.Response(status=500, text="oops")
        if mode == "badjson":
            return web.Response(text="{not json", content_type="application/json")
        if mode == "slow":
            await asyncio.sleep(self.slow)
        return None

    def _authorized(self, request: web.Request) -> bool:
        return request.query.get("api_key") == V3_KEY or request.headers.get("Authorization") == (
            f"Bearer {V4_TOKEN}"
        )

    async def _search(self, request: web.Request) -> web.StreamResponse:
        scripted = await self._scripted(request)
        if scripted is not None:
            return scripted
        if not self._authorized(request):
            return web.json_response({"status_code": 7}, status=401)
        kind = request.match_info["kind"]
        words = request.query.get("query", "").lower()
        table = MOVIES if kind == "movie" else SHOWS
        year = request.query.get("year" if kind == "movie" else "first_air_date_year")
        date = "release_date" if kind == "movie" else "first_air_date"
        name = "title" if kind == "movie" else "name"
        hits = [
            v
            for v in table.values()
            if words and words in str(v[name]).lower() and (not year or str(v[date])[:4] == year)
        ]
        return web.json_response({"page": 1, "results": hits, "total_results": len(hits)})

    async def _details(self, request: web.Request) -> web.StreamResponse:
        scripted = await self._scripted(request)
        if scripted is not None:
            return scripted
        if not self._authorized(request):
            return web.json_response({"status_code": 7}, status=401)
        kind = request.match_info["kind"]
        table = MOVIES if kind == "movie" else SHOWS if kind == "tv" else {}
        try:
            data = table.get(int(request.match_info["id"]))
        except ValueError:
            data = None
        if data is None:
            return web.json_response({"status_code": 34}, status=404)
        return web.json_response(data)

    async def _image(self, request: web.Request) -> web.StreamResponse:
        scripted = await self._scripted(request)
        if scripted is not None:
            return scripted
        body = self.posters.get("/" + request.match_info["name"])
        if body is None:
            return web.Response(status=404)
        return web.Response(body=body, content_type="image/png")


class ThreadedFakeTmdb:
    """The double in its own thread and loop (for Playwright's sync tests)."""

    def __init__(self) -> None:
        self.tmdb = FakeTmdb()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> FakeTmdb:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.tmdb.start(), self._loop).result(10)
        return self.tmdb

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.tmdb.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def make_library(library: Path) -> None:
    """Two known movies, one unknown, one episode; a poster beside Big Buck Bunny."""
    files = [
        "Movies/Inception (2010)/Inception (2010).mkv",
        "Movies/Big Buck Bunny (2008)/Big Buck Bunny (2008).mkv",
        "Movies/Zorblax Returns (1999)/Zorblax Returns (1999).mkv",
        "Shows/Severance/Season 01/Severance - S01E01 - Good News About Hell.mkv",
    ]
    for rel in files:
        p = library / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"\x1aE\xdf\xa3" + b"\0" * 1000)
    beside = library / "Movies/Big Buck Bunny (2008)/poster.png"
    beside.write_bytes(png(40, 60, (250, 250, 0)))


@pytest.fixture
async def tmdb() -> AsyncIterator[FakeTmdb]:
    fake = await FakeTmdb().start()
    try:
        yield fake
    finally:
        await fake.stop()


@dataclass
class Bench:
    lib: LibraryManager
    store: Store
    bus: EventBus
    registry: CollectorRegistry
    posters: Path
    library: Path
    key: list[str]


@pytest.fixture
async def bench(tmp_path: Path, tmdb: FakeTmdb) -> AsyncIterator[Bench]:
    root = tmp_path / "root"
    library = root / "srv/media/library"
    make_library(library)
    store = Store(tmp_path / "state/sokoul.db")
    await store.start()
    key = [V3_KEY]
    posters = tmp_path / "state/posters"
    bus, registry = EventBus(), CollectorRegistry()
    lib = LibraryManager(
        Host(root), store, bus, registry, roots=("/srv/media/library",), watch=False,
        tmdb=TmdbConfig(
            api_key=lambda: key[0], posters=posters, base_url=tmdb.url,
            image_base=tmdb.url + "/t/p/w342", timeout=1.0, interval=0.0,
        ),
    )  # fmt: skip
    await lib.scan(wait_probed=False)
    try:
        yield Bench(lib, store, bus, registry, posters, library, key)
    finally:
        await lib.tmdb.close()
        await store.stop()


async def _rows(store: Store) -> list[tuple[Any, ...]]:
    rows = await store.fetchall(
        "SELECT i.id, i.title, i.year, i.kind, i.tmdb_id, s.tmdb_id FROM library_items i "
        "LEFT JOIN library_shows s ON s.id = i.show_id ORDER BY i.rel_path"
    )
    return [tuple(r) for r in rows]


def _metric(b: Bench, result: str) -> float:
    value = b.registry.get_sample_value("sokoul_library_tmdb_requests_total", {"result": result})
    return float(value or 0.0)


async def test_no_key_asks_nothing(bench: Bench, tmdb: FakeTmdb) -> None:
    bench.key[0] = ""
    before = await _rows(bench.store)
    done = await bench.lib.tmdb.enrich()
    assert done == {"matched": 0, "missed": 0, "details": 0, "posters": 0, "pruned": 0}
    assert tmdb.seen == []
    assert await _rows(bench.store) == before
    snap = bench.lib.snapshot()["tmdb"]
    assert snap["state"] == "off" and "No TMDB key" in snap["detail"]
    assert snap["pending"] == 4 and snap["matched"] == 0  # 3 movies + 1 episode
    assert not bench.posters.exists()


async def test_match_by_search_then_by_id_and_posters_cached(bench: Bench, tmdb: FakeTmdb) -> None:
    with bench.bus.subscribe(LibraryUpdated) as updates:
        done = await bench.lib.tmdb.enrich()
        update = updates.queue.get_nowait()
    # Inception + Big Buck Bunny + the Severance episode matched; Zorblax is not on TMDB
    assert done == {"matched": 3, "missed": 1, "details": 0, "posters": 3, "pruned": 0}
    assert isinstance(update, LibraryUpdated) and update.changed == 6
    searches = sorted(
        (s.path, s.query["query"], s.query.get("year") or s.query.get("first_air_date_year"))
        for s in tmdb.requests("/3/search/")
    )
    assert searches == [
        ("/3/search/movie", "Big Buck Bunny", "2008"),
        ("/3/search/movie", "Inception", "2010"),
        ("/3/search/movie", "Zorblax Returns", "1999"),
        ("/3/search/tv", "Severance", None),
    ]
    assert all(s.query.get("api_key") == V3_KEY for s in tmdb.requests("/3/"))
    by_title = {r[1]: r for r in await _rows(bench.store)}
    assert by_title["Inception"][4] == 27205 and by_title["Big Buck Bunny"][4] == 10378
    assert by_title["Severance"][5] == 95396 and by_title["Zorblax Returns"][4] is None
    # posters: whole files with TMDB's bytes, no temporary file left behind
    files = sorted(p.name for p in bench.posters.iterdir())
    assert files == ["movie-10378.png", "movie-27205.png", "tv-95396.png"]
    assert (bench.posters / "movie-27205.png").read_bytes() == tmdb.posters["/inception.png"]
    snap = bench.lib.snapshot()["tmdb"]
    assert (snap["state"], snap["matched"], snap["missed"], snap["pending"], snap["posters"]) == (
        "ok", 3, 1, 0, 3
    )  # fmt: skip
    assert _metric(bench, "ok") == 6 and _metric(bench, "miss") == 1
    assert bench.registry.get_sample_value("sokoul_library_tmdb_posters") == 3
    # the page's facts
    total, items = await bench.lib.items(kind="movie")
    facts = await bench.lib.tmdb_details(items)
    inception = next(i for i in items if i.title == "Inception")
    assert facts[inception.id]["overview"].startswith("A thief")
    assert facts[inception.id]["tmdb_id"] == 27205
    assert await bench.lib.tmdb_poster(inception) == bench.posters / "movie-27205.png"

    # a second pass asks nothing: everything matched, the miss is remembered for a day
    tmdb.seen.clear()
    assert (await bench.lib.tmdb.enrich())["matched"] == 0
    assert tmdb.seen == []

    # ID first: details and the poster lost -> asked by id, never searched again
    async with bench.store.transaction() as db:
        await db.execute("DELETE FROM library_tmdb")
    (bench.posters / "movie-27205.png").unlink()
    done = await bench.lib.tmdb.enrich()
    assert done["details"] == 3 and done["posters"] == 3
    assert tmdb.requests("/3/search/") == []
    assert sorted(s.path for s in tmdb.requests("/3/")) == [
        "/3/movie/10378", "/3/movie/27205", "/3/tv/95396"
    ]  # fmt: skip
    assert (bench.posters / "movie-27205.png").read_bytes() == tmdb.posters["/inception.png"]

    # a movie that leaves the library: its details and poster go with it at the next pass;
    # a stray file of ours goes, anything else in the folder stays
    gone = bench.library / "Movies/Inception (2010)"
    for f in gone.iterdir():
        f.unlink()
    gone.rmdir()
    (bench.posters / "movie-999.jpg").write_bytes(b"stale")
    (bench.posters / "README").write_text("not ours")
    await bench.lib.scan(wait_probed=False)
    done = await bench.lib.tmdb.enrich()
    assert done["pruned"] == 2
    assert sorted(p.name for p in bench.posters.iterdir()) == [
        "README", "movie-10378.png", "tv-95396.png"
    ]  # fmt: skip
    assert await bench.store.scalar("SELECT COUNT(*) FROM library_tmdb") == 2


async def test_v4_read_token_goes_in_the_authorization_header(bench: Bench, tmdb: FakeTmdb) -> None:
    bench.key[0] = V4_TOKEN
    await bench.lib.tmdb.enrich()
    calls = tmdb.requests("/3/")
    assert len(calls) == 4
    assert all(c.authorization == f"Bearer {V4_TOKEN}" for c in calls)
    assert all("api_key" not in c.query for c in calls)
    assert bench.lib.snapshot()["tmdb"]["matched"] == 3


@pytest.mark.parametrize(
    ("script", "words"),
    [
        (["401"] * 8, "refused the API key"),
        (["500"] * 8, "HTTP 500"),
        (["badjson"] * 8, "not JSON"),
        (["slow"] * 8, "did not answer within 1 s"),
        (["429:3600"] * 8, "slow down"),
    ],
)
async def test_failures_leave_the_library_as_it_was(
    bench: Bench, tmdb: FakeTmdb, script: list[str], words: str
) -> None:
    before = await _rows(bench.store)
    tmdb.fail = list(script)
    started = time.monotonic()
    done = await bench.lib.tmdb.enrich()
    assert time.monotonic() - started < 5
    assert done["matched"] == 0 and done["posters"] == 0
    assert await _rows(bench.store) == before
    total, items = await bench.lib.items()
    assert total == 4 and len(items) == 4  # browsable as before
    snap = bench.lib.snapshot()["tmdb"]
    assert snap["state"] == "error" and words in snap["detail"], snap
    assert "Next try in" in snap["detail"]
    assert not bench.posters.exists() or not list(bench.posters.iterdir())
    enricher = bench.lib.tmdb
    assert enricher._retry_at is not None and enricher._retry_at > time.monotonic() + 30
    if script[0].startswith("429"):
        assert _metric(bench, "throttled") >= 1
        assert enricher._retry_at > time.monotonic() + 3000  # Retry-After honoured
    else:
        assert _metric(bench, "error") >= 1


async def test_no_network_at_all(bench: Bench, tmdb: FakeTmdb) -> None:
    await tmdb.stop()  # nothing listens on the port any more
    before = await _rows(bench.store)
    await bench.lib.tmdb.enrich()
    assert await _rows(bench.store) == before
    snap = bench.lib.snapshot()["tmdb"]
    assert snap["state"] == "error" and "cannot be reached" in snap["detail"]
    # back-off grows: 60 s, then 120 s
    first = bench.lib.tmdb._retry_at
    await bench.lib.tmdb.enrich()
    second = bench.lib.tmdb._retry_at
    assert first is not None and second is not None and second - first > 50


async def test_429_with_a_short_retry_after_is_waited_out(bench: Bench, tmdb: FakeTmdb) -> None:
    tmdb.fail = ["429:1"]
    started = time.monotonic()
    done = await bench.lib.tmdb.enrich()
    assert time.monotonic() - started >= 1.0
    assert done["matched"] == 3 and done["posters"] == 3
    assert _metric(bench, "throttled") == 1
    assert bench.lib.snapshot()["tmdb"]["state"] == "ok"


async def test_background_pass_after_a_scan_and_on_a_new_key(bench: Bench, tmdb: FakeTmdb) -> None:
    """The supervisor's way: start() -> a scan wakes the pass; an error waits for its
    back-off (no hot loop) and a new key (SettingsChanged) tries at once."""
    bench.key[0] = "wrong-key"
    await bench.lib.start()
    try:
        deadline = time.monotonic() + 10
        while bench.lib.snapshot()["tmdb"]["state"] != "error":
            assert time.monotonic() < deadline, bench.lib.snapshot()["tmdb"]
            await asyncio.sleep(0.05)
        asked = len(tmdb.seen)
        bench.lib.request_scan()  # more scans: no new request while backing off
        await asyncio.sleep(1.0)
        assert len(tmdb.seen) == asked
        bench.key[0] = V3_KEY
        bench.bus.publish(SettingsChanged(("content.tmdb_api_key",)))
        while bench.lib.snapshot()["tmdb"]["state"] != "ok":
            assert time.monotonic() < deadline, bench.lib.snapshot()["tmdb"]
            await asyncio.sleep(0.05)
        assert bench.lib.snapshot()["tmdb"]["matched"] == 3
        # the key removed while a retry was due: off, and the runner waits (no spinning)
        bench.lib.tmdb._retry_at = time.monotonic() - 1
        bench.key[0] = ""
        bench.bus.publish(SettingsChanged(("content.tmdb_api_key",)))
        while bench.lib.snapshot()["tmdb"]["state"] != "off":
            assert time.monotonic() < deadline, bench.lib.snapshot()["tmdb"]
            await asyncio.sleep(0.05)
        assert bench.lib.tmdb._retry_at is None
    finally:
        await bench.lib.stop()


async def test_a_poster_beside_the_file_wins_for_dlna_art(bench: Bench) -> None:
    from sokoul_appliance.dlna.artwork import find_artwork

    await bench.lib.tmdb.enrich()
    _, items = await bench.lib.items(kind="movie")
    by_title = {i.title: i for i in items}
    bunny, inception = by_title["Big Buck Bunny"], by_title["Inception"]
    root = bench.lib.host.root

    def art(item: Any, cached: Path | None) -> Any:
        return find_artwork(root / item.appliance_path.lstrip("/"), cached)

    bunny_cached = await bench.lib.tmdb_poster(bunny)
    assert bunny_cached is not None
    got = await asyncio.to_thread(art, bunny, bunny_cached)
    assert got is not None and got.path.name == "poster.png"  # beside the file
    got = await asyncio.to_thread(art, inception, await bench.lib.tmdb_poster(inception))
    assert got is not None and got.path == bench.posters / "movie-27205.png"
    assert got.mime == "image/png" and got.profile == "PNG_TN"


async def test_details_older_than_a_month_are_asked_again_by_id(
    bench: Bench, tmdb: FakeTmdb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A month on, a movie's details are asked again by its id (never searched): a new
    overview and poster on TMDB arrive (the cached file replaced atomically)."""
    await bench.lib.tmdb.enrich()
    old_poster = bench.posters / "movie-27205.png"
    assert old_poster.is_file()
    tmdb.posters["/inception-new.png"] = png(68, 100, (200, 200, 30))
    monkeypatch.setitem(
        MOVIES, 27205, {**MOVIES[27205], "overview": "Dreams.", "poster_path": "/inception-new.png"}
    )
    assert await bench.lib.tmdb.enrich() == {  # details younger than a month: nothing asked
        "matched": 0, "missed": 0, "details": 0, "posters": 0, "pruned": 0
    }  # fmt: skip
    async with bench.store.transaction() as db:
        await db.execute(
            "UPDATE library_tmdb SET fetched_at = ? WHERE kind = 'movie' AND tmdb_id = 27205",
            (time.time() - 31 * 86400,),
        )
    tmdb.seen.clear()
    done = await bench.lib.tmdb.enrich()
    assert [s.path for s in tmdb.seen] == ["/3/movie/27205", "/t/p/w342/inception-new.png"]
    assert (done["details"], done["posters"], done["pruned"]) == (1, 1, 0)
    _, items = await bench.lib.items(kind="movie", query="inception")
    facts = (await bench.lib.tmdb.details([items[0].id]))[items[0].id]
    assert facts["overview"] == "Dreams." and facts["poster_file"] == old_poster.name
    assert old_poster.read_bytes() == tmdb.posters["/inception-new.png"]  # replaced whole


async def test_dlna_content_tree_hands_out_the_cached_poster(bench: Bench) -> None:
    """The DLNA layer's poster look-up (upnp:albumArtURI, /art/{id}) falls back to the
    item's cached TMDB poster; one beside the file still wins, an unmatched item has none."""
    from sokoul_appliance.dlna.content import ContentTree

    tree = ContentTree(bench.lib, cast(Any, None))
    try:
        _, items = await bench.lib.items(kind="movie")
        by_title = {i.title: i for i in items}
        await bench.lib.tmdb.enrich()
        await tree.load_artwork(items, wait=None)
        inception = await tree.artwork(by_title["Inception"])
        assert inception is not None and inception.path == bench.posters / "movie-27205.png"
        bunny = await tree.artwork(by_title["Big Buck Bunny"])
        assert bunny is not None and bunny.path.name == "poster.png"
        assert await tree.artwork(by_title["Zorblax Returns"]) is None
    finally:
        await tree.close()


# ---- through the supervisor's API ----------------------------------------------------------


async def test_api_serves_posters_by_id(tmp_path: Path, tmdb: FakeTmdb) -> None:
    import shutil

    from sokoul_appliance.passwords import hash_password
    from tests.integration.supervisor_proc import SIM_ACPI, SupervisorProcess
    from tests.integration.test_panel_api import PASSWORD, Client

    root = tmp_path / "root"
    shutil.copytree(SIM_ACPI, root, symlinks=True)
    make_library(root / "srv/media/library")
    state = tmp_path / "state"
    state.mkdir()
    (state / "preseed.json").write_text(
        json.dumps({"admin_password_hash": hash_password(PASSWORD)})
    )
    sv = SupervisorProcess(state, root=root)
    await asyncio.to_thread(
        sv.start,
        {"SOKOUL_TMDB_URL": tmdb.url, "SOKOUL_TMDB_IMAGE_URL": tmdb.url + "/t/p/w342"},
    )
    c = Client(sv.url)
    try:
        await c.session()
        status, _ = await c.call("POST", "/api/login", {"username": "admin", "password": PASSWORD})
        assert status == 200
        await c.session()
        # no key yet: nothing asked, items without posters but Big Buck Bunny's beside it
        data = await _wait_library(c, lambda d: d["total"] == 4)
        assert data["library"]["tmdb"]["state"] == "off" and tmdb.seen == []
        posters = {i["title"]: i["poster"] for i in data["items"]}
        assert posters["Inception"] is None and posters["Big Buck Bunny"] is not None
        status, _ = await c.call("PATCH", "/api/settings", {"content": {"tmdb_api_key": V3_KEY}})
        assert status == 200
        data = await _wait_library(c, lambda d: d["library"]["tmdb"]["posters"] == 3)
        items = {i["title"]: i for i in data["items"]}
        inception = items["Inception"]
        assert inception["tmdb_id"] == 27205 and inception["overview"].startswith("A thief")
        assert inception["poster"] == f"/api/library/{inception['id']}/poster"
        assert items["Zorblax Returns"]["poster"] is None
        assert items["Zorblax Returns"]["tmdb_id"] is None
        async with c.http.get(sv.url + inception["poster"]) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "image/png"
            assert "max-age" in r.headers["Cache-Control"]
            assert await r.read() == tmdb.posters["/inception.png"]
        bunny = items["Big Buck Bunny"]
        async with c.http.get(sv.url + bunny["poster"]) as r:  # beside the file wins
            assert r.status == 200
            beside = root / "srv/media/library/Movies/Big Buck Bunny (2008)/poster.png"
            assert await r.read() == beside.read_bytes()
        zid = items["Zorblax Returns"]["id"]
        for path in (f"/api/library/{zid}/poster", "/api/library/it-0000/poster",
                     "/api/library/..%2F..%2Fetc%2Fpasswd/poster"):  # fmt: skip
            async with c.http.get(sv.url + path) as r:
                assert r.status == 404, path
        async with aiohttp.ClientSession() as anon, anon.get(sv.url + inception["poster"]) as r:
            assert r.status == 401
        assert (state / "posters/movie-27205.png").is_file()
    finally:
        await c.close()
        await asyncio.to_thread(sv.stop)


async def _wait_library(c: Any, ok: Any, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, data = await c.call("GET", "/api/library?limit=100")
        assert status == 200, data
        if ok(data):
            return dict(data)
        assert time.monotonic() < deadline, data
        await asyncio.sleep(0.2)


async def test_a_pass_never_holds_the_event_loop(
    bench: Bench, tmdb: FakeTmdb, caplog: pytest.LogCaptureFixture
) -> None:
    """asyncio's debug mode logs every callback longer than slow_callback_duration: 300 titles
    to group and look up, posters to write, all off the loop (the double shares the loop)."""
    import logging

    for n in range(300):
        p = bench.library / f"Movies/Film {n:03d} (2001)/Film {n:03d} (2001).mkv"
        p.parent.mkdir(parents=True)
        p.write_bytes(b"\0" * 100)
    await bench.lib.scan(wait_probed=False)
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = 0.25  # debug mode itself is slow (a traceback per task)
    caplog.set_level(logging.WARNING, logger="asyncio")
    try:
        done = await bench.lib.tmdb.enrich()
    finally:
        loop.set_debug(False)
    assert done["matched"] == 3 and done["missed"] == 301 and done["posters"] == 3
    assert len(tmdb.requests("/3/search/")) == 304  # 303 movies, 1 show
    slow = [
        r.getMessage() for r in caplog.records if r.name == "asyncio" and " took " in r.getMessage()
    ]
    assert slow == []
