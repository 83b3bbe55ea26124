"""One look at the hardware: CPU clusters, thermal zones, fans, network ports, drives.

``await discover(host)`` reads everything in a worker thread (never on the event loop) and
returns a frozen ``Discovery``; whatever was missing or malformed is listed in ``problems``
(sentences naming the file) and the affected value is None or left out - it never raises.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sokoul_appliance.board.cpus import Cluster, discover_clusters
from sokoul_appliance.board.drives import Drive, discover_drives
from sokoul_appliance.board.nics import Nic, discover_nics
from sokoul_appliance.board.sysfs import SysfsReader
from sokoul_appliance.board.thermal import Fan, ThermalZone, discover_fans, discover_zones
from sokoul_appliance.host import Host


@dataclass(frozen=True)
class Discovery:
    board: str | None  # /etc/sokoul/board
    clusters: tuple[Cluster, ...]
    thermal_zones: tuple[ThermalZone, ...]
    fans: tuple[Fan, ...]
    nics: tuple[Nic, ...]
    drives: tuple[Drive, ...]
    problems: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "board": self.board,
            "clusters": [c.to_json() for c in self.clusters],
            "thermal_zones": [z.to_json() for z in self.thermal_zones],
            "fans": [f.to_json() for f in self.fans],
            "nics": [n.to_json() for n in self.nics],
            "drives": [d.to_json() for d in self.drives],
            "problems": list(self.problems),
        }

    def system_drive(self) -> Drive | None:
        return next((d for d in self.drives if d.holds_system), None)


def discover_sync(host: Host) -> Discovery:
    """The blocking work of ``discover``; call it only from a worker thread or a CLI."""
    reader = SysfsReader(host)
    board = reader.text("/etc/sokoul/board", optional=True)
    return Discovery(
        board=board or None,
        clusters=tuple(discover_clusters(reader)),
        thermal_zones=tuple(discover_zones(reader)),
        fans=tuple(discover_fans(reader)),
        nics=tuple(discover_nics(reader)),
        drives=tuple(discover_drives(reader)),
        problems=tuple(reader.problems),
    )


async def discover(host: Host) -> Discovery:
    return await asyncio.to_thread(discover_sync, host)
