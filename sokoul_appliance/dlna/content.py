"""The ContentDirectory's tree over the library: what Browse and Search return.

    0 (root)
    ├── movies           every movie, by title
    ├── shows            sh-… shows → se-… seasons → it-… episodes
    ├── recent           the newest RECENT_LIMIT items
    └── fo-root          "Folders": the library areas' folders (fo-…) and items

Object ids are the library's opaque ids ('it-…', 'sh-…', 'se-…', 'fo-…') and four fixed
names; no id holds a path. An item's parentID is the container it was browsed in (its natural
parent in BrowseMetadata and Search: 'movies', its season, or its folder).
"""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sokoul_appliance.dlna import didl
from sokoul_appliance.dlna.artwork import Artwork, find_artwork
from sokoul_appliance.dlna.search import Node, matches, parse_criteria
from sokoul_appliance.dlna.sort import Order
from sokoul_appliance.library import Folder, LibraryItem, LibraryManager, Season, Show
from sokoul_appliance.library.model import ROOT_FOLDER
from sokoul_appliance.stream import StreamService, dlna
from sokoul_appliance.stream.profiles import PROFILES_DIR, ClientProfile
from sokoul_appliance.stream.transcode import DIRECT
from sokoul_appliance.tasks import cancel_and_wait

ROOT = "0"
MOVIES = "movies"
SHOWS = "shows"
RECENT = "recent"
RECENT_LIMIT = 100
ART_WAIT = 0.015  # the most a Browse page waits for its poster look-up
ART_TTL = 300.0  # seconds a looked-up (or missing) poster is trusted before a new look
PAGE_MAX = 1000  # the most objects one Browse returns (RequestedCount 0 = "as many as you can")
FRAGMENTS_KEPT = 10_000  # DIDL <item> fragments remembered (~1 kB each with its key)
TOP = ((MOVIES, "Movies"), (SHOWS, "Shows"), (RECENT, "Recently added"), (ROOT_FOLDER, "Folders"))


_NO_ART: tuple[float, Artwork | None] = (0.0, None)


class NoSuchObject(LookupError):
    """UPnP error 701."""


@dataclass(frozen=True)
class DidlOptions:
    """A profile's DIDL quirks: the ``[dlna]`` table of its TOML file."""

    subtitle_res: bool = False  # a text/srt res beside the video res (LG reads captions there)


def load_didl_options(directory: Path = PROFILES_DIR) -> dict[str, DidlOptions]:
    """{profile name: options} from each profile file's [dlna] table (blocking reads)."""
    out = {}
    for path in sorted(directory.glob("*.toml")):
        with path.open("rb") as f:
            data = tomllib.load(f)
        table = data.get("dlna", {})
        out[str(data["name"])] = DidlOptions(subtitle_res=bool(table.get("subtitle_res", False)))
    return out


@dataclass(frozen=True)
class Client:
    """Who asks: the profile (by User-Agent), the base URL the client reached us on, and
    whether it asked for captions (Samsung's getCaptionInfo.sec: 1 header)."""

    profile: ClientProfile
    base_url: str
    caption_header: bool = False


@dataclass(frozen=True)
class Page:
    result: str  # DIDL-Lite document
    returned: int
    total: int


def _window(start: int, count: int) -> int:
    return PAGE_MAX if count <= 0 else min(count, PAGE_MAX)


class ContentTree:
    def __init__(
        self,
        library: LibraryManager,
        stream: StreamService,
        options: Mapping[str, DidlOptions] | None = None,
    ) -> None:
        self.library = library
        self.stream = stream
        self.options = dict(options or {})
        self._choices: dict[tuple[object, ...], tuple[str, bool]] = {}
        self._fragments: OrderedDict[tuple[object, ...], str] = OrderedDict()
        self._art: dict[str, tuple[float, Artwork | None]] = {}  # item id -> (until, art)
        self._bookmarks: dict[str, int] | None = None  # item id -> seconds, read on first use
        self._looking: set[str] = set()
        self._lookups: set[asyncio.Future[list[Artwork | None]]] = set()

    # ---- artwork ---------------------------------------------------------------------------

    async def load_artwork(
        self, items: Sequence[LibraryItem], wait: float | None = ART_WAIT
    ) -> None:
        """Look for posters beside the items not looked at recently: one worker-thread pass
        (a folder listing per item). A page waits at most ``wait`` seconds for it (a cold
        directory cache costs ~0.5 ms a folder); what is not found in time appears on the
        next Browse, the look-up goes on in the background. ``wait=None`` waits for it."""
        now = time.monotonic()
        todo = [
            i for i in items
            if i.id not in self._looking and self._art.get(i.id, (0.0, None))[0] <= now
        ]  # fmt: skip
        if todo:
            root = self.library.host.root

            def look(tmdb: dict[str, Path]) -> list[Artwork | None]:
                # the scan's own relative paths under the host root (no '..': they come from
                # the walk); find_artwork resolves only an image it is about to hand out. A
                # poster beside the file wins over the item's cached TMDB poster.
                return [
                    find_artwork(root / i.appliance_path.lstrip("/"), tmdb.get(i.id)) for i in todo
                ]

            async def lookup() -> list[Artwork | None]:
                return await asyncio.to_thread(look, await self.library.tmdb_posters(todo))

            task = asyncio.ensure_future(lookup())
            ids = {i.id for i in todo}
            self._looking |= ids

            def store(done: asyncio.Future[list[Artwork | None]]) -> None:
                self._looking -= ids
                self._lookups.discard(done)
                if done.cancelled() or done.exception() is not None:
                    return
                if len(self._art) > 50_000:
                    self._art.clear()
                until = time.monotonic() + ART_TTL
                for item, art in zip(todo, done.result(), strict=True):
                    self._art[item.id] = (until, art)

            task.add_done_callback(store)
            self._lookups.add(task)
        pending = [t for t in self._lookups if not t.done()]
        if not pending:
            return
        if wait is None:
            await asyncio.gather(*(asyncio.shield(t) for t in pending))
        else:
            await asyncio.wait(pending, timeout=wait)  # a timeout cancels nothing

    async def artwork(self, item: LibraryItem) -> Artwork | None:
        await self.load_artwork([item], wait=None)
        return self._art.get(item.id, (0.0, None))[1]

    async def close(self) -> None:
        """Cancel the look-ups still running (the manager's stop)."""
        await cancel_and_wait(self._lookups)
        self._lookups.clear()

    # ---- resume bookmarks (Samsung X_SetBookmark, sec:dcmInfo BM=) --------------------------

    async def _ready_bookmarks(self, client: Client, flt: didl.Filter) -> None:
        """Read the bookmarks once, before the first page that shows them."""
        if self._bookmarks is None and client.profile.dcm_info and flt.asks("sec:dcmInfo"):
            self._bookmarks = await self.library.bookmarks()

    def _bookmark(self, item: LibraryItem, client: Client, flt: didl.Filter) -> int | None:
        if self._bookmarks is None or not client.profile.dcm_info or not flt.asks("sec:dcmInfo"):
            return None
        return self._bookmarks.get(item.id, 0)

    async def set_bookmark(self, object_id: str, seconds: int) -> bool:
        """Where a TV stopped playing an item (0 clears it); False for no such item."""
        if not object_id.startswith("it-") or not await self.library.set_bookmark(
            object_id, seconds
        ):
            return False
        if self._bookmarks is None:
            self._bookmarks = await self.library.bookmarks()
        elif seconds > 0:
            self._bookmarks[object_id] = seconds
        else:
            self._bookmarks.pop(object_id, None)
        return True

    # ---- objects ---------------------------------------------------------------------------

    def item_view(
        self, item: LibraryItem, parent_id: str, client: Client, flt: didl.Filter
    ) -> didl.ItemView:
        profile = client.profile
        protocol_info, direct = self._choice(item, profile)
        media = item.media
        base = client.base_url
        resources = [
            didl.Res(
                url=f"{base}/stream/{item.id}",
                protocol_info=protocol_info,
                size=item.size if direct else None,
                duration=dlna.didl_duration(item.duration),
                resolution=media.resolution if media else None,
                bitrate=(media.bitrate // 8 if media and media.bitrate and direct else None),
                channels=(media.audio[0].channels if media and media.audio else None),
            )
        ]
        caption = None
        has_subtitles = bool(item.sidecars or (media is not None and media.subtitles))
        sub = self.stream.subtitle_path(item, profile) if has_subtitles else None
        if sub is not None:
            asked = client.caption_header or flt.asks("sec:CaptionInfoEx")
            if profile.caption_info_sec and (asked or flt.everything):
                caption = (base + sub, profile.subtitle_format)
            if asked or self.options.get(profile.name, DidlOptions()).subtitle_res:
                mime = profile.mime_for(profile.subtitle_format, "text/srt")
                resources.append(didl.Res(base + sub, f"http-get:*:{mime}:*", subtitle=True))
        art = self._art.get(item.id, (0.0, None))[1]
        return didl.ItemView(
            id=item.id,
            parent_id=parent_id,
            title=item.display_title,
            date=f"{item.year:04d}-01-01" if item.year else None,
            resources=resources,
            album_art=(f"{base}/art/{item.id}", art.profile) if art is not None else None,
            caption=caption,
            bookmark=self._bookmark(item, client, flt),
        )

    def item_fragment(
        self, item: LibraryItem, parent_id: str, client: Client, flt: didl.Filter
    ) -> str:
        """``item_xml(item_view(…))``, remembered. The key holds everything the fragment is
        made of (the item's shown facts, its poster, the client's profile, address and caption
        wish, the Filter), so a changed item, poster or client misses instead of going stale;
        no invalidation needed. A page of 100 seen before costs 100 look-ups instead of 100
        builds (Browse latency; a TV browses the same pages back and forth). The oldest go
        first past FRAGMENTS_KEPT."""
        key = (
            item.id, parent_id, client.profile.name, client.base_url, client.caption_header,
            flt, item.display_title, item.year, item.size, item.duration, item.container,
            item.rel_path, item.media, bool(item.sidecars), self._art.get(item.id, _NO_ART)[1],
            self._bookmark(item, client, flt),
        )  # fmt: skip
        fragments = self._fragments
        hit = fragments.get(key)
        if hit is None:
            hit = didl.item_xml(self.item_view(item, parent_id, client, flt), flt)
            fragments[key] = hit
            if len(fragments) > FRAGMENTS_KEPT:
                fragments.popitem(last=False)
        return hit

    def _choice(self, item: LibraryItem, profile: ClientProfile) -> tuple[str, bool]:
        """(res@protocolInfo, direct play?) from the streamer's choice for this client. The
        choice depends on the profile and the file's kind (container, extension, probed
        streams), not on the item: remembered per kind, so a 100-item page asks the streamer
        a few times instead of 100 (Browse latency; bench/dlna.sh)."""
        key = (profile.name, item.container, item.rel_path.rpartition(".")[2].lower(), item.media)
        hit = self._choices.get(key)
        if hit is None:
            _, choice = self.stream.choose(item, profile)
            hit = (choice.protocol_info, choice.mode == DIRECT)
            if len(self._choices) > 4096:
                self._choices.clear()
            self._choices[key] = hit
        return hit

    @staticmethod
    def natural_parent(item: LibraryItem) -> str:
        if item.kind == "movie":
            return MOVIES
        if item.kind == "episode" and item.show_id is not None:
            from sokoul_appliance.library.model import season_id

            return season_id(item.show_id, item.season or 0)
        return item.folder_id

    async def _count(self, **kw: object) -> int:
        return (await self.library.items(limit=0, **kw))[0]  # type: ignore[arg-type]

    async def _container(self, object_id: str) -> didl.ContainerView:
        lib = self.library
        if object_id == ROOT:
            return didl.ContainerView(ROOT, "-1", "Library", len(TOP))
        if object_id == MOVIES:
            return didl.ContainerView(MOVIES, ROOT, "Movies", await self._count(kind="movie"))
        if object_id == SHOWS:
            return didl.ContainerView(SHOWS, ROOT, "Shows", len(await lib.shows()))
        if object_id == RECENT:
            return didl.ContainerView(
                RECENT, ROOT, "Recently added", min(RECENT_LIMIT, await self._count())
            )
        found = await lib.resolve(object_id)
        if found is None and object_id == ROOT_FOLDER:  # an empty library has no folder rows
            return didl.ContainerView(ROOT_FOLDER, ROOT, "Folders", 0)
        if isinstance(found, Show):
            return self._show_view(found)
        if isinstance(found, Season):
            return self._season_view(found)
        if isinstance(found, Folder):
            return self._folder_view(found)
        raise NoSuchObject(object_id)

    @staticmethod
    def _show_view(s: Show) -> didl.ContainerView:
        title = f"{s.title} ({s.year})" if s.year else s.title
        return didl.ContainerView(s.id, SHOWS, title, s.seasons)

    @staticmethod
    def _season_view(s: Season) -> didl.ContainerView:
        return didl.ContainerView(s.id, s.show_id, s.title, s.episodes)

    @staticmethod
    def _folder_view(f: Folder) -> didl.ContainerView:
        if f.id == ROOT_FOLDER:
            return didl.ContainerView(ROOT_FOLDER, ROOT, "Folders", f.children)
        return didl.ContainerView(f.id, f.parent_id or ROOT_FOLDER, f.name, f.children)

    # ---- Browse ----------------------------------------------------------------------------

    async def metadata(self, object_id: str, client: Client, flt: didl.Filter) -> Page:
        await self._ready_bookmarks(client, flt)
        if object_id.startswith("it-"):
            item = await self.library.item(object_id)
            if item is None:
                raise NoSuchObject(object_id)
            if flt.wants("upnp:albumArtURI"):
                await self.load_artwork([item], wait=None)
            view = self.item_view(item, self.natural_parent(item), client, flt)
            return Page(didl.document([didl.item_xml(view, flt)]), 1, 1)
        c = await self._container(object_id)
        return Page(didl.document([didl.container_xml(c, flt)]), 1, 1)

    async def _items(
        self, order: Order | None, start: int, limit: int, default: str = "title", **scope: Any
    ) -> tuple[int, list[LibraryItem]]:
        """One page of the library's items in the asked order. A descending page is read as
        the mirrored ascending page (the library keeps each order's list: the total is free)
        and turned around."""
        items = self.library.items
        if order is None or not order.reverse:
            sort = default if order is None else order.sort
            return await items(sort=sort, offset=start, limit=limit, **scope)
        total = (await items(sort=order.sort, limit=0, **scope))[0]
        end = total - start
        if end <= 0 or limit <= 0:
            return total, []
        first = max(0, end - limit)
        _, page = await items(sort=order.sort, offset=first, limit=end - first, **scope)
        return total, page[::-1]

    async def children(
        self,
        object_id: str,
        start: int,
        count: int,
        client: Client,
        flt: didl.Filter,
        order: Order | None = None,
    ) -> Page:
        """Direct children, paged. ``order`` (SortCriteria) sorts items by it; containers
        (shows, seasons, folders) follow dc:title only (ascending or descending) and keep
        their own order for the other properties; the four top containers never move."""
        await self._ready_bookmarks(client, flt)
        lib = self.library
        limit = _window(start, count)
        containers: list[didl.ContainerView] = []
        items: list[LibraryItem] = []
        flip = order is not None and order.by_title and order.descending
        if object_id == ROOT:
            tops = [await self._container(cid) for cid, _ in TOP]
            total, containers = len(tops), tops[start : start + limit]
        elif object_id == MOVIES:
            total, items = await self._items(order, start, limit, kind="movie")
        elif object_id == RECENT:
            if order is None:
                total, items = await lib.items(
                    sort="added", offset=start, limit=max(0, min(limit, RECENT_LIMIT - start))
                )
                total = min(total, RECENT_LIMIT)
            else:
                recent = (await lib.items(sort="added", limit=RECENT_LIMIT))[1]
                total, items = len(recent), order.sorted(recent)[start:][:limit]
        elif object_id == SHOWS:
            shows = await lib.shows()
            if flip:
                shows.reverse()
            total, containers = len(shows), [self._show_view(s) for s in shows[start:][:limit]]
        else:
            found = await lib.resolve(object_id)
            if isinstance(found, Show):
                seasons = await lib.seasons(found.id)
                if flip:
                    seasons.reverse()
                total = len(seasons)
                containers = [self._season_view(s) for s in seasons[start:][:limit]]
            elif isinstance(found, Season):
                episodes = await lib.episodes(found.show_id, found.number)
                if order is not None:
                    episodes = order.sorted(episodes)
                total, items = len(episodes), episodes[start:][:limit]
            elif isinstance(found, Folder):
                n = await lib.subfolder_count(found.id)
                if start < n:
                    take = min(limit, n - start)
                    if flip:
                        subs = (await lib.subfolders(found.id, n - start - take, take))[::-1]
                    else:
                        subs = await lib.subfolders(found.id, start, take)
                    containers = [self._folder_view(f) for f in subs]
                rest = limit - len(containers)
                n_items, items = await self._items(order, max(0, start - n), rest, folder=found.id)
                total = n + n_items
            elif object_id == ROOT_FOLDER:  # an empty library has no folder rows
                total = 0
            else:
                raise NoSuchObject(object_id)
        if items and flt.wants("upnp:albumArtURI"):
            await self.load_artwork(items)
        parts = [didl.container_xml(c, flt) for c in containers]
        parts += [self.item_fragment(i, object_id, client, flt) for i in items]
        return Page(didl.document(parts), len(parts), total)

    # ---- Search ----------------------------------------------------------------------------

    async def search(
        self,
        container_id: str,
        criteria: str,
        start: int,
        count: int,
        client: Client,
        flt: didl.Filter,
        order: Order | None = None,
    ) -> Page:
        """Video items under the container whose properties match (SearchCriteriaError for
        criteria we cannot read), by title unless ``order`` says otherwise. Containers are
        never search results."""
        await self._ready_bookmarks(client, flt)
        node = parse_criteria(criteria)
        scope: dict[str, object] = {}
        if container_id in (ROOT, RECENT, SHOWS) or container_id == ROOT_FOLDER:
            if container_id == SHOWS:
                scope = {"kind": "episode"}
        elif container_id == MOVIES:
            scope = {"kind": "movie"}
        else:
            found = await self.library.resolve(container_id)
            if isinstance(found, Show):
                scope = {"show_id": found.id}
            elif isinstance(found, Season):
                scope = {"show_id": found.show_id, "season": found.number}
            elif isinstance(found, Folder):
                scope = {"folder": found.id}
            else:
                raise NoSuchObject(container_id)
        limit = _window(start, count)
        sort = "title" if order is None else order.sort
        reverse = order is not None and order.reverse
        hits: list[LibraryItem] = []
        total = 0
        offset = 0
        while True:
            n, page = await self.library.items(sort=sort, offset=offset, limit=PAGE_MAX, **scope)  # type: ignore[arg-type]
            for item in page:
                if matches(node, self._properties(item)):
                    # back to front: every match is kept (ids only would need a second read)
                    if reverse or start <= total < start + limit:
                        hits.append(item)
                    total += 1
            offset += len(page)
            if not page or offset >= n:
                break
        if reverse:
            hits = hits[::-1][start : start + limit]
        if hits and flt.wants("upnp:albumArtURI"):
            await self.load_artwork(hits)
        parts = [self.item_fragment(i, self.natural_parent(i), client, flt) for i in hits]
        return Page(didl.document(parts), len(parts), total)

    @staticmethod
    def _properties(item: LibraryItem) -> dict[str, list[str]]:
        props = {
            "upnp:class": [didl.VIDEO_CLASS],
            "dc:title": [item.display_title],
            "@id": [item.id],
            "res@size": [str(item.size)],
            "res@protocolInfo": [f"http-get:*:{item.mime_type}:*"],
        }
        if item.year:
            props["dc:date"] = [f"{item.year:04d}-01-01"]
        if item.duration is not None:
            props["res@duration"] = [dlna.didl_duration(item.duration) or ""]
        return props


def parse_or_none(criteria: str) -> Node | None:
    return parse_criteria(criteria) if criteria else None
