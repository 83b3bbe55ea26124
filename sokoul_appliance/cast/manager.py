"""The cast room: finds Chromecasts on the chosen interfaces and plays library items (and
downloads being streamed) on them through the stream room's URLs.

Everything pychromecast does blocks or runs on its own threads: each blocking call runs here on
a daemon thread (cast/threads.py) under ``asyncio.wait_for``; what pychromecast's threads
report comes back with ``loop.call_soon_threadsafe``. The state below lives on the event loop
only.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from sokoul_appliance.bus import EventBus, Subscription
from sokoul_appliance.cast import compat
from sokoul_appliance.cast.addressing import (
    Unreachable,
    local_address_for,
    media_url,
    panel_port_for,
)
from sokoul_appliance.cast.connection import CastConnection, CastError, DeviceInfo, LoadRequest
from sokoul_appliance.cast.discovery import CastDiscovery
from sokoul_appliance.cast.metrics import CastMetrics
from sokoul_appliance.cast.threads import DaemonThreads
from sokoul_appliance.events import (
    CastDeviceChanged,
    CastDeviceRemoved,
    ManagerStateChanged,
    SettingsChanged,
)
from sokoul_appliance.host import Host
from sokoul_appliance.library.files import MIME_BY_EXTENSION
from sokoul_appliance.library.manager import LibraryManager
from sokoul_appliance.stream.profiles import container_key
from sokoul_appliance.stream.service import GROWING, STREAM_ID, StreamService
from sokoul_appliance.stream.transcode import DIRECT, REMUX

log = logging.getLogger("sokoul.cast")

T = TypeVar("T")
PROFILE = "chromecast"
CONTROLS = ("play", "pause", "stop", "seek", "volume")


class CastRequestError(Exception):
    """A cast or control request that cannot be done; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class CastConfig:
    # addresses to discover on; None: the streaming network's (and the LAN's when DLNA serves
    # the LAN) on a live host, nothing on a simulated board
    addresses: tuple[str, ...] | None = None
    listen: tuple[tuple[str | None, int], ...] = ()  # the web server's, for stream URLs
    connect_timeout: float = 5.0  # per pychromecast socket step
    call_timeout: float = 10.0  # a control call (PAUSE, SEEK, ...)
    load_timeout: float = 30.0  # connect + launch + LOAD


@dataclass
class _Cast:
    item: str
    title: str
    mode: str
    url: str  # without the seek offset
    content_type: str
    subtitles: str | None
    duration: float | None = None  # the library's (a receiver may not know a converted one's)
    offset: float = 0.0  # a converted stream restarted at this time (seek)


@dataclass
class _Device:
    info: DeviceInfo
    state: str = "available"  # available | connecting | casting | reconnecting | lost
    detail: str = ""
    conn: CastConnection | None = None
    cast: _Cast | None = None
    media: dict[str, Any] = field(default_factory=dict)
    volume: float | None = None
    muted: bool = False
    present: bool = True
    updated: float = field(default_factory=time.time)
    seq: int = 0  # bumped on every published change: the panel keeps the newest it has seen

    def to_json(self) -> dict[str, Any]:
        cast = None
        if self.cast is not None:
            m = self.media
            current = m.get("current_time")
            cast = {
                "item": self.cast.item,
                "title": self.cast.title,
                "mode": self.cast.mode,
                "url": self.cast.url,
                "content_type": self.cast.content_type,
                "subtitles": self.cast.subtitles,
                "player_state": m.get("player_state") or "UNKNOWN",
                "idle_reason": m.get("idle_reason"),
                "current_time": None if current is None else current + self.cast.offset,
                "duration": m.get("duration") or self.cast.duration,
            }
        return {
            "id": self.info.uuid,
            "name": self.info.name,
            "model": self.info.model,
            "address": f"{self.info.host}:{self.info.port}",
            "state": self.state,
            "detail": self.detail,
            "present": self.present,
            "seq": self.seq,
            "volume": self.volume,
            "muted": self.muted,
            "cast": cast,
        }


class CastManager:
    name = "cast"
    title = "Casting"

    def __init__(
        self,
        host: Host,
        bus: EventBus,
        registry: CollectorRegistry,
        library: LibraryManager,
        stream: StreamService,
        config: CastConfig,
        addresses: Callable[[], Sequence[str]] | None = None,
        *,
        live: bool | None = None,
        discovery_factory: Callable[..., Any] = CastDiscovery,
    ) -> None:
        self.host = host
        self.bus = bus
        self.library = library
        self.stream = stream
        self.config = config
        self.live = host.live if live is None else live
        self._live_addresses = addresses
        self._discovery_factory = discovery_factory
        self.metrics = CastMetrics(registry)
        self._devices: dict[str, _Device] = {}
        self._pool: DaemonThreads | None = None
        self._discovery: Any = None
        self._searching: tuple[str, ...] = ()
        self._watcher: asyncio.Task[None] | None = None
        self._subscriptions = contextlib.ExitStack()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = ("starting", "Starting.")
        self._reported = self._state
        self._locks: dict[str, asyncio.Lock] = {}

    # ---- lifecycle -------------------------------------------------------------------------

    def _addresses(self) -> tuple[str, ...]:
        if self.config.addresses is not None:
            return self.config.addresses
        if not self.live or self._live_addresses is None:
            return ()
        return tuple(self._live_addresses())

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._pool = DaemonThreads("cast")
        await self._follow_interfaces()
        if self.config.addresses is None and self.live and self._live_addresses is not None:
            # the streaming network (or the LAN setting) may change while running; subscribed
            # here, before anything else runs, so that no change is missed
            sub = self._subscriptions.enter_context(
                self.bus.subscribe(SettingsChanged, ManagerStateChanged)
            )
            self._watcher = asyncio.create_task(self._watch_interfaces(sub), name="cast-interfaces")

    async def _watch_interfaces(self, sub: Subscription) -> None:
        while True:
            event = await sub.get()
            if isinstance(event, ManagerStateChanged) and event.name != "network":
                continue
            if isinstance(event, SettingsChanged) and not any(
                k == "dlna.serve_lan" or k.startswith("network.") for k in event.keys
            ):
                continue
            try:
                await self._follow_interfaces()
            except Exception:  # the watcher must outlive one failed restart
                log.exception("restarting Chromecast discovery failed")

    async def _follow_interfaces(self) -> None:
        """Discovery on the addresses of now; restarted when they changed."""
        addresses = self._addresses()
        unchanged = addresses == self._searching and self._state[0] != "starting"
        if unchanged and (self._discovery is not None or not addresses):
            return  # (a discovery that failed to start is tried again)
        await self._stop_discovery()
        self._searching = addresses
        for uuid in [u for u, d in self._devices.items() if d.conn is None]:
            del self._devices[uuid]  # found on the old interfaces; found again if still there
            self.bus.publish(CastDeviceRemoved(uuid))
        self.metrics.devices.set(sum(1 for d in self._devices.values() if d.present))
        if not addresses:
            why = (
                "Chromecast discovery is off on a simulated board (no mDNS from this machine)."
                if not self.live
                else "No streaming network is configured yet: Chromecasts are looked for there."
            )
            self._state = ("not_configured", why)
            return
        discovery = self._discovery_factory(
            addresses, self._found_threadsafe, self._removed_threadsafe
        )
        try:
            await self._call(discovery.start, timeout=15.0)
        except (OSError, TimeoutError, ValueError) as e:
            self.metrics.errors.labels(kind="discovery").inc()
            self._state = (
                "error",
                f"Chromecast discovery could not start on {', '.join(addresses)}: {e}",
            )
            log.error("%s", self._state[1])
            with contextlib.suppress(OSError, TimeoutError):
                await self._call(discovery.stop, timeout=10.0)
            return
        self._discovery = discovery
        self._state = ("ok", f"Looking for Chromecasts on {', '.join(addresses)}.")

    async def _stop_discovery(self) -> None:
        if self._discovery is None:
            return
        discovery, self._discovery = self._discovery, None
        try:
            await self._call(discovery.stop, timeout=10.0)
        except TimeoutError:
            log.warning("Chromecast discovery took more than 10 s to stop; left behind")

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        self._subscriptions.close()
        devices = list(self._devices.values())
        for dev in devices:
            if dev.conn is not None:
                conn, dev.conn = dev.conn, None
                with contextlib.suppress(TimeoutError):
                    await self._call(conn.close, timeout=self.config.connect_timeout + 2)
        await self._stop_discovery()
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
        self._devices.clear()
        self.metrics.devices.set(0)
        self._state = ("stopped", "Stopped.")

    def status(self) -> tuple[str, str]:
        state, detail = self._state
        if state != "ok":
            return state, detail
        lost = [d.info.name for d in self._devices.values() if d.state == "lost"]
        n = sum(1 for d in self._devices.values() if d.present)
        if lost:
            return "degraded", f"{detail} Lost during a cast: {', '.join(lost)}."
        return "ok", f"{detail} {n} found."

    def snapshot(self) -> list[dict[str, Any]]:
        return [d.to_json() for d in sorted(self._devices.values(), key=lambda d: d.info.name)]

    async def _call(self, fn: Callable[..., T], *args: Any, timeout: float) -> T:
        assert self._pool is not None, "the cast manager is not started"
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._pool, functools.partial(fn, *args))
        return await asyncio.wait_for(fut, timeout)

    def _post(self, fn: Callable[[], None]) -> None:
        """From any thread: run ``fn`` on the event loop (dropped once the loop is gone)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(fn)

    def _publish(self, dev: _Device) -> None:
        dev.updated = time.time()
        dev.seq += 1
        self.bus.publish(CastDeviceChanged(dev.to_json()))
        state, detail = self.status()
        if (state, detail) != self._reported:
            self._reported = (state, detail)  # the Home page's card and health follow it
            self.bus.publish(ManagerStateChanged(self.name, state, detail))

    # ---- discovery (reports come from zeroconf's threads) ----------------------------------

    def _found_threadsafe(self, info: DeviceInfo) -> None:
        self._post(lambda: self._found(info))

    def _removed_threadsafe(self, uuid: str) -> None:
        self._post(lambda: self._removed(uuid))

    def _found(self, info: DeviceInfo) -> None:
        dev = self._devices.get(info.uuid)
        if dev is None:
            dev = self._devices[info.uuid] = _Device(info)
            log.info("found Chromecast %s (%s) at %s", info.name, info.model, info.host)
        else:
            dev.info = info
            dev.present = True
        self.metrics.devices.set(sum(1 for d in self._devices.values() if d.present))
        self._publish(dev)

    def _removed(self, uuid: str) -> None:
        dev = self._devices.get(uuid)
        if dev is None:
            return
        log.info("Chromecast %s left the network", dev.info.name)
        if dev.cast is not None and dev.state in ("casting", "reconnecting", "connecting"):
            self._lose(dev, f"{dev.info.name} left the network during the cast.")
        if dev.cast is None or dev.state == "lost":
            dev.present = False
        if dev.state != "lost" and dev.conn is None:
            del self._devices[uuid]
            self.bus.publish(CastDeviceRemoved(uuid))
        else:
            dev.present = False
            self._publish(dev)
        self.metrics.devices.set(sum(1 for d in self._devices.values() if d.present))

    # ---- pychromecast's reports (its threads) -----------------------------------------------

    def _connection_for(self, dev: _Device) -> CastConnection:
        uuid = dev.info.uuid

        def on_media(media: dict[str, Any]) -> None:
            self._post(lambda: self._media(uuid, conn, media))

        def on_connection(status: str) -> None:
            self._post(lambda: self._connection(uuid, conn, status))

        def on_volume(level: float, muted: bool) -> None:
            self._post(lambda: self._volume(uuid, conn, level, muted))

        conn = CastConnection(
            dev.info, on_media, on_connection, on_volume, timeout=self.config.connect_timeout
        )
        return conn

    def _media(self, uuid: str, conn: CastConnection, media: dict[str, Any]) -> None:
        dev = self._devices.get(uuid)
        if dev is None or dev.conn is not conn:
            return
        if media.get("session") is None and not media.get("player_state"):
            return  # the channel closed: pychromecast's blank status, nothing heard
        dev.media = media
        self._publish(dev)

    def _volume(self, uuid: str, conn: CastConnection, level: float, muted: bool) -> None:
        dev = self._devices.get(uuid)
        if dev is None or dev.conn is not conn:
            return
        if (dev.volume, dev.muted) != (level, muted):
            dev.volume, dev.muted = level, muted
            self._publish(dev)

    def _connection(self, uuid: str, conn: CastConnection, status: str) -> None:
        dev = self._devices.get(uuid)
        if dev is None or dev.conn is not conn or conn.closed:
            return
        if status == "LOST" and dev.state in ("casting", "available"):
            dev.state, dev.detail = "reconnecting", f"Lost contact with {dev.info.name}; retrying."
            log.warning("%s: connection lost, reconnecting", dev.info.name)
            self._publish(dev)
        elif status == "CONNECTED" and dev.state == "reconnecting":
            dev.state = "casting" if dev.cast is not None else "available"
            dev.detail = ""
            self._publish(dev)
        elif status == "DISCONNECTED" and dev.state != "connecting":
            # (while connecting, open() fails and _connect reports it)
            self._lose(
                dev,
                f"{dev.info.name} stopped answering (the connection ended and reconnecting "
                "failed). Check that it is on and on the streaming network, then cast again.",
            )

    def _lose(self, dev: _Device, message: str) -> None:
        if dev.state == "lost":
            return
        log.error("%s", message)
        self.metrics.errors.labels(kind="lost").inc()
        dev.state, dev.detail = "lost", message
        if dev.media:
            dev.media = {**dev.media, "player_state": "UNKNOWN"}
        conn, dev.conn = dev.conn, None
        if conn is not None and self._pool is not None:
            conn.closed = True
            self._pool.submit(conn.close)
        self._publish(dev)

    # ---- casting ---------------------------------------------------------------------------

    def _device(self, device_id: str) -> _Device:
        dev = self._devices.get(device_id)
        if dev is None:
            raise CastRequestError(404, "No such Chromecast (it may have left the network).")
        return dev

    async def _what_to_send(self, stream_id: str, subtitles: bool) -> tuple[_Cast, str | None]:
        """The stream path (+query), mode, content type, subtitle path and language."""
        if not STREAM_ID.match(stream_id):
            raise CastRequestError(404, "No such item.")
        if stream_id.startswith("dl-"):
            source = self.stream.sources.get(stream_id)
            if source is None:
                raise CastRequestError(404, "This download is not being streamed (press Play).")
            ext = PurePosixPath(source.name).suffix.lower()
            mime = MIME_BY_EXTENSION.get(ext, "video/mp4")
            return _Cast(stream_id, source.name, GROWING, f"/stream/{stream_id}", mime, None), None
        item = await self.library.item(stream_id)
        if item is None:
            raise CastRequestError(404, "No such item.")
        if not item.available:
            raise CastRequestError(409, "This item's drive is not available now.")
        profile = self.stream.profile_for(None, PROFILE)
        container = container_key(item.container, item.file_name)
        plan, choice = self.stream.choose(item, profile)
        query = f"profile={PROFILE}"
        if plan.mode in (DIRECT, REMUX):  # the video would go out as it is: can it decode it?
            path = await self.library.real_path(item)
            kind = container if plan.mode == DIRECT else ""  # (a remux moves the moov anyway)
            extra = await compat.stream_query(self.host, path, kind, item.video_codec)
            if extra:
                plan, choice = self.stream.choose(
                    item, profile, force=True, reencode=extra == compat.REENCODE
                )
                query += f"&{extra}"
        sub = self.stream.subtitle_path(item, profile) if subtitles else None
        lang = None
        if sub is not None:
            tracks = item.subtitles()
            lang = tracks[0].language if tracks else None
        cast = _Cast(
            item.id,
            item.display_title,
            plan.mode,
            f"{choice.path}?{query}",
            choice.mime_type,
            sub,
            item.duration,
        )
        return cast, lang

    def _lock(self, device_id: str) -> asyncio.Lock:
        return self._locks.setdefault(device_id, asyncio.Lock())

    async def cast(self, device_id: str, stream_id: str, subtitles: bool = True) -> dict[str, Any]:
        dev = self._device(device_id)
        async with self._lock(device_id):
            what, lang = await self._what_to_send(stream_id, subtitles)
            try:
                local_ip = local_address_for(dev.info.host, dev.info.port)
            except Unreachable as e:
                self.metrics.errors.labels(kind="connect").inc()
                raise CastRequestError(409, str(e)) from None
            port = panel_port_for(local_ip, self.config.listen)
            if port is None:
                raise CastRequestError(
                    409,
                    f"The appliance reaches {dev.info.name} from {local_ip}, but its web server "
                    "does not listen there: streams would not reach the device.",
                )
            base = media_url(local_ip, port, "")
            what.url = base + what.url
            if what.subtitles is not None:
                what.subtitles = base + what.subtitles
            await self._connect(dev)
            dev.cast, dev.media = what, {}
            dev.state, dev.detail = "casting", ""
            self._publish(dev)
            await self._load(dev, what, lang, 0.0)
            self.metrics.casts.labels(mode=what.mode).inc()
            log.info("casting %s to %s (%s)", what.title, dev.info.name, what.mode)
            return dev.to_json()

    async def _connect(self, dev: _Device) -> None:
        conn = dev.conn
        if conn is not None and conn.alive:
            return
        dev.state, dev.detail = "connecting", f"Connecting to {dev.info.name}."
        self._publish(dev)
        conn = self._connection_for(dev)
        dev.conn = conn
        try:
            await self._call(conn.open, timeout=self.config.load_timeout)
        except (CastError, TimeoutError) as e:
            dev.conn = None
            if self._pool is not None:
                conn.closed = True
                self._pool.submit(conn.close)
            self.metrics.errors.labels(kind="connect").inc()
            message = str(e) or f"{dev.info.name} did not answer in time."
            dev.state, dev.detail = ("available" if dev.present else "lost"), message
            self._publish(dev)
            raise CastRequestError(504, message) from None

    async def _load(self, dev: _Device, what: _Cast, lang: str | None, at: float) -> None:
        conn = dev.conn
        if conn is None:
            raise CastRequestError(409, f"{dev.info.name} is not connected.")
        url = what.url
        current: float | None = None
        if at > 0:
            if what.mode in (DIRECT, GROWING):
                current = at
            else:
                url = f"{url}&t={at:.3f}"  # a converted stream starts again at the time
        what.offset = at if what.mode not in (DIRECT, GROWING) else 0.0
        req = LoadRequest(url, what.content_type, what.title, what.subtitles, lang or "und",
                          current)  # fmt: skip
        try:
            await self._call(conn.load, req, timeout=self.config.load_timeout)
        except (CastError, TimeoutError) as e:
            self.metrics.errors.labels(kind="load").inc()
            message = str(e) or f"{dev.info.name} did not start the media in time."
            if dev.state != "lost":
                dev.detail = message
            self._publish(dev)
            raise CastRequestError(504 if isinstance(e, TimeoutError) else 502, message) from None

    async def control(
        self, device_id: str, action: str, value: float | None = None
    ) -> dict[str, Any]:
        if action not in CONTROLS:
            raise CastRequestError(404, f"No control {action!r} ({', '.join(CONTROLS)}).")
        dev = self._device(device_id)
        if action in ("seek", "volume") and value is None:
            raise CastRequestError(400, f"{action} needs a value.")
        if action == "volume" and value is not None and not 0.0 <= value <= 1.0:
            raise CastRequestError(400, "volume is from 0 to 1.")
        if action == "seek" and value is not None and value < 0:
            raise CastRequestError(400, "seek takes a time in seconds from the start.")
        async with self._lock(device_id):
            if dev.state == "lost" or dev.conn is None:
                raise CastRequestError(
                    409, dev.detail or f"{dev.info.name} is not playing anything from here."
                )
            what = dev.cast
            if (
                action == "seek"
                and what is not None
                and what.mode not in (DIRECT, GROWING)
                and value is not None
            ):
                await self._load(dev, what, None, value)  # a converted stream: start it again
                return dev.to_json()
            try:
                await self._call(dev.conn.control, action, value, timeout=self.config.call_timeout)
            except (CastError, TimeoutError) as e:
                self.metrics.errors.labels(kind="control").inc()
                message = str(e) or f"{dev.info.name} did not answer within " \
                    f"{self.config.call_timeout:.0f} s."  # fmt: skip
                raise CastRequestError(504, message) from None
            return dev.to_json()
