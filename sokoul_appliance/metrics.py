"""The supervisor's Prometheus registry (one per process, passed to whoever exports metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

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
        self.http_seconds = Histogram(
            "sokoul_http_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
            registry=self.registry,
        )
        self.logins = Counter(
            "sokoul_logins_total",
            "Login attempts by result (ok, wrong, throttled)",
            ["result"],
            registry=self.registry,
        )
        self.csrf_refusals = Counter(
            "sokoul_csrf_refusals_total",
            "State-changing requests refused for a missing or wrong CSRF token",
            registry=self.registry,
        )
        self.websockets = Gauge(
            "sokoul_websocket_clients",
            "Open panel WebSockets",
            registry=self.registry,
        )
