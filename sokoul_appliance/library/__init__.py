"""The library room: scan, guessit parse, ffprobe, sidecar subtitles, organize, FTS5 search."""

from sokoul_appliance.library.manager import LibraryManager, ScanResult
from sokoul_appliance.library.model import Folder, LibraryItem, Season, Show, SubtitleTrack
from sokoul_appliance.library.organize import OrganizeError

__all__ = [
    "Folder",
    "LibraryItem",
    "LibraryManager",
    "OrganizeError",
    "ScanResult",
    "Season",
    "Show",
    "SubtitleTrack",
]
