"""Settings: typed keys with defaults and validation, stored in SQLite, written atomically.

A change is validated as a whole first (every error reported, keyed by its dotted name); then
all of its keys are written in one transaction, so a failed or interrupted write leaves the old
settings intact. Secrets (API keys, the WireGuard config) are never part of ``public_view``.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from sokoul_appliance.bus import EventBus
from sokoul_appliance.events import SettingsChanged
from sokoul_appliance.store.database import Store

HOSTNAME_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class SettingsError(ValueError):
    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = fields
        super().__init__("; ".join(f"{k}: {v}" for k, v in sorted(fields.items())))


@cache
def timezones() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def check_hostname(value: Any) -> str:
    if not isinstance(value, str) or not HOSTNAME_RE.match(value.lower()):
        raise ValueError(
            "use 1-63 letters, digits and '-' (not at the start or end), e.g. sokoul-living-room"
        )
    return value.lower()


def check_timezone(value: Any) -> str:
    if not isinstance(value, str) or value not in timezones():
        raise ValueError("pick a timezone from the list, e.g. Europe/Paris")
    return value


def check_celsius(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 40 <= value <= 110:
        raise ValueError("a temperature in °C between 40 and 110")
    return int(value)


def check_urls(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("a list of URLs")
    out = []
    for i, raw in enumerate(value, 1):
        url = raw.strip()
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"URL {i} ({url[:80]}) is not an http:// or https:// address")
        out.append(url)
    if len(out) > 50:
        raise ValueError("at most 50 URLs")
    return out


def check_secret(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 4096 or any(c in value for c in "\r\n\0"):
        raise ValueError("a single line of text (an empty string clears it)")
    return value.strip()


def check_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("true or false")
    return value


def check_watermark_percent(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 90:
        raise ValueError("a percentage of the media drive between 1 and 90")
    return int(value)


def check_cold_after_days(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3650:
        raise ValueError("a number of days between 0 and 3650")
    return int(value)


def check_cleanup_days(value: Any) -> int:
    """0 = never delete watched media (the default); else days after the last watch."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3650:
        raise ValueError("a number of days between 1 and 3650, or 0 for never")
    return int(value)


def check_rate_limit(value: Any) -> int:
    """Bytes per second, 0 = unlimited (torrent.download_limit / upload_limit)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10**10:
        raise ValueError("a speed in bytes per second (a whole number, 0 for unlimited)")
    return int(value)


def check_json_object(value: Any) -> Any:
    if value is not None and not isinstance(value, dict):
        raise ValueError("an object or null")
    return value


def check_text(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError("text or null")
    return value


def check_internet_mode(value: Any) -> str:
    if value not in ("dhcp", "static"):
        raise ValueError('"dhcp" (the router gives the address) or "static"')
    return str(value)


def check_ipv4_interface(value: Any) -> str | None:
    """An IPv4 address with its prefix ("192.168.1.20/24"), or null."""
    if value is None:
        return None
    try:
        iface = ipaddress.IPv4Interface(value) if isinstance(value, str) else None
    except ValueError:
        iface = None
    if iface is None or "/" not in value or iface.network.prefixlen > 30:
        raise ValueError("an IPv4 address with its prefix length, e.g. 192.168.1.20/24")
    if iface.ip in (iface.network.network_address, iface.network.broadcast_address):
        raise ValueError(f"{iface.ip} is the network or broadcast address of {iface.network}")
    return str(iface)


def check_ipv4_or_none(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return str(ipaddress.IPv4Address(value)) if isinstance(value, str) else _raise()
    except ValueError:
        raise ValueError("an IPv4 address, e.g. 192.168.1.1, or null") from None


def check_dns_servers(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > 4:
        raise ValueError('a list of at most 4 IP addresses, e.g. ["1.1.1.1"]')
    out = []
    for i, v in enumerate(value, 1):
        try:
            out.append(str(ipaddress.ip_address(v)) if isinstance(v, str) else _raise())
        except ValueError:
            raise ValueError(f"DNS server {i} ({str(v)[:40]}) is not an IP address") from None
    return out


def _raise() -> Any:
    raise ValueError


@dataclass(frozen=True)
class Key:
    default: Any
    check: Callable[[Any], Any]
    secret: bool = False


KEYS: dict[str, Key] = {
    "system.hostname": Key("sokoul", check_hostname),
    "system.timezone": Key("Etc/UTC", check_timezone),
    "thermal.throttle_c": Key(75, check_celsius),
    "thermal.release_c": Key(70, check_celsius),
    "thermal.critical_c": Key(90, check_celsius),
    "content.tmdb_api_key": Key("", check_secret, secret=True),
    "content.torznab_urls": Key([], check_urls),
    "dlna.serve_lan": Key(False, check_bool),
    # torrent engine speed limits, bytes/s, 0 = unlimited (applied live; the thermal
    # governor's limit lowers them further while the board is hot)
    "torrent.download_limit": Key(0, check_rate_limit),
    "torrent.upload_limit": Key(0, check_rate_limit),
    # storage tiering rules (storage/tiering.py): keep this share of the media drive free by
    # moving items nobody used for cold_after_days to the cold tier; cleanup of watched media
    # after N days is off (0) unless the household turns it on
    "storage.free_watermark_percent": Key(15, check_watermark_percent),
    "storage.cold_after_days": Key(30, check_cold_after_days),
    "storage.cleanup_watched_days": Key(0, check_cleanup_days),
    # plans chosen in the wizard for managers that apply them (network, storage, vpn)
    "network.plan": Key(None, check_json_object),
    "storage.plan": Key(None, check_json_object),
    "vpn.wireguard_conf": Key(None, check_text, secret=True),
    # who completed the setup: None (wizard still open), "wizard" or "preseed"
    "setup.completed_by": Key(None, check_text),
    # network room (sokoul_appliance/network/): the internet port's addressing (the plan above
    # says which port is which) and whether TVs may reach the internet through NAT
    "network.internet_mode": Key("dhcp", check_internet_mode),
    "network.internet_address": Key(None, check_ipv4_interface),
    "network.internet_gateway": Key(None, check_ipv4_or_none),
    "network.internet_dns": Key([], check_dns_servers),
    "network.nat_streaming": Key(False, check_bool),
}


def _check_thermal_order(values: Mapping[str, Any]) -> dict[str, str]:
    release = values["thermal.release_c"]
    throttle = values["thermal.throttle_c"]
    critical = values["thermal.critical_c"]
    errors = {}
    if not release < throttle:
        errors["thermal.release_c"] = f"must be below the throttle temperature ({throttle} °C)"
    if not throttle < critical:
        errors["thermal.throttle_c"] = f"must be below the critical temperature ({critical} °C)"
    return errors


class Settings:
    """All settings in memory (read often), persisted to the store (written rarely)."""

    def __init__(self, store: Store, bus: EventBus) -> None:
        self._store = store
        self._bus = bus
        self._values: dict[str, Any] = {k: v.default for k, v in KEYS.items()}

    async def load(self) -> None:
        for row in await self._store.fetchall("SELECT key, value FROM settings"):
            if row["key"] in KEYS:
                self._values[row["key"]] = json.loads(row["value"])

    def get(self, key: str) -> Any:
        return self._values[key]

    async def update(self, changes: Mapping[str, Any]) -> None:
        """Validate every change, then write them all in one transaction (or nothing)."""
        errors: dict[str, str] = {}
        clean: dict[str, Any] = {}
        for key, value in changes.items():
            spec = KEYS.get(key)
            if spec is None:
                errors[key] = "unknown setting"
                continue
            try:
                clean[key] = spec.check(value)
            except ValueError as e:
                errors[key] = str(e)
        if not errors:
            errors.update(_check_thermal_order({**self._values, **clean}))
        if errors:
            raise SettingsError(errors)
        now = time.time()
        async with self._store.transaction() as db:
            for key, value in clean.items():
                await db.execute(
                    "INSERT INTO settings(key, value, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value, "
                    "updated_at=excluded.updated_at",
                    (key, json.dumps(value), now),
                )
        self._values.update(clean)
        self._bus.publish(SettingsChanged(tuple(sorted(clean))))

    def public_view(self) -> dict[str, Any]:
        v = self._values
        return {
            "hostname": v["system.hostname"],
            "timezone": v["system.timezone"],
            "thermal": {
                "throttle_c": v["thermal.throttle_c"],
                "release_c": v["thermal.release_c"],
                "critical_c": v["thermal.critical_c"],
            },
            "content": {
                "tmdb_api_key": {"set": bool(v["content.tmdb_api_key"])},
                "torznab_urls": list(v["content.torznab_urls"]),
            },
            "dlna": {"serve_lan": v["dlna.serve_lan"]},
            "torrent": {
                "download_limit": v["torrent.download_limit"],
                "upload_limit": v["torrent.upload_limit"],
            },
            "storage": {
                "free_watermark_percent": v["storage.free_watermark_percent"],
                "cold_after_days": v["storage.cold_after_days"],
                "cleanup_watched_days": v["storage.cleanup_watched_days"],
            },
        }


# PATCH /api/settings body (nested, as public_view) -> dotted keys
_PATCH_PATHS = {
    ("hostname",): "system.hostname",
    ("timezone",): "system.timezone",
    ("thermal", "throttle_c"): "thermal.throttle_c",
    ("thermal", "release_c"): "thermal.release_c",
    ("thermal", "critical_c"): "thermal.critical_c",
    ("content", "tmdb_api_key"): "content.tmdb_api_key",
    ("content", "torznab_urls"): "content.torznab_urls",
    ("dlna", "serve_lan"): "dlna.serve_lan",
    ("torrent", "download_limit"): "torrent.download_limit",
    ("torrent", "upload_limit"): "torrent.upload_limit",
    ("storage", "free_watermark_percent"): "storage.free_watermark_percent",
    ("storage", "cold_after_days"): "storage.cold_after_days",
    ("storage", "cleanup_watched_days"): "storage.cleanup_watched_days",
}


def flatten_patch(body: Any) -> dict[str, Any]:
    """{"thermal": {"throttle_c": 80}} -> {"thermal.throttle_c": 80}; unknown fields are errors."""
    if not isinstance(body, dict):
        raise SettingsError({"": "the body must be a JSON object"})
    out: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for top, value in body.items():
        if (top,) in _PATCH_PATHS:
            out[_PATCH_PATHS[(top,)]] = value
        elif isinstance(value, dict) and any(p[0] == top for p in _PATCH_PATHS if len(p) == 2):
            for sub, subvalue in value.items():
                key = _PATCH_PATHS.get((top, sub))
                if key is None:
                    errors[f"{top}.{sub}"] = "unknown setting"
                else:
                    out[key] = subvalue
        else:
            errors[str(top)] = "unknown setting"
    if errors:
        raise SettingsError(errors)
    return out


def public_field(key: str) -> str:
    """Dotted storage key -> the field name the API uses (for error messages)."""
    for path, k in _PATCH_PATHS.items():
        if k == key:
            return ".".join(path)
    return key
