"""Thermal zones (/sys/class/thermal) and fans (hwmon channels, the CIX EC's /sys/cix_fan)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sokoul_appliance.board.sysfs import SysfsReader, matching

THERMAL = "/sys/class/thermal"
HWMON = "/sys/class/hwmon"
CIX_EC_FAN = "/sys/cix_fan"  # vendor cix-ec-fan driver (DT mode): a bare kobject, not hwmon

# pwmN_enable meaning per hwmon driver name. The CIX fan (ACPI mode, hwmon "cix_fan") uses
# 0 = off, 1 = full, 2 = auto; the generic hwmon ABI uses 0 = full speed (no control),
# 1 = manual, 2+ = automatic. pwm-fan's pwm1_enable only says what pwm1=0 does: its speed is
# set by hand (pwm1) or by a thermal cooling map, so it reads as "manual".
CIX_FAN_MODES = {0: "off", 1: "full", 2: "auto"}
HWMON_ABI_MODES = {0: "full", 1: "manual"}
# cix-ec-fan profiles: mute / normal / performance are EC-driven curves; manual is a fixed duty.
EC_PROFILE_MODES = {"mute": "auto", "normal": "auto", "performance": "auto", "manual": "manual"}


@dataclass(frozen=True)
class ThermalZone:
    name: str  # ACPI object name (TZB0) for acpitz zones, else the zone type (gpu0-thermal)
    type: str | None
    temp_c: float | None
    path: str  # /sys/class/thermal/thermal_zoneN

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "temp_c": self.temp_c}


@dataclass(frozen=True)
class Fan:
    name: str
    mode: str | None  # off | full | auto | manual | None
    rpm: int | None
    profile: str | None  # the CIX EC's own profile name (mute/normal/performance) when known
    path: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "mode": self.mode, "rpm": self.rpm, "profile": self.profile}


def read_temp_c(reader: SysfsReader, path: str) -> float | None:
    millideg = reader.integer(path)
    return None if millideg is None else millideg / 1000


def discover_zones(reader: SysfsReader) -> list[ThermalZone]:
    zones = []
    for entry in matching(reader.listdir(THERMAL), r"thermal_zone\d+"):
        path = f"{THERMAL}/{entry}"
        ztype = reader.text(f"{path}/type")
        acpi = reader.text(f"{path}/device/path", optional=True)  # "\_TZ_.TZB0"
        name = acpi.rsplit(".", 1)[-1].lstrip("\\") if acpi else ztype or entry
        zones.append(ThermalZone(name, ztype, read_temp_c(reader, f"{path}/temp"), path))
    return zones


def _hwmon_mode(reader: SysfsReader, driver: str, path: str, channel: str) -> str | None:
    enable = reader.integer(f"{path}/pwm{channel}_enable", optional=True)
    if driver == "pwm-fan":
        return "manual"
    if enable is None:
        return None
    if driver == "cix_fan":
        mode = CIX_FAN_MODES.get(enable)
    else:
        mode = HWMON_ABI_MODES.get(enable, "auto" if enable >= 2 else None)
    if mode is None:
        reader.note(f"{path}/pwm{channel}_enable: unknown value {enable}")
    return mode


def discover_fans(reader: SysfsReader) -> list[Fan]:
    fans = []
    for entry in matching(reader.listdir(HWMON), r"hwmon\d+"):
        path = f"{HWMON}/{entry}"
        files = reader.listdir(path)
        channels = sorted(
            {m.group(1) for f in files if (m := re.fullmatch(r"(?:pwm|fan)(\d+)(?:_\w+)?", f))},
            key=int,
        )
        if not channels:
            continue  # a temperature-only sensor (nvme, cpu...)
        driver = reader.text(f"{path}/name") or entry
        for ch in channels:
            name = driver if len(channels) == 1 else f"{driver}/fan{ch}"
            rpm = reader.integer(f"{path}/fan{ch}_input", optional=True)
            mode = _hwmon_mode(reader, driver, path, ch)
            fans.append(Fan(name, mode, rpm, None, path))
    if reader.exists(f"{CIX_EC_FAN}/mode"):
        profile = reader.text(f"{CIX_EC_FAN}/mode")
        mode = EC_PROFILE_MODES.get(profile) if profile else None
        if profile and mode is None:
            reader.note(f"{CIX_EC_FAN}/mode: unknown profile {profile!r}")
        fans.append(Fan("cix_fan", mode, None, profile, CIX_EC_FAN))
    return fans
