"""Composition root: builds the parts, starts them in order, stops them in reverse on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from sokoul_appliance.health import HealthInputs, HealthReporter
from sokoul_appliance.host import Host
from sokoul_appliance.metrics import SupervisorMetrics
from sokoul_appliance.notify import SystemdNotifier
from sokoul_appliance.web import build_app

log = logging.getLogger("sokoul.supervisor")


def parse_listen(value: str) -> tuple[str | None, int]:
    """'127.0.0.1:8080' -> ('127.0.0.1', 8080); ':80' -> (None, 80); '[::1]:80' -> ('::1', 80)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen wants HOST:PORT or :PORT, got {value!r}")
    host = host.strip("[]")
    return (host or None), int(port)


@dataclass(frozen=True)
class SupervisorConfig:
    root: Path
    board: str
    state: Path
    listen: tuple[tuple[str | None, int], ...]


class Supervisor:
    def __init__(self, config: SupervisorConfig, notifier: SystemdNotifier | None = None) -> None:
        self.config = config
        self.host = Host(config.root)
        self.notifier = notifier or SystemdNotifier()
        self.metrics = SupervisorMetrics(config.board)
        self.health = HealthReporter(self.host, HealthInputs(config.board, config.state))
        self._stop = asyncio.Event()

    def request_stop(self) -> None:
        self._stop.set()

    async def _watchdog(self, interval: float) -> None:
        while True:
            self.notifier.watchdog()
            self.metrics.watchdog_pings.inc()
            await asyncio.sleep(interval)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        runner = web.AppRunner(build_app(self.health, self.metrics), access_log=None)
        await runner.setup()
        watchdog: asyncio.Task[None] | None = None
        try:
            for host, port in self.config.listen:
                await web.TCPSite(runner, host, port).start()
                log.info("serving on %s:%d", host or "*", port)
            if self.notifier.watchdog_seconds:
                watchdog = asyncio.create_task(self._watchdog(self.notifier.watchdog_seconds / 2))
            self.notifier.ready(f"serving on {len(self.config.listen)} address(es)")
            await self._stop.wait()
            log.info("stopping")
            self.notifier.stopping()
        finally:
            if watchdog is not None:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog
            await runner.cleanup()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
