"""The supervisor's Prometheus registry (one per process, passed to whoever exports metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Info

from sokoul_appliance import __version__


class SupervisorMetrics:
    def __init__(self, board: str) -> None:
        self.registry = CollectorRegistry()
        self.build = Info("sokoul_build", "Supervisor version and board", registry=self.registry)
        self.build.info({"version": __version__, "board": board})
        self.start_time = Gauge(
            "sokoul_start_time_seconds",
            "Unix time the supervisor started",
            registry=self.registry,
        )
        self.start_time.set_to_current_time()
        self.http_requests = Counter(
            "sokoul_http_requests_total",
            "HTTP requests answered, by route and status class",
            ["route", "status_class"],
            registry=self.registry,
        )
        self.watchdog_pings = Counter(
            "sokoul_watchdog_pings_total",
            "systemd watchdog keep-alives sent",
            registry=self.registry,
        )
