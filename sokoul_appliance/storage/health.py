"""Per-drive wear and temperature from `nvme smart-log -o json`, and the storage metrics.

Values come from the drive or are absent: without nvme-cli, for a non-NVMe drive or when the
command fails, no sample is exported (never a made-up 0)."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from sokoul_appliance.host import CommandError, Host

log = logging.getLogger("sokoul.storage")

SMART_TIMEOUT = 10.0


@dataclass(frozen=True)
class DriveHealth:
    wear_ratio: float | None  # NVMe "percentage used" / 100 (may exceed 1.0)
    temperature_c: float | None

    def to_json(self) -> dict[str, Any]:
        return {"wear_ratio": self.wear_ratio, "temperature_c": self.temperature_c}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        m = re.search(r"-?\d+(\.\d+)?", value)
        return float(m.group()) if m else None
    return None


def parse_smart_log(text: str) -> DriveHealth:
    """nvme-cli's JSON smart log: 'percent_used' (older) or 'percentage_used', and
    'temperature' in kelvin as a number (older) or a string such as '40 °C (313 K)'."""
    data = json.loads(text)
    if not isinstance(data, dict):
        return DriveHealth(None, None)
    used = _number(data.get("percent_used", data.get("percentage_used")))
    raw_temp = data.get("temperature")
    temp: float | None = None
    if isinstance(raw_temp, str):
        celsius = re.search(r"(-?\d+(?:\.\d+)?)\s*°?\s*C\b", raw_temp)
        kelvin = re.search(r"(\d+(?:\.\d+)?)\s*K\b", raw_temp)
        if celsius:
            temp = float(celsius.group(1))
        elif kelvin:
            temp = float(kelvin.group(1)) - 273.15
    else:
        value = _number(raw_temp)
        if value is not None and value > 0:
            temp = value - 273.15 if value > 200 else value  # the NVMe field is in kelvin
    return DriveHealth(
        used / 100 if used is not None else None,
        round(temp, 1) if temp is not None else None,
    )


async def read_drive_health(host: Host, name: str) -> DriveHealth | None:
    """Health of /dev/<name> when it is an NVMe drive and nvme-cli answers; None otherwise."""
    if not name.startswith("nvme"):
        return None
    try:
        result = await host.run(
            "nvme",
            "smart-log",
            "-o",
            "json",
            str(host.path(f"/dev/{name}")),
            timeout=SMART_TIMEOUT,
        )
        return parse_smart_log(result.stdout)
    except FileNotFoundError:
        return None  # nvme-cli is not installed
    except (CommandError, TimeoutError, ValueError) as e:
        log.debug("no smart log for %s: %s", name, e)
        return None


class StorageMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.used = Gauge(
            "sokoul_storage_used_bytes",
            "Bytes used on each role's filesystem",
            ["role"],
            registry=registry,
        )
        self.free = Gauge(
            "sokoul_storage_free_bytes",
            "Bytes free on each role's filesystem",
            ["role"],
            registry=registry,
        )
        self.wear = Gauge(
            "sokoul_drive_wear_ratio",
            "NVMe percentage used / 100 (the drive's own endurance estimate)",
            ["drive"],
            registry=registry,
        )
        self.temperature = Gauge(
            "sokoul_drive_temperature_celsius",
            "Drive composite temperature",
            ["drive"],
            registry=registry,
        )
        self.migrated = Counter(
            "sokoul_storage_migrated_bytes_total",
            "Bytes moved between tiers",
            ["direction"],
            registry=registry,
        )
        self.degraded = Gauge(
            "sokoul_storage_degraded",
            "1 while a role's drive is missing or failing",
            ["role"],
            registry=registry,
        )

    def set_usage(self, role: str, usage: tuple[int, int] | None) -> None:
        if usage is None:
            for g in (self.used, self.free):
                _remove_label(g, role)
            return
        size, free = usage
        self.used.labels(role).set(size - free)
        self.free.labels(role).set(free)

    def set_health(self, drive: str, health: DriveHealth | None) -> None:
        for gauge, value in (
            (self.wear, health.wear_ratio if health else None),
            (self.temperature, health.temperature_c if health else None),
        ):
            if value is None:
                _remove_label(gauge, drive)
            else:
                gauge.labels(drive).set(value)


def _remove_label(gauge: Gauge, label: str) -> None:
    with contextlib.suppress(KeyError):
        gauge.remove(label)
