"""DLNA metrics on the supervisor's registry (bounded labels: the action from a fixed list,
the client from the profile names)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class DlnaMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.soap = Counter(
            "sokoul_dlna_soap_requests_total",
            "SOAP control requests, by action and client profile ('unknown' for actions we "
            "do not have)",
            ["action", "client"],
            registry=registry,
        )
        self.errors = Counter(
            "sokoul_dlna_soap_errors_total",
            "SOAP requests answered with a UPnP error, by UPnP error code",
            ["code"],
            registry=registry,
        )
        self.browse = Histogram(
            "sokoul_dlna_browse_seconds",
            "Time to answer a ContentDirectory Browse or Search, by action",
            ["action"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=registry,
        )
        self.system_update_id = Counter(
            "sokoul_dlna_system_update_total",
            "Times the ContentDirectory's SystemUpdateID moved (library changes)",
            registry=registry,
        )
