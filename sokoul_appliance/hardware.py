"""What the wizard and the panel know about the hardware: the board room's discovery (run once
at start, again on request) and live samples for the System page, taken every 2 s only while
someone watches (a panel WebSocket is open)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from sokoul_appliance.board.discovery import Discovery, discover
from sokoul_appliance.board.sampler import SystemSampler
from sokoul_appliance.bus import EventBus
from sokoul_appliance.events import SystemSampled
from sokoul_appliance.host import Host

log = logging.getLogger("sokoul.board")

SAMPLE_EVERY = 2.0
STALE_OK = 10.0


class Hardware:
    name = "board"
    title = "Board"

    def __init__(self, host: Host, bus: EventBus, board: str) -> None:
        self._host = host
        self._bus = bus
        self.board = board
        self._found: dict[str, Any] = {}
        self._discovery: Discovery | None = None
        self._sampler = SystemSampler(host)
        self._latest: tuple[float, dict[str, Any]] | None = None
        self._refresh: asyncio.Task[dict[str, Any]] | None = None
        self._watchers = 0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def found(self) -> Discovery:
        """The discovery made at start (for managers started after this one)."""
        if self._discovery is None:
            self._discovery = await discover(self._host)
        return self._discovery

    async def start(self) -> None:
        found = await self.found()
        self._found = found.to_json()
        problems = self._found.get("problems") or []
        log.info(
            "discovered %d CPU cluster(s), %d thermal zone(s), %d NIC(s), %d drive(s)%s",
            len(self._found.get("clusters", [])),
            len(self._found.get("thermal_zones", [])),
            len(self._found.get("nics", [])),
            len(self._found.get("drives", [])),
            f"; problems: {'; '.join(problems)}" if problems else "",
        )
        self._task = asyncio.create_task(self._sample_while_watched(), name="system-sampler")

    async def stop(self) -> None:
        for task in (self._task, self._refresh):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._refresh = None

    def status(self) -> tuple[str, str]:
        problems = self._found.get("problems") or []
        mode = "" if self._host.live else " (simulated board, read-only)"
        if problems:
            return "degraded", f"Discovery found problems{mode}: " + "; ".join(problems[:3])
        return "ok", f"{self.board}: {len(self.ports())} network port(s), " + (
            f"{len(self.drives())} drive(s){mode}."
        )

    def discovery(self) -> dict[str, Any]:
        return self._found

    def ports(self) -> list[dict[str, Any]]:
        return list(self._found.get("nics", []))

    def drives(self) -> list[dict[str, Any]]:
        return list(self._found.get("drives", []))

    async def sample(self, max_age: float = 1.0) -> dict[str, Any]:
        """The latest System sample. Older than ``max_age``: a refresh starts in the background
        and the caller still gets the cached one (up to STALE_OK old), so a page load never
        waits behind ~100 sysfs reads; only the very first call waits for a sample."""
        if self._latest is not None:
            age = time.monotonic() - self._latest[0]
            if age > max_age and (self._refresh is None or self._refresh.done()):
                self._refresh = asyncio.create_task(self._take(), name="system-sample")
            if age <= STALE_OK:
                return self._latest[1]
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.create_task(self._take(), name="system-sample")
        return await asyncio.shield(self._refresh)

    async def _take(self) -> dict[str, Any]:
        data = await self._sampler.sample()
        self._latest = (time.monotonic(), data)
        return data

    def watch(self) -> contextlib.AbstractContextManager[None]:
        """Held by each open WebSocket: samples are published while at least one is held."""
        hw = self

        class _Watch(contextlib.AbstractContextManager[None]):
            def __enter__(self) -> None:
                hw._watchers += 1
                hw._wake.set()

            def __exit__(self, *exc: object) -> None:
                hw._watchers -= 1

        return _Watch()

    async def _sample_while_watched(self) -> None:
        while True:
            if self._watchers == 0:
                self._wake.clear()
                await self._wake.wait()
            try:
                data = await self._take()
                self._bus.publish(SystemSampled(data))
            except Exception:
                log.exception("sampling the system failed")
            await asyncio.sleep(SAMPLE_EVERY)
