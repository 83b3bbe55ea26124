"""Library metrics on the supervisor's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class LibraryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.items = Gauge(
            "sokoul_library_items", "Items in the library, by kind", ["kind"], registry=registry
        )
        self.scan_seconds = Histogram(
            "sokoul_library_scan_seconds",
            "Time a library scan took (walk, parse, probe, write)",
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 1800),
            registry=registry,
        )
        self.probe_failures = Counter(
            "sokoul_library_probe_failures_total",
            "Files ffprobe could not read",
            registry=registry,
        )
        self.tmdb_requests = Counter(
            "sokoul_library_tmdb_requests_total",
            "Requests to TMDB, by result (ok, miss, error, throttled)",
            ["result"],
            registry=registry,
        )
        self.tmdb_posters = Gauge(
            "sokoul_library_tmdb_posters",
            "TMDB posters in the local poster cache",
            registry=registry,
        )
