"""Composition root: builds every manager, starts them in dependency order, stops them in
reverse on SIGTERM (also when a later start fails)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from sokoul_appliance.auth.accounts import Accounts
from sokoul_appliance.auth.sessions import Sessions
from sokoul_appliance.auth.throttle import LoginThrottle
from sokoul_appliance.bus import EventBus
from sokoul_appliance.cast import CastConfig, CastManager
from sokoul_appliance.cast.addressing import discovery_addresses, parse_addresses
from sokoul_appliance.cores import BACKGROUND, HEAVY, CoreGovernor
from sokoul_appliance.cores.scope import SliceCommands
from sokoul_appliance.dlna import DlnaManager
from sokoul_appliance.dlna.addressing import serving_bindings
from sokoul_appliance.hardware import Hardware
from sokoul_appliance.health import HealthInputs, HealthReporter, read_json_file
from sokoul_appliance.host import Host
from sokoul_appliance.library import LibraryManager
from sokoul_appliance.library.probe import MediaInfo, probe_file
from sokoul_appliance.library.probe_worker import ProbeHelper, ProbeHelperError
from sokoul_appliance.library.tmdb import TmdbConfig
from sokoul_appliance.logbook import RecentLogs
from sokoul_appliance.metrics import SupervisorMetrics
from sokoul_appliance.network.manager import NetworkManager
from sokoul_appliance.network.roles import Services
from sokoul_appliance.notify import SystemdNotifier
from sokoul_appliance.storage import StorageManager
from sokoul_appliance.store.database import Store
from sokoul_appliance.store.settings import Settings
from sokoul_appliance.stream import StreamService
from sokoul_appliance.stream.source import SourceRegistry
from sokoul_appliance.system.identity import SystemIdentity
from sokoul_appliance.systemd import SystemdClient
from sokoul_appliance.thermal import ThermalGovernor
from sokoul_appliance.torrent.manager import TorrentConfig, TorrentManager
from sokoul_appliance.vpn.manager import VpnManager
from sokoul_appliance.web import build_app
from sokoul_appliance.web.context import StatusSource, WebContext
from sokoul_appliance.wizard.flow import Wizard

log = logging.getLogger("sokoul.supervisor")
PROBE_HELPER_STARTS = 20  # a probe helper started this often in one run is not used any more

STATIC_DIR = Path(__file__).resolve().parent / "web" / "static"


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


class WebServer:
    name = "web"
    title = "Control panel"

    def __init__(self, app: web.Application, listen: tuple[tuple[str | None, int], ...]) -> None:
        self._runner = web.AppRunner(app, access_log=None)
        self._listen = listen
        self._serving = False

    async def start(self) -> None:
        await self._runner.setup()
        for host, port in self._listen:
            await web.TCPSite(self._runner, host, port).start()
            log.info("serving on %s:%d", host or "*", port)
        self._serving = True

    async def stop(self) -> None:
        self._serving = False
        await self._runner.cleanup()

    def status(self) -> tuple[str, str]:
        if not self._serving:
            return "error", "Not serving."
        return "ok", f"Serving on {len(self._listen)} address(es)."


class Supervisor:
    def __init__(
        self,
        config: SupervisorConfig,
        notifier: SystemdNotifier | None = None,
        logs: RecentLogs | None = None,
    ) -> None:
        self.config = config
        self.host = Host(config.root)
        self.notifier = notifier or SystemdNotifier()
        self.logs = logs or RecentLogs()
        self.bus = EventBus()
        self.metrics = SupervisorMetrics(config.board)
        self.store = Store(config.state / "sokoul.db")
        self.settings = Settings(self.store, self.bus)
        self.accounts = Accounts(self.store)
        self.sessions = Sessions(self.store)
        self.identity = SystemIdentity(self.host)
        self.hardware = Hardware(self.host, self.bus, config.board)
        self.network = NetworkManager(
            self.host,
            self.bus,
            self.settings,
            self.metrics.registry,
            self.hardware.ports,
            services=Services(panel=tuple(sorted({port for _, port in config.listen}))),
        )
        self.vpn = VpnManager(self.host, self.bus, self.settings, self.metrics.registry)
        self.storage = StorageManager(
            self.host,
            self.store,
            self.settings,
            self.bus,
            self.metrics.registry,
            SystemdClient(),
            read_only=not self.host.live,
        )
        self.torrents = TorrentManager(
            self.host,
            self.bus,
            self.settings,
            self.metrics.registry,
            self.storage,
            # start_timeout: libtorrent's import alone takes tens of seconds under emulation;
            # on the appliance the engine is sokoul-torrent.service (in the VPN namespace when
            # a VPN is configured), on a simulated board the supervisor's child
            TorrentConfig(
                state_dir=config.state / "torrent",
                start_timeout=120.0,
                unit="sokoul-torrent.service",
            ),
            sources=SourceRegistry(),  # "Play now" puts a downloading file here for /stream
            units=SystemdClient(),
        )
        # the supervisor's children run in their slices (docs/cores.md): the library's probes
        # on the little cores, ffmpeg's conversions on the big ones (_start_cores)
        self.slices = SliceCommands(self.host)
        # on a systemd host: one helper process in the background slice runs the library's
        # ffprobes (not a transient scope per file: library/probe_worker.py)
        self.prober = ProbeHelper(lambda: self.slices.prefix(BACKGROUND))
        self.library = LibraryManager(
            self.host,
            self.store,
            self.bus,
            self.metrics.registry,
            tmdb=self._tmdb_config(config),
            probe=self._probe,
        )
        self.stream = StreamService(
            self.host,
            self.library,
            self.metrics.registry,
            sources=self.torrents.sources,
            bus=self.bus,
        )
        self.wizard = Wizard(
            self.store,
            self.settings,
            self.accounts,
            self.hardware,
            self.identity,
            self.bus,
            self.storage,
            {"network": self.network, "vpn": self.vpn},
        )
        self.health = HealthReporter(self.host, HealthInputs(config.board, config.state))
        self.thermal = ThermalGovernor(
            self.host, self.bus, self.settings, self.metrics.registry, self.hardware.found
        )
        self.cores = CoreGovernor(
            self.bus,
            SystemdClient(),
            self.hardware.found,
            registry=self.metrics.registry,
            read_only=not self.host.live,
        )
        # Chromecasts: looked for on the streaming network (+ the LAN) of a live host only;
        # SOKOUL_CAST_INTERFACES="ADDR ..." names the addresses explicitly (tests run it in a
        # network namespace); a simulated board without it sends no mDNS at all
        self.cast = CastManager(
            self.host,
            self.bus,
            self.metrics.registry,
            self.library,
            self.stream,
            CastConfig(
                addresses=parse_addresses(os.environ.get("SOKOUL_CAST_INTERFACES")),
                listen=config.listen,
            ),
            addresses=lambda: discovery_addresses(self.network.config),
        )
        # the MediaServer: the streaming interface (+ the LAN with dlna.serve_lan), port 8200;
        # a simulated board serves HTTP on 127.0.0.1 (a free port) and runs no SSDP at all
        self.dlna = DlnaManager(
            self.bus,
            self.library,
            self.stream,
            self.metrics.registry,
            config.state,
            lambda: serving_bindings(self.network.config, self.host.live, self.network.links),
            lambda: f"SOKOUL ({self.identity.current_hostname()})",
            http_port=8200 if self.host.live else 0,
        )
        ctx = WebContext(
            settings=self.settings,
            accounts=self.accounts,
            sessions=self.sessions,
            throttle=LoginThrottle(),
            wizard=self.wizard,
            hardware=self.hardware,
            cores=self.cores,
            thermal=self.thermal,
            storage=self.storage,
            network=self.network,
            vpn=self.vpn,
            library=self.library,
            torrents=self.torrents,
            stream=self.stream,
            health=self.health,
            logs=self.logs,
            metrics=self.metrics,
            bus=self.bus,
            subsystems=[],
            static_dir=STATIC_DIR,
            simulated=not self.host.live,
            cast=self.cast,
        )
        self.web = WebServer(build_app(ctx), config.listen)
        self.subsystems: list[StatusSource] = [
            self.web,
            self.store,
            self.hardware,
            self.cores,
            self.thermal,
            self.storage,
            self.network,
            self.vpn,
            self.torrents,
            self.library,
            self.stream,
            self.dlna,
            self.cast,
            self.wizard,
        ]
        ctx.subsystems = self.subsystems
        self.health.attach(self._manager_states, self._setup_mode)
        self.health.attach_dlna(self.dlna.health)
        self._stop = asyncio.Event()

    def _tmdb_config(self, config: SupervisorConfig) -> TmdbConfig | None:
        """TMDB enrichment (only with a key, the setting); posters cached in the state dir.
        A simulated board asks no real TMDB: SOKOUL_TMDB_URL (and SOKOUL_TMDB_IMAGE_URL) name
        one to use (tests run a local double)."""
        url = os.environ.get("SOKOUL_TMDB_URL")
        if not self.host.live and not url:
            return None
        return TmdbConfig(
            api_key=lambda: self.settings.get("content.tmdb_api_key"),
            posters=config.state / "posters",
            base_url=url or "https://api.themoviedb.org",
            image_base=os.environ.get("SOKOUL_TMDB_IMAGE_URL") or "https://image.tmdb.org/t/p/w342",
        )

    def _manager_states(self) -> list[dict[str, str]]:
        out = []
        for s in self.subsystems:
            state, detail = s.status()
            out.append({"name": s.name, "state": state, "detail": detail})
        return out

    def _setup_mode(self) -> str:
        by = self.settings.get("setup.completed_by")
        return {"preseed": "preseeded", "wizard": "complete"}.get(by or "", "wizard")

    def request_stop(self) -> None:
        self._stop.set()

    async def _start_cores(self) -> None:
        """The slices, then whether children can be started in them (else unplaced)."""
        await self.cores.start()
        await self.slices.check()
        self.cores.note_scope_problem(self.slices.problem)
        self.stream.command_prefix = self.slices.prefix(HEAVY)  # ffmpeg: the big cores
        # one ffprobe per background core (the 4 A520s on the Orange Pi 6 Plus), never more
        # than this machine has, at least the default 2
        background = len(self.cores.planned_cpus(BACKGROUND))
        self.library.set_probe_concurrency(
            max(self.library.probe_concurrency, min(background, os.cpu_count() or 1))
        )

    async def _probe(self, host: Host, path: Path) -> MediaInfo:
        """The library's ffprobe: through the helper in the background slice when children
        can be placed there; directly (beside the supervisor) otherwise, and when the helper
        fails (nothing is lost: the file is probed all the same)."""
        if self.slices.active and self.prober.starts < PROBE_HELPER_STARTS:
            try:
                return await self.prober.probe(host, path)
            except ProbeHelperError as e:
                log.warning("%s; probing %s beside the supervisor", e, path.name)
                if self.prober.starts >= PROBE_HELPER_STARTS:
                    log.error("the probe helper keeps failing: probes run unplaced from now on")
        return await probe_file(host, path)

    async def _stop_library(self) -> None:
        await self.library.stop()
        await self.prober.close()

    async def _load_state(self) -> None:
        await self.settings.load()
        await self.sessions.load()
        first_boot = self.health.first_boot or {}
        default = first_boot.get("hostname") or self.identity.current_hostname()
        await self.wizard.load(default if isinstance(default, str) else None)
        await self._import_preseed()

    async def _import_preseed(self) -> None:
        """First boot left the preseed's admin hash: setup is done without the wizard."""
        path = self.config.state / "preseed.json"
        data, problem = read_json_file(path)
        if problem:
            log.error("ignoring the preseed record: %s", problem)
            return
        if data is None:
            return
        admin_hash = data.get("admin_password_hash")
        if not self.wizard.complete and isinstance(admin_hash, str):
            first_boot = self.health.first_boot or {}
            hostname = first_boot.get("hostname")
            await self.wizard.complete_from_preseed(
                admin_hash, hostname if isinstance(hostname, str) else None
            )
        # the hash now lives in the database; keep no second copy of the secret
        path.unlink(missing_ok=True)

    async def _watchdog(self, interval: float) -> None:
        while True:
            self.notifier.watchdog()
            self.metrics.watchdog_pings.inc()
            await asyncio.sleep(interval)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        self.logs.attach(loop, self.bus.publish)
        stages: list[tuple[str, Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]] = [
            ("database", self.store.start, self.store.stop),
            ("settings", self._load_state, _nothing),
            ("board discovery", self.hardware.start, self.hardware.stop),
            ("CPU slices", self._start_cores, self.cores.stop),
            ("thermal governor", self.thermal.start, self.thermal.stop),
            ("storage", self.storage.start, self.storage.stop),
            ("network", self.network.start, self.network.stop),
            ("VPN", self.vpn.start, self.vpn.stop),
            ("downloads", self.torrents.start, self.torrents.stop),
            ("library", self.library.start, self._stop_library),
            ("streaming", self.stream.start, self.stream.stop),
            ("DLNA server", self.dlna.start, self.dlna.stop),
            ("casting", self.cast.start, self.cast.stop),
            ("web", self.web.start, self.web.stop),
        ]
        started: list[Callable[[], Awaitable[None]]] = []
        watchdog: asyncio.Task[None] | None = None
        try:
            if self.notifier.watchdog_seconds:
                watchdog = asyncio.create_task(self._watchdog(self.notifier.watchdog_seconds / 2))
            for label, start, stop in stages:
                self.notifier.status(f"starting {label}")
                await start()
                started.append(stop)
            # everything made while starting lives as long as the process: keep it out of the
            # collector's sweeps, so a full collection never stalls a request (p99 latency)
            gc.collect()
            gc.freeze()
            mode = self._setup_mode()
            self.notifier.ready(f"serving; setup: {mode}")
            log.info("supervisor ready (setup: %s)", mode)
            await self._stop.wait()
            log.info("stopping")
            self.notifier.stopping()
        finally:
            for stop in reversed(started):
                try:
                    await stop()
                except Exception:
                    log.exception("stopping failed")
            if watchdog is not None:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog
            self.logs.detach()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)


async def _nothing() -> None:
    return None
