"""Everything the HTTP layer talks to, handed over by the composition root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sokoul_appliance.auth.accounts import Accounts
from sokoul_appliance.auth.sessions import Sessions
from sokoul_appliance.auth.throttle import LoginThrottle
from sokoul_appliance.bus import EventBus
from sokoul_appliance.cast import CastManager
from sokoul_appliance.cores import CoreGovernor
from sokoul_appliance.hardware import Hardware
from sokoul_appliance.health import HealthReporter
from sokoul_appliance.library import LibraryManager
from sokoul_appliance.logbook import RecentLogs
from sokoul_appliance.metrics import SupervisorMetrics
from sokoul_appliance.network.manager import NetworkManager
from sokoul_appliance.storage import StorageManager
from sokoul_appliance.store.settings import Settings
from sokoul_appliance.stream import StreamService
from sokoul_appliance.thermal import ThermalGovernor
from sokoul_appliance.torrent.manager import TorrentManager
from sokoul_appliance.vpn.manager import VpnManager
from sokoul_appliance.wizard.flow import Wizard


class StatusSource(Protocol):
    name: str
    title: str

    def status(self) -> tuple[str, str]: ...


@dataclass
class WebContext:
    settings: Settings
    accounts: Accounts
    sessions: Sessions
    throttle: LoginThrottle
    wizard: Wizard
    hardware: Hardware
    cores: CoreGovernor
    thermal: ThermalGovernor
    storage: StorageManager
    network: NetworkManager
    vpn: VpnManager
    library: LibraryManager
    torrents: TorrentManager
    stream: StreamService
    health: HealthReporter
    logs: RecentLogs
    metrics: SupervisorMetrics
    bus: EventBus
    subsystems: list[StatusSource]
    static_dir: Path
    simulated: bool  # a simulated board (dev mode, tests): managers change nothing
    cast: CastManager | None = None  # Chromecasts (None in tests that build no cast room)
