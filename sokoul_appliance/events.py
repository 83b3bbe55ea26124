"""Every event on the bus, one small frozen dataclass each (the only place their shapes live)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SettingsChanged:
    keys: tuple[str, ...]


@dataclass(frozen=True)
class LogLine:
    ts: float
    level: str
    logger: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"ts": self.ts, "level": self.level, "logger": self.logger, "message": self.message}


@dataclass(frozen=True)
class SystemSampled:
    data: dict[str, Any]  # the GET /api/system body


@dataclass(frozen=True)
class SetupCompleted:
    source: str  # "wizard" | "preseed"


@dataclass(frozen=True)
class ManagerStateChanged:
    name: str
    state: str
    detail: str


Event = SettingsChanged | LogLine | SystemSampled | SetupCompleted | ManagerStateChanged


# storage room (sokoul_appliance/storage/): downloads pause on StorageDegraded(role="media")
@dataclass(frozen=True)
class StorageDegraded:
    role: str  # "media" | "cold"
    reason: str  # a sentence for the panel


@dataclass(frozen=True)
class StorageRecovered:
    role: str


@dataclass(frozen=True)
class StorageItemMoved:
    item: str  # path relative to the tier root, e.g. "library/Film (2020)"
    direction: str  # "to_cold" | "to_media"
    size_bytes: int


@dataclass(frozen=True)
class ItemPlayed:
    """A library item started playing (/stream: a TV, a browser, a Chromecast); at most once
    per item every few minutes. Drives tiering's 'last watched'."""

    item_id: str
    appliance_path: str  # e.g. "/srv/cold/library/Movies/Film (2020)/Film (2020).mkv"


@dataclass(frozen=True)
class StorageItemsRemoved:
    reason: str  # "seeding_done" | "watched_cleanup"
    paths: tuple[str, ...]  # appliance paths removed


# cores room (sokoul_appliance/cores/): the thermal governor asks to move background work
@dataclass(frozen=True)
class CpuPlacementRequest:
    avoid_cpus: tuple[int, ...]  # CPUs background work should leave; () restores the plan
    reason: str  # a sentence for the panel, e.g. "cluster of CPUs 8-11 at 76 °C"


# thermal room (sokoul_appliance/thermal/): what the governor asks of the other rooms
@dataclass(frozen=True)
class TorrentLimitRequest:
    factor: float  # the torrent room caps rates at thermal_base_limit x factor; 1.0 lifts it
    reason: str  # a sentence for the panel, e.g. "TZB0 at 76.0 °C (throttle at 75 °C)"


@dataclass(frozen=True)
class PauseHeavyWork:
    reason: str  # pause torrents and transcodes until ResumeHeavyWork


@dataclass(frozen=True)
class ResumeHeavyWork:
    reason: str


@dataclass(frozen=True)
class ThermalStateChanged:
    state: str  # "normal" | "throttled" | "critical"
    zone: str | None  # the hottest zone when it changed
    temp_c: float | None
    actions: tuple[str, ...]  # e.g. ("torrent_limit", "placement")


# vpn room (sokoul_appliance/vpn/): the port the VPN gateway forwards to the torrent namespace
@dataclass(frozen=True)
class VpnPortForwarded:
    port: int  # the external port (TCP and UDP) to listen on and announce; 0: no forwarded port


# torrent room (sokoul_appliance/torrent/): a download finished (every wanted piece verified);
# the library room moves/links it into the library, the torrent keeps seeding from it
@dataclass(frozen=True)
class DownloadFinished:
    torrent: str  # info hash (hex), the engine's torrent id
    name: str
    paths: tuple[str, ...]  # appliance paths of the downloaded files (or real paths when simulated)


# torrent room: the downloads as the engine reported them this second (the API's rows, one
# per torrent); the panel's Downloads page follows them over the WebSocket
@dataclass(frozen=True)
class DownloadsSampled:
    torrents: tuple[dict[str, Any], ...]


# library room (sokoul_appliance/library/): the library changed (a scan added, changed or
# removed items); the DLNA ContentDirectory bumps SystemUpdateID to update_id
@dataclass(frozen=True)
class LibraryUpdated:
    update_id: int
    added: int
    changed: int  # changed or moved (renamed, another tier)
    removed: int


# cast room (sokoul_appliance/cast/): a Chromecast appeared, changed (a cast's MEDIA_STATUS,
# the connection lost) or went away; the panel's Devices page and players follow these
@dataclass(frozen=True)
class CastDeviceChanged:
    device: dict[str, Any]  # one entry of GET /api/devices "chromecasts"


@dataclass(frozen=True)
class CastDeviceRemoved:
    device_id: str
