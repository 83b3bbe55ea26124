"""Casting metrics on the supervisor's registry (labels bounded: a fixed set of modes and
error kinds, never a device name)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

MODES = ("direct", "remux", "transcode", "growing")
ERROR_KINDS = ("connect", "load", "control", "lost", "discovery")


class CastMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.devices = Gauge(
            "sokoul_cast_devices_discovered",
            "Chromecasts found on the chosen interfaces now",
            registry=registry,
        )
        self.casts = Counter(
            "sokoul_cast_casts_started_total",
            "Casts started, by how the item is sent (direct, remux, transcode, growing)",
            ["mode"],
            registry=registry,
        )
        self.errors = Counter(
            "sokoul_cast_errors_total",
            "Casting failures, by kind (connect, load, control, lost, discovery)",
            ["kind"],
            registry=registry,
        )
        for mode in MODES:
            self.casts.labels(mode=mode)
        for kind in ERROR_KINDS:
            self.errors.labels(kind=kind)
