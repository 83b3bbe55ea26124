"""Streaming metrics on the supervisor's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class StreamMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.bytes = Counter(
            "sokoul_stream_bytes_total",
            "Bytes of media sent, by mode (direct, transcode, remux, growing) and client profile",
            ["mode", "client"],
            registry=registry,
        )
        self.ttfb = Histogram(
            "sokoul_stream_time_to_first_byte_seconds",
            "From a stream request to the first bytes of the answer, by mode",
            ["mode"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
        self.requests = Counter(
            "sokoul_stream_requests_total",
            "Stream and subtitle requests, by mode and HTTP status",
            ["mode", "status"],
            registry=registry,
        )
        self.active = Gauge(
            "sokoul_stream_active", "Streams being sent now, by mode", ["mode"], registry=registry
        )
