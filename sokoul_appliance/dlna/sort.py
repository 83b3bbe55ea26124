"""SortCriteria for Browse and Search (CDS:1 2.5.7): ``+dc:title,-dc:date``.

The forgiving reading, as minidlna's: the first property we can sort by decides the order,
the others (secondary keys, properties we do not have: ``upnp:artist``, ``upnp:class``…) are
ignored, and criteria naming nothing we sort by leave the container's own order. No 709
Unsupported sort criteria: TVs send odd lists (Samsung ``+upnp:class,+dc:title``) and treat a
fault as "the server is broken".

The orders are the library's own page orders (``LibraryManager.items(sort=…)``): a descending
page is the matching ascending page read back to front, never the whole list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sokoul_appliance.library import LibraryItem

# property -> (library sort, is the library's order descending for it?)
# dc:date sorts by when the item was added to the library ('added' is newest first): what a
# TV's "sort by date" means for files (minidlna's dc:date is the file's mtime), and the one
# date order the library keeps for whole containers. The DIDL's dc:date stays the release year.
_KEYS: dict[str, tuple[str, bool]] = {
    "dc:title": ("title", False),
    "dc:date": ("added", True),
    "upnp:episodeNumber": ("episode", False),
    "upnp:originalTrackNumber": ("episode", False),
}
_BY_FOLDED = {k.casefold(): k for k in _KEYS}
SORT_CAPABILITIES = ",".join(_KEYS)


def _title_key(i: LibraryItem) -> tuple[Any, ...]:
    return (i.title.casefold(), i.year or 0, i.season or 0, i.episode or 0, i.rel_path)


def _added_key(i: LibraryItem) -> tuple[Any, ...]:
    return (-i.added_at,)  # newest first, as the library's 'added'


def _episode_key(i: LibraryItem) -> tuple[Any, ...]:
    return (i.season or 0, i.episode or 0, i.rel_path)


_PY_KEYS: dict[str, Callable[[LibraryItem], tuple[Any, ...]]] = {
    "title": _title_key,
    "added": _added_key,
    "episode": _episode_key,
}


@dataclass(frozen=True)
class Order:
    prop: str  # the property it came from, e.g. 'dc:title'
    sort: str  # the library's sort: 'title' | 'added' | 'episode'
    reverse: bool  # read the library's order back to front
    descending: bool  # what the client asked ('-')

    def sorted(self, items: list[LibraryItem]) -> list[LibraryItem]:
        """A list already in memory (a season's episodes, the recent items) in this order;
        descending is the ascending list mirrored (ties too, as the library's pages)."""
        ordered = sorted(items, key=_PY_KEYS[self.sort])
        return ordered[::-1] if self.reverse else ordered

    @property
    def by_title(self) -> bool:
        return self.sort == "title"


def parse_sort(criteria: str | None) -> Order | None:
    """The first property we sort by, or None (the container's own order)."""
    for raw in (criteria or "").split(","):
        part = raw.strip()
        if not part:
            continue
        descending = part[0] == "-"
        prop = part[1:].strip() if part[0] in "+-" else part
        name = _BY_FOLDED.get(prop.casefold())
        if name is None:
            continue
        sort, library_descending = _KEYS[name]
        return Order(name, sort, descending != library_descending, descending)
    return None
