"""Where things go: downloads and the library on the media drive, cold items on the cold tier.

Paths are appliance paths (``/srv/media/downloads``); ``Host.path`` maps them to real ones.
While a tier is unavailable (degraded), asking for a place on it raises StorageUnavailable
instead of handing out a directory on the system drive's empty mount point.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath

from sokoul_appliance.host import Host
from sokoul_appliance.storage.roles import COLD, MEDIA, MOUNT_POINTS

DOWNLOADS = "downloads"
LIBRARY = "library"
AREAS = (DOWNLOADS, LIBRARY)


class StorageUnavailable(Exception):
    """The tier a caller needs is not mounted (or failing); the message says what to do."""


def area_path(role: str, area: str) -> str:
    return f"{MOUNT_POINTS[role]}/{area}"


def check_item(item: str) -> PurePosixPath:
    """An item path relative to a tier root, e.g. 'library/Film (2020)'; no '..', no absolute."""
    p = PurePosixPath(item)
    if p.is_absolute() or ".." in p.parts or len(p.parts) < 2 or p.parts[0] not in AREAS:
        raise ValueError(f"{item!r} is not an item under downloads/ or library/")
    return p


# The library's own layout (library/organize.py): Movies/Title (Year)/, Shows/Title/Season NN/,
# Videos/Name/. Tiering moves one film, one show or one video folder at a time; anything else
# at the top of library/ is its own item.
CATEGORIES = ("Movies", "Shows", "Videos")


def tiering_unit(rel: str) -> str | None:
    """The item (relative to a tier root) that holds ``rel``, a file or folder relative to the
    tier root: 'library/Movies/Film (2020)/Film (2020).mkv' -> 'library/Movies/Film (2020)',
    'library/Shows/Show/Season 01/e.mkv' -> 'library/Shows/Show', 'library/clip.mkv' ->
    'library/clip.mkv'. None for what is not in the library or is a category folder itself."""
    parts = PurePosixPath(rel).parts
    if len(parts) < 2 or parts[0] != LIBRARY or ".." in parts or parts[0].startswith("/"):
        return None
    depth = 3 if parts[1] in CATEGORIES else 2
    if len(parts) < depth:
        return None
    return "/".join(parts[:depth])


def unit_of_path(appliance_path: str) -> tuple[str, str] | None:
    """(role, item) for an appliance path on a tier ('/srv/cold/library/Movies/X/x.mkv' ->
    ('cold', 'library/Movies/X')); None elsewhere."""
    for role, mount in MOUNT_POINTS.items():
        if appliance_path.startswith(mount + "/"):
            item = tiering_unit(appliance_path[len(mount) + 1 :])
            return (role, item) if item is not None else None
    return None


class Placement:
    def __init__(self, host: Host, available: Callable[[str], bool]) -> None:
        self._host = host
        self._available = available

    def appliance_dir(self, role: str, area: str) -> str:
        if not self._available(role):
            raise StorageUnavailable(
                f"The {role} drive is not available, so nothing can be placed on it now. "
                "The Storage page says why; it resumes by itself when the drive is back."
            )
        return area_path(role, area)

    def downloads_dir(self) -> str:
        """Where the torrent engine writes (appliance path)."""
        return self.appliance_dir(MEDIA, DOWNLOADS)

    def library_dir(self) -> str:
        return self.appliance_dir(MEDIA, LIBRARY)

    def real(self, appliance_path: str) -> Path:
        return self._host.path(appliance_path)

    def locate(self, item: str) -> tuple[str, str] | None:
        """(role, appliance path) of an item on whichever available tier holds it, else None.
        Blocking (a stat per tier): call in a worker thread."""
        rel = check_item(item)
        for role in (MEDIA, COLD):
            if self._available(role):
                path = f"{MOUNT_POINTS[role]}/{rel}"
                if self._host.path(path).exists():
                    return role, path
        return None

    def ensure_areas(self, role: str) -> None:
        """Create downloads/ and library/ on a freshly mounted tier. Blocking."""
        for area in AREAS:
            self._host.path(area_path(role, area)).mkdir(parents=True, exist_ok=True)
