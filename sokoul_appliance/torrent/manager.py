"""TorrentManager: the supervisor's side of the torrent engine.

It starts the engine process (a child it owns and stops by PID; on the appliance a systemd unit
in the VPN namespace later), talks to it over the Unix socket (``client.py``: asyncio only, no
libtorrent in this process), follows the engine's status stream, and applies the other rooms'
requests: the thermal governor's rate factor and heavy-work pause, storage degraded/recovered,
the VPN's forwarded port. ``snapshot()`` feeds the Downloads page, metrics go to the registry.

On a simulated board (``host.live`` False) the engine still runs, with its downloads under the
state dir and listening on 127.0.0.1 only: that changes nothing on the machine.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from sokoul_appliance.bus import EventBus
from sokoul_appliance.events import (
    DownloadFinished,
    DownloadsSampled,
    PauseHeavyWork,
    ResumeHeavyWork,
    SettingsChanged,
    StorageDegraded,
    StorageRecovered,
    TorrentLimitRequest,
    VpnPortForwarded,
)
from sokoul_appliance.host import Host, stop_process
from sokoul_appliance.storage.placement import StorageUnavailable
from sokoul_appliance.stream.source import SourceRegistry
from sokoul_appliance.systemd.client import SystemdError
from sokoul_appliance.torrent.client import (
    EngineClient,
    EngineError,
    EngineUnavailable,
    status_stream,
)
from sokoul_appliance.torrent.source import TorrentSource
from sokoul_appliance.torrent.unit import EngineUnits, dropin_text, write_dropin

log = logging.getLogger("sokoul.torrent")

MIN_LIMIT = 64 * 1024  # bytes/s: a throttled engine still trickles
LIMIT_KEYS = ("torrent.download_limit", "torrent.upload_limit")
TORRENT_STATES = ("queued", "checking", "metadata", "downloading", "finished", "seeding",
                  "allocating", "error", "paused")  # fmt: skip
RESTART_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)


class DownloadsPlace(Protocol):
    """What the manager needs from the storage room."""

    def downloads_dir(self) -> str: ...

    async def mark_done_seeding(self, torrent: str, paths: list[str]) -> None: ...


class SettingsView(Protocol):
    def get(self, key: str) -> Any: ...


@dataclass(frozen=True)
class TorrentConfig:
    state_dir: Path  # engine state (resume data), its socket and its log
    python: str = sys.executable
    listen_interface: str | None = None  # None: 0.0.0.0 on the appliance, 127.0.0.1 simulated
    listen_port: int = 6881
    download_limit: int = 0  # bytes/s, 0 = unlimited (a setting overrides it when present)
    upload_limit: int = 0
    # the thermal governor's factor scales this; the engine gets the lower of it and the
    # person's limit
    thermal_base_limit: int = 50 * 1024 * 1024
    active_downloads: int = 3  # the engine's download queue
    active_seeds: int = 5
    seed_ratio: float = 0.0  # 0: seed without a ratio goal
    seed_hours: float = 0.0  # 0: seed without a time goal
    netns: str | None = None  # always this network namespace (appliance only)
    # the VPN's torrent namespace: the engine runs in it whenever a VPN is configured
    # (setting vpn.wireguard_conf), in the default namespace otherwise (appliance only)
    vpn_netns: str = "sokoul-torrent"
    # appliance: run the engine as this systemd unit (None: a child process, as on a
    # simulated board and in tests)
    unit: str | None = None
    assumed_bitrate: int = 1_000_000  # bytes/s, for buffer seconds when a stream gave none
    resume_interval: float = 60.0
    start_timeout: float = 30.0


class TorrentManager:
    name = "downloads"
    title = "Downloads"

    def __init__(
        self,
        host: Host,
        bus: EventBus,
        settings: SettingsView,
        registry: CollectorRegistry,
        storage: DownloadsPlace,
        config: TorrentConfig,
        sources: SourceRegistry | None = None,
        units: EngineUnits | None = None,
    ) -> None:
        self._host = host
        self._units = units
        self._engine_netns: str | None = None  # where the running engine was started
        self._engine_lock = asyncio.Lock()
        # the streamer's registry: "Play now" adds a download's file to it (object id dl-…)
        self.sources = sources if sources is not None else SourceRegistry()
        self._playing: dict[tuple[str, int], str] = {}  # (torrent, file) -> object id
        self._bus = bus
        self._settings = settings
        self._storage = storage
        self.config = config
        self.socket_path = config.state_dir / "engine.sock"
        self._client = EngineClient(self.socket_path)
        self._proc: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = asyncio.Event()
        self._stopping = False
        self._restarts = 0
        self._engine_error = ""
        self._torrents: list[dict[str, Any]] = []
        self._session: dict[str, Any] = {}
        self._factor = 1.0
        self._factor_reason = ""
        self._paused_by: dict[str, str] = {}  # "thermal" | "storage" -> reason
        self._forwarded_port = 0
        self._applied_listen: tuple[str, int] | None = None
        self._seen_download: dict[str, int] = {}
        self._finished_at: dict[str, float] = {}
        self._m_bytes = Counter(
            "sokoul_download_bytes",
            "Payload bytes downloaded by the torrent engine",
            registry=registry,
        )
        self._m_rate = Gauge(
            "sokoul_download_rate_bytes",
            "Current download rate of all torrents, bytes per second",
            registry=registry,
        )
        self._m_torrents = Gauge(
            "sokoul_download_torrents",
            "Torrents in the engine by state (paused ones as 'paused')",
            ["state"],
            registry=registry,
        )
        self._m_peers = Gauge(
            "sokoul_torrent_peers_connected", "Peers connected to all torrents", registry=registry
        )
        self._m_ratio = Gauge(
            "sokoul_torrent_seed_ratio",
            "Uploaded / downloaded over all torrents in the engine",
            registry=registry,
        )
        self._m_buffer = Gauge(
            "sokoul_stream_buffer_seconds",
            "Seconds of media buffered ahead of the slowest open stream (0: none open)",
            registry=registry,
        )

    # -- paths ----------------------------------------------------------------------------
    @property
    def simulated(self) -> bool:
        return not self._host.live

    def downloads_path(self) -> Path:
        """Where new downloads go (real path); StorageUnavailable while the media drive is down.
        Simulated board: under the state dir."""
        if self.simulated:
            p = self.config.state_dir / "downloads"
            p.mkdir(parents=True, exist_ok=True)
            return p
        return self._host.path(self._storage.downloads_dir())

    def _appliance_path(self, real: Path) -> str:
        if self.simulated:
            return str(real)
        return "/" + str(real.relative_to(self._host.root))

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._supervise(), name="torrent-engine"),
            asyncio.create_task(self._follow_bus(), name="torrent-bus"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        await self._client.close()
        await self._stop_engine()

    async def wait_ready(self, timeout: float = 30.0) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout)

    def _argv(self, downloads: Path) -> list[str]:
        iface, port = self._listen()
        self._applied_listen = (iface, port)
        argv = [
            self.config.python, "-m", "sokoul_appliance.torrent.engine",
            "--state", str(self.config.state_dir), "--socket", str(self.socket_path),
            "--downloads", str(downloads), "--listen-interface", iface,
            "--listen-port", str(port), "--resume-interval", str(self.config.resume_interval),
            "--active-downloads", str(self.config.active_downloads),
            "--active-seeds", str(self.config.active_seeds),
        ]  # fmt: skip
        if self.unit_mode:
            return argv  # systemd's NetworkNamespacePath= (drop-in), no parent to follow
        argv.append("--exit-with-parent")  # no orphan engine when the supervisor dies (kill -9)
        if self._engine_netns:
            argv = ["ip", "netns", "exec", self._engine_netns, *argv]
        return argv

    @property
    def unit_mode(self) -> bool:
        """The engine is a systemd unit (appliance with a unit configured), not a child."""
        return bool(self.config.unit) and self._units is not None and not self.simulated

    def engine_netns(self) -> str | None:
        """The network namespace the engine gets at its next start: the VPN's whenever a VPN
        is configured (fails closed: its only way out is the tunnel), else the default one.
        Never on a simulated board."""
        if self.simulated:
            return None
        if self.config.netns:
            return self.config.netns
        try:
            vpn = self._settings.get("vpn.wireguard_conf")
        except KeyError:
            vpn = None
        return self.config.vpn_netns if vpn else None

    async def _spawn_engine(self) -> None:
        # never two engines on one state dir: a start waits for a stop still saving resume data
        async with self._engine_lock:
            await self._spawn_engine_locked()

    async def _spawn_engine_locked(self) -> None:
        try:
            downloads = self.downloads_path()
        except StorageUnavailable as e:
            # the engine still starts (its torrents stay paused until the drive is back)
            self._paused_by["storage"] = str(e)
            downloads = self.config.state_dir / "downloads-unavailable"
        self.socket_path.unlink(missing_ok=True)
        self._engine_netns = self.engine_netns()
        if self.unit_mode:
            await self._start_unit(downloads)
            return
        logfile = open(self.config.state_dir / "engine.log", "ab")  # noqa: SIM115 (child owns it)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self._argv(downloads),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=logfile,
                stderr=logfile,
                cwd=str(Path(__file__).resolve().parents[2]),
                start_new_session=True,
            )
        finally:
            logfile.close()
        deadline = time.monotonic() + self.config.start_timeout
        while not await asyncio.to_thread(_accepting, self.socket_path):
            if self._proc.returncode is not None or time.monotonic() > deadline:
                raise EngineUnavailable(
                    "The torrent engine did not start; its log is "
                    f"{self.config.state_dir / 'engine.log'}."
                )
            await asyncio.sleep(0.1)
        log.info("torrent engine up (pid %d)", self._proc.pid)

    async def _start_unit(self, downloads: Path) -> None:
        """Appliance: the drop-in (command line, namespace), daemon-reload, restart the unit,
        then wait for its socket."""
        assert self._units is not None and self.config.unit is not None
        text = dropin_text(self._argv(downloads), self._engine_netns)
        await asyncio.to_thread(write_dropin, self._host, text)
        try:
            await self._units.reload()
            await self._units.restart_unit(self.config.unit)
        except (SystemdError, OSError, TimeoutError) as e:  # messages written for a person
            raise EngineUnavailable(f"The torrent engine's unit did not start: {e}") from None
        deadline = time.monotonic() + self.config.start_timeout
        while not await asyncio.to_thread(_accepting, self.socket_path):
            if time.monotonic() > deadline:
                raise EngineUnavailable(
                    f"The torrent engine ({self.config.unit}) did not open its socket; "
                    f"see journalctl -u {self.config.unit}."
                )
            await asyncio.sleep(0.1)
        log.info("torrent engine up (%s, namespace %s)", self.config.unit,
                 self._engine_netns or "default")  # fmt: skip

    async def _stop_engine(self) -> None:
        async with self._engine_lock:
            await self._stop_engine_locked()

    async def _stop_engine_locked(self) -> None:
        if self.unit_mode:
            self._ready.clear()
            assert self._units is not None and self.config.unit is not None
            try:
                await self._units.stop_unit(self.config.unit)  # SIGTERM: resume data saved
            except (SystemdError, OSError, TimeoutError) as e:
                log.warning("stopping %s: %s", self.config.unit, e)
            return
        proc, self._proc = self._proc, None
        self._ready.clear()
        if proc is None or proc.returncode is not None:
            return
        await stop_process(proc, grace=25)  # SIGTERM: the engine saves resume data, then exits

    async def _supervise(self) -> None:
        """Start the engine, follow its status; restart it (with backoff) when it dies."""
        failures = 0
        while not self._stopping:
            try:
                await self._spawn_engine()
                await self._client.close()
                self._seen_download = {}
                await self._apply_all()
                self._ready.set()
                self._engine_error = ""
                failures = 0
                await self._follow_status()
            except (EngineError, OSError) as e:
                self._engine_error = str(e)
                log.error("torrent engine: %s", e)
            self._ready.clear()
            proc = self._proc
            if self.unit_mode and not self._stopping:
                await self._stop_engine()  # restarted below with a fresh drop-in
            elif proc is not None and proc.returncode is None:
                # the stream broke but the process lives on: stop it before starting another
                await self._stop_engine()
            elif proc is not None:
                self._engine_error = f"The torrent engine exited ({proc.returncode}); restarting."
                log.error("%s", self._engine_error)
            self._proc = None
            if self._stopping:
                return
            self._restarts += 1
            await asyncio.sleep(RESTART_BACKOFF[min(failures, len(RESTART_BACKOFF) - 1)])
            failures += 1

    async def _follow_status(self) -> None:
        async for ev in status_stream(self.socket_path, interval=1.0):
            kind = ev.get("event")
            if kind == "status":
                self._torrents = list(ev.get("torrents", []))
                self._bus.publish(DownloadsSampled(tuple(_row(t) for t in self._torrents)))
                self._update_metrics()
                await self._check_seeding_goals()
            elif kind == "finished":
                await self._finished(str(ev.get("torrent")))
            elif kind == "error":
                log.warning("torrent %s: %s", ev.get("torrent"), ev.get("message"))

    # -- requests from other rooms --------------------------------------------------------
    async def _follow_bus(self) -> None:
        types = (
            TorrentLimitRequest,
            PauseHeavyWork,
            ResumeHeavyWork,
            StorageDegraded,
            StorageRecovered,
            VpnPortForwarded,
            SettingsChanged,
        )
        with self._bus.subscribe(*types) as sub:
            while True:
                event = await sub.get()
                if isinstance(event, SettingsChanged):
                    if "vpn.wireguard_conf" in event.keys and self._ready.is_set():
                        await self._follow_vpn_setting()
                    if not any(k in LIMIT_KEYS for k in event.keys):
                        continue
                self._note(event)
                if self._ready.is_set():
                    with contextlib.suppress(EngineError):
                        await self._apply_all()

    async def _follow_vpn_setting(self) -> None:
        """A VPN set up or removed: the engine restarts in the namespace that now applies
        (its torrents come back from their resume files)."""
        if self.engine_netns() != self._engine_netns:
            log.info("VPN setting changed: the torrent engine restarts in namespace %s",
                     self.engine_netns() or "default")  # fmt: skip
            await self._stop_engine()

    def _note(self, event: Any) -> None:
        if isinstance(event, TorrentLimitRequest):
            self._factor = max(0.0, event.factor)
            self._factor_reason = event.reason if event.factor < 1.0 else ""
        elif isinstance(event, PauseHeavyWork):
            self._paused_by["thermal"] = event.reason
        elif isinstance(event, ResumeHeavyWork):
            self._paused_by.pop("thermal", None)
        elif isinstance(event, StorageDegraded) and event.role == "media":
            self._paused_by["storage"] = event.reason
        elif isinstance(event, StorageRecovered) and event.role == "media":
            self._paused_by.pop("storage", None)
        elif isinstance(event, VpnPortForwarded):
            self._forwarded_port = event.port

    def configured_limits(self) -> tuple[int, int]:
        down = _setting(self._settings, "torrent.download_limit", self.config.download_limit)
        up = _setting(self._settings, "torrent.upload_limit", self.config.upload_limit)
        return int(down), int(up)

    def effective_limits(self) -> tuple[int, int]:
        """What the engine gets (0 = unlimited): the lower of the person's limit (settings)
        and the thermal governor's. The thermal limit is ``thermal_base_limit`` scaled by the
        governor's factor, never under MIN_LIMIT; none while the factor is 1."""
        thermal = self.thermal_limit()
        out = []
        for limit in self.configured_limits():
            if thermal is None:
                out.append(limit)
            else:
                out.append(min(limit, thermal) if limit else thermal)
        return out[0], out[1]

    def thermal_limit(self) -> int | None:
        if self._factor >= 1.0:
            return None
        return max(MIN_LIMIT, int(self.config.thermal_base_limit * self._factor))

    def _listen(self) -> tuple[str, int]:
        iface = self.config.listen_interface or ("127.0.0.1" if self.simulated else "0.0.0.0")
        return iface, self._forwarded_port or self.config.listen_port

    async def _apply_all(self) -> None:
        down, up = self.effective_limits()
        args: dict[str, Any] = {
            "download_limit": down,
            "upload_limit": up,
            "paused": bool(self._paused_by),
        }
        if self._listen() != self._applied_listen:  # re-binding only when it changed
            args["listen_interface"], args["listen_port"] = self._listen()
        self._session = await self._client.request("settings", **args)
        self._applied_listen = self._listen()

    # -- seeding goals and finished downloads ---------------------------------------------
    async def _finished(self, tid: str) -> None:
        self._finished_at.setdefault(tid, time.monotonic())
        t = next((t for t in self._torrents if t["id"] == tid), None)
        try:
            files = await self._client.request("files", torrent=tid)
        except EngineError as e:
            log.warning("finished torrent %s: %s", tid, e)
            return
        save = Path(t["save_path"]) if t else self.downloads_path()
        paths = tuple(
            self._appliance_path(save / f["path"])
            for f in files
            if f["priority"] > 0 and not f["pad"]
        )
        self._bus.publish(DownloadFinished(tid, t["name"] if t else tid, paths))

    async def _check_seeding_goals(self) -> None:
        ratio_goal, hours_goal = self.config.seed_ratio, self.config.seed_hours
        if not ratio_goal and not hours_goal:
            return
        for t in self._torrents:
            if t["state"] != "seeding":
                continue
            tid = t["id"]
            since = self._finished_at.setdefault(tid, time.monotonic())
            ratio = t["all_time_upload"] / max(1, t["total_wanted"])
            if (ratio_goal and ratio >= ratio_goal) or (
                hours_goal and time.monotonic() - since >= hours_goal * 3600
            ):
                await self._done_seeding(t)

    async def _done_seeding(self, t: dict[str, Any]) -> None:
        files = await self._client.request("files", torrent=t["id"])
        top = {Path(f["path"]).parts[0] for f in files}
        paths = [self._appliance_path(Path(t["save_path"]) / p) for p in sorted(top)]
        await self._client.request("remove", torrent=t["id"], delete_files=False)
        self._forget_streams(t["id"])
        self._finished_at.pop(t["id"], None)
        if not self.simulated:
            await self._storage.mark_done_seeding(t["id"], paths)
        log.info("seeding goal met: %s removed from the engine", t["name"])

    # -- metrics ----------------------------------------------------------------------------
    def _update_metrics(self) -> None:
        rate = peers = up = down = 0
        buffers: list[float] = []
        for t in self._torrents:
            rate += t["download_rate"]
            peers += t["peers"]
            up += t["all_time_upload"]
            down += t["all_time_download"]
            seen = self._seen_download.get(t["id"], 0)
            if t["session_download"] > seen:
                self._m_bytes.inc(t["session_download"] - seen)
            self._seen_download[t["id"]] = t["session_download"]
            for s in t.get("streams", []):
                secs = s["buffer_seconds"]
                if secs is None:
                    secs = s["buffered_bytes"] / max(1, self.config.assumed_bitrate)
                buffers.append(float(secs))
        self._m_rate.set(rate)
        states: dict[str, int] = dict.fromkeys(TORRENT_STATES, 0)
        for t in self._torrents:
            state = _row(t)["state"]
            states[state] = states.get(state, 0) + 1
        for state, n in states.items():
            self._m_torrents.labels(state=state).set(n)
        self._m_peers.set(peers)
        self._m_ratio.set(up / down if down else 0.0)
        self._m_buffer.set(min(buffers) if buffers else 0.0)

    # -- the panel's view -----------------------------------------------------------------
    def status(self) -> tuple[str, str]:
        if self._engine_error and not self._ready.is_set():
            return "error", self._engine_error
        if not self._ready.is_set():
            return "starting", "Starting the torrent engine."
        if "storage" in self._paused_by:
            return "degraded", "Downloads are paused: " + self._paused_by["storage"]
        if "thermal" in self._paused_by:
            return "degraded", "Downloads are paused to cool down: " + self._paused_by["thermal"]
        active = sum(1 for t in self._torrents if t["state"] == "downloading" and not t["paused"])
        detail = f"{len(self._torrents)} torrent(s), {active} downloading."
        if self._factor < 1.0:
            detail += f" Speed limited to {self._factor:.0%}: {self._factor_reason}"
        return "ok", detail

    def snapshot(self) -> dict[str, Any]:
        state, detail = self.status()
        down, up = self.effective_limits()
        return {
            "state": state,
            "detail": detail,
            "simulated": self.simulated,
            "engine": {
                "running": self._ready.is_set(),
                "pid": self._proc.pid if self._proc else None,
                "restarts": self._restarts,
                "error": self._engine_error,
                "listen_port": self._forwarded_port or self.config.listen_port,
                "session": self._session,
            },
            "paused_by": dict(self._paused_by),
            "limits": {
                "configured": dict(
                    zip(("download", "upload"), self.configured_limits(), strict=True)
                ),
                "effective": {"download": down, "upload": up},
                "thermal": self.thermal_limit(),
                "factor": self._factor,
                "reason": self._factor_reason,
            },
            "torrents": [_row(t) for t in self._torrents],
        }

    # -- actions (the API's routes) -------------------------------------------------------
    async def _call(self, op: str, **args: Any) -> Any:
        if not self._ready.is_set():
            raise EngineUnavailable("The torrent engine is not running yet; try again shortly.")
        return await self._client.request(op, **args)

    async def add(
        self,
        *,
        magnet: str | None = None,
        torrent: bytes | None = None,
        url: str | None = None,
        paused: bool = False,
    ) -> str:
        """Add one of magnet / .torrent bytes / .torrent URL; returns the torrent id.
        Raises StorageUnavailable (media drive down) or EngineError (bad input, message for a
        person)."""
        save_path = self.downloads_path()
        args: dict[str, Any] = {"save_path": str(save_path), "paused": paused}
        if magnet is not None:
            args["magnet"] = magnet
        if torrent is not None:
            args["torrent"] = base64.b64encode(torrent).decode()
        if url is not None:
            args["url"] = url
        result = await self._call("add", reply_timeout=40.0, **args)
        await self._refresh()
        return str(result["torrent"])

    async def pause(self, torrent: str) -> None:
        await self._call("pause", torrent=torrent)
        await self._refresh()

    async def resume(self, torrent: str) -> None:
        await self._call("resume", torrent=torrent)
        await self._refresh()

    async def remove(self, torrent: str, delete_files: bool = False) -> None:
        await self._call("remove", torrent=torrent, delete_files=delete_files)
        self._forget_streams(torrent)
        await self._refresh()

    async def _refresh(self) -> None:
        """After an action, the snapshot shows its effect at once (not at the next status
        tick): the page reloads right after it."""
        with contextlib.suppress(EngineError):
            self._torrents = list(await self._call("status"))

    async def play(self, torrent: str, file: int | None = None) -> dict[str, Any]:
        """Play now: open file ``file`` (default: the largest selected one) for streaming and
        register it with the streamer. Returns ``{id, stream, name, size, file, playable}``;
        ``stream`` is the ``/stream/dl-…`` URL, which serves Range and HEAD while the file is
        still downloading (a read waits for its pieces, 503 when they do not come in time)."""
        files = [f for f in await self.files(torrent) if not f["pad"]]
        if file is None:
            wanted = [f for f in files if f["priority"] > 0] or files
            if not wanted:
                raise EngineError("This download has no files yet (its metadata is missing).")
            chosen = max(wanted, key=lambda f: f["size"])
        else:
            match = [f for f in files if f["index"] == file]
            if not match:
                raise EngineError(f"This download has no file number {file}.")
            chosen = match[0]
        index = int(chosen["index"])
        opened = await self.open_stream(torrent, index)
        object_id = self._playing.get((torrent, index))
        if object_id is None or self.sources.get(object_id) is None:
            name = PurePosixPath(str(chosen["path"])).name
            source = TorrentSource(self, torrent, index, name, int(opened["size"]))
            object_id = self.sources.add(source)
            self._playing[(torrent, index)] = object_id
        t = next((t for t in self._torrents if t["id"] == torrent), None)
        return {
            "id": object_id,
            "stream": f"/stream/{object_id}",
            "name": PurePosixPath(str(chosen["path"])).name,
            "size": int(opened["size"]),
            "file": index,
            "playable": bool(t and t["playable"]) or opened["missing"] == 0,
        }

    def _forget_streams(self, torrent: str) -> None:
        for key in [k for k in self._playing if k[0] == torrent]:
            self.sources.remove(self._playing.pop(key))

    async def set_torrent_limits(self, torrent: str, download: int, upload: int) -> None:
        await self._call("torrent_limits", torrent=torrent, download_limit=download,
                         upload_limit=upload)  # fmt: skip

    async def files(self, torrent: str) -> list[dict[str, Any]]:
        return list(await self._call("files", torrent=torrent))

    async def set_file_priorities(self, torrent: str, priorities: list[int]) -> None:
        await self._call("file_priorities", torrent=torrent, priorities=priorities)

    async def open_stream(self, torrent: str, file: int, bitrate: int = 0) -> dict[str, Any]:
        """Start streaming file ``file``: header, footer and prebuffer first. Returns size/path."""
        return dict(await self._call("open_stream", torrent=torrent, file=file, bitrate=bitrate))

    async def read(
        self, torrent: str, file: int, offset: int, length: int, timeout: float = 30.0
    ) -> bytes:
        """File bytes [offset, offset+length) once their pieces are verified; EngineError
        ("Timed out ...") when they do not arrive in time. Never unverified bytes."""
        r = await self._call(
            "read", torrent=torrent, file=file, offset=offset, length=length, timeout=timeout
        )
        return base64.b64decode(r["data"])

    async def close_stream(self, torrent: str, file: int) -> None:
        await self._call("close_stream", torrent=torrent, file=file)

    async def engine_request(self, op: str, **args: Any) -> Any:
        """Any other protocol op (tests, tools)."""
        return await self._call(op, **args)


def _row(t: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": t["id"],
        "name": t["name"],
        "state": "paused" if t["paused"] and t["state"] != "error" else t["state"],
        "progress": t["progress"],
        "download_rate": t["download_rate"],
        "upload_rate": t["upload_rate"],
        "peers": t["peers"],
        "seeds": t["seeds"],
        "eta": t["eta"],
        "size": t["total_wanted"],
        "done": t["total_done"],
        "ratio": round(t["all_time_upload"] / t["total_wanted"], 3) if t["total_wanted"] else 0.0,
        "playable": t["playable"],
        "error": t["error"],
        "streams": t.get("streams", []),
    }


def _setting(settings: SettingsView, key: str, default: int) -> int:
    try:
        value = settings.get(key)
    except KeyError:
        return default
    return int(value) if isinstance(value, int) and value >= 0 else default


def _accepting(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        return s.connect_ex(str(path)) == 0
