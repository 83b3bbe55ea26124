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


# cores room (sokoul_appliance/cores/): the thermal governor asks to move background work
@dataclass(frozen=True)
class CpuPlacementRequest:
    avoid_cpus: tuple[int, ...]  # CPUs background work should leave; () restores the plan
    reason: str  # a sentence for the panel, e.g. "cluster of CPUs 8-11 at 76 °C"
