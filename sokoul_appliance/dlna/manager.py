"""DlnaManager: the MediaServer's lifecycle — its HTTP side (description, SCPDs, SOAP control,
eventing, and the streamer's /stream and /subtitles routes) on each serving address, SSDP on
each serving interface, a stable UDN, and SystemUpdateID following the library.

Where it serves comes from ``bindings()`` (the composition root reads the network plan):
the streaming interface, plus the LAN when ``dlna.serve_lan`` is set. A binding without an
interface (a simulated board: 127.0.0.1) gets HTTP only — SSDP is never started there, so
nothing listens on port 1900 at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
import uuid
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from async_upnp_client.aiohttp import AiohttpRequester
from async_upnp_client.const import DeviceInfo
from async_upnp_client.server import (
    UpnpServerDevice,
    UpnpServerService,
    UpnpXmlSerializer,
    subscribe_handler,
    unsubscribe_handler,
)
from prometheus_client import CollectorRegistry

from sokoul_appliance import __version__
from sokoul_appliance.bus import EventBus
from sokoul_appliance.dlna.content import Client, ContentTree, load_didl_options
from sokoul_appliance.dlna.description import DESCRIPTION_PATH, DEVICE_TYPE, device_description
from sokoul_appliance.dlna.metrics import DlnaMetrics
from sokoul_appliance.dlna.services import ConnectionManagerService, ContentDirectoryService
from sokoul_appliance.dlna.soap import ControlHandler
from sokoul_appliance.dlna.ssdp import InterfaceAnnouncer, InterfaceSearchResponder
from sokoul_appliance.events import LibraryUpdated
from sokoul_appliance.library import LibraryManager
from sokoul_appliance.library.files import MIME_BY_EXTENSION
from sokoul_appliance.stream import StreamService
from sokoul_appliance.stream.service import client_identity
from sokoul_appliance.tasks import cancel_and_wait

log = logging.getLogger("sokoul.dlna")

STATE_FILE = "dlna.json"
ITEM_ID = re.compile(r"^it-[a-z0-9]{1,32}$")
DEFAULT_HTTP_PORT = 8200


@dataclass(frozen=True)
class Binding:
    """One place to serve: an IPv4 address, and the interface it is on (None: HTTP only,
    no SSDP — loopback on a simulated board)."""

    address: str
    interface: str | None = None
    role: str = "streaming"  # 'streaming' | 'lan' | 'loopback'


Handler = Callable[[web.Request], Awaitable[web.Response]]


def _bound(
    handler: Callable[[UpnpServerService, web.Request], Awaitable[web.Response]],
    service: UpnpServerService,
) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        return await handler(service, request)

    return handle


def _device_class(udn: str, name: str, serial: str) -> type[UpnpServerDevice]:
    info = DeviceInfo(
        device_type=DEVICE_TYPE,
        friendly_name=name,
        manufacturer="SOKOUL",
        manufacturer_url=None,
        model_description="SOKOUL home media appliance",
        model_name="SOKOUL Appliance",
        model_number=__version__,
        model_url=None,
        serial_number=serial,
        udn=udn,
        upc=None,
        presentation_url=None,
        url=DESCRIPTION_PATH,
        icons=[],
        xml=ET.Element("server_device"),
    )
    return type(
        "SokoulMediaServer",
        (UpnpServerDevice,),
        {
            "DEVICE_DEFINITION": info,
            "EMBEDDED_DEVICES": [],
            "SERVICES": [ContentDirectoryService, ConnectionManagerService],
        },
    )


def _read_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_state(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)


def source_protocols(stream: StreamService) -> str:
    """ConnectionManager SourceProtocolInfo: every MIME type we may send."""
    mimes = set(MIME_BY_EXTENSION.values()) | {"video/mpeg", "video/mp2t"}
    for p in stream.profiles:
        mimes |= set(p.mime_types.values())
    return ",".join(f"http-get:*:{m}:*" for m in sorted(mimes))


MAX_CLIENTS = 32  # TVs/players remembered for the Devices page (by address and User-Agent)


class DlnaManager:
    name = "dlna"
    title = "DLNA server"

    def __init__(
        self,
        bus: EventBus,
        library: LibraryManager,
        stream: StreamService,
        registry: CollectorRegistry,
        state_dir: Path,
        bindings: Callable[[], Sequence[Binding]],
        friendly_name: Callable[[], str],
        http_port: int = DEFAULT_HTTP_PORT,
        ssdp: bool = True,
        reconcile_interval: float = 15.0,
    ) -> None:
        self.bus = bus
        self.library = library
        self.stream = stream
        self.metrics = DlnaMetrics(registry)
        self.state_path = state_dir / STATE_FILE
        self._bindings = bindings
        self._friendly_name = friendly_name  # may read /etc/hostname: called in a thread
        self.http_port = http_port
        self.ssdp = ssdp
        self.reconcile_interval = reconcile_interval
        self.udn = ""
        self.update_id = 0
        self.port: int | None = None  # the HTTP port once serving (port 0 asks the kernel)
        self.device: UpnpServerDevice | None = None
        self.cds: ContentDirectoryService | None = None
        self.tree: ContentTree | None = None
        self._runner: web.AppRunner | None = None
        self._sites: dict[Binding, web.TCPSite] = {}
        self._ssdp: dict[Binding, tuple[InterfaceSearchResponder, InterfaceAnnouncer]] = {}
        self._problems: dict[Binding, str] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._state: dict[str, Any] = {}
        self._lock = asyncio.Lock()
        self._started = False
        # the TVs and players that browsed the library (Devices page): newest last, bounded
        self._clients: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        state = await asyncio.to_thread(_read_state, self.state_path)
        udn = state.get("udn")
        if not isinstance(udn, str) or not udn.startswith("uuid:"):
            udn = f"uuid:{uuid.uuid4()}"
        self.update_id = int(state.get("update_id", 0) or 0)
        self._state = {"udn": udn, "update_id": self.update_id}
        if state != self._state:
            await asyncio.to_thread(_write_state, self.state_path, self._state)
        self.udn = udn
        options = await asyncio.to_thread(load_didl_options)
        self.tree = ContentTree(self.library, self.stream, options)
        serial = udn.removeprefix("uuid:").replace("-", "")[:12]
        cls = _device_class(udn, await asyncio.to_thread(self._friendly_name), serial)
        self.device = cls(AiohttpRequester(), "http://127.0.0.1", 1, 1)
        services = [s for s in self.device.all_services if isinstance(s, UpnpServerService)]
        cds = next(s for s in services if isinstance(s, ContentDirectoryService))
        cms = next(s for s in services if isinstance(s, ConnectionManagerService))
        cds.bind(self.tree, self.metrics)
        cds.set_update_id(self.update_id)
        cms.set_source_protocols(source_protocols(self.stream))
        self.cds = cds
        self._runner = web.AppRunner(self._app(services), access_log=None)
        await self._runner.setup()
        self._started = True
        await self.reconcile()
        self._tasks = [
            asyncio.create_task(self._follow_library(), name="dlna-library"),
            asyncio.create_task(self._reconcile_loop(), name="dlna-reconcile"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        async with self._lock:
            for binding in list(self._sites):
                await self._close(binding)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.tree is not None:
            await self.tree.close()
        self._started = False

    def _app(self, services: list[UpnpServerService]) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_get(DESCRIPTION_PATH, self._description)
        for service in services:
            d = service.SERVICE_DEFINITION
            app.router.add_get(d.scpd_url, self._scpd_handler(service))
            app.router.add_post(d.control_url, self._control_handler(service))
            app.router.add_route("SUBSCRIBE", d.event_sub_url, _bound(subscribe_handler, service))
            app.router.add_route(
                "UNSUBSCRIBE", d.event_sub_url, _bound(unsubscribe_handler, service)
            )
        app.router.add_get("/art/{object_id}", self._art)
        app.add_routes(self.stream.routes())
        return app

    async def _art(self, request: web.Request) -> web.StreamResponse:
        """A poster beside the item's file (upnp:albumArtURI); ids only, like /stream."""
        assert self.tree is not None
        object_id = request.match_info["object_id"]
        item = await self.library.item(object_id) if ITEM_ID.match(object_id) else None
        art = await self.tree.artwork(item) if item is not None else None
        if art is None:
            return web.Response(status=404, text="No artwork for this item.\n")
        return web.FileResponse(art.path, headers={"Content-Type": art.mime})

    # ---- HTTP handlers ---------------------------------------------------------------------

    def client(self, request: web.Request) -> Client:
        profile = self.stream.profile_for(client_identity(request))
        self._seen(request, profile.name, profile.title)
        host = request.host
        if not host or "/" in host:
            sock = request.transport.get_extra_info("sockname") if request.transport else None
            host = f"{sock[0]}:{sock[1]}" if sock else "127.0.0.1"
        return Client(profile, f"http://{host}", request.headers.get("getCaptionInfo.sec") == "1")

    def _seen(self, request: web.Request, profile: str, title: str) -> None:
        address = request.remote or "unknown"
        agent = (request.headers.get("User-Agent") or "")[:160]
        entry = self._clients.pop((address, agent), None) or {
            "address": address,
            "user_agent": agent,
            "first_seen": time.time(),
            "requests": 0,
        }
        if profile == "generic":  # name it by its product token: "VLC/3.0.18" -> "VLC"
            token = agent.split(" ", 1)[0].split("/", 1)[0] if agent else ""
            title = token or "DLNA client"
        entry.update(name=title, profile=profile, last_seen=time.time())
        entry["requests"] += 1
        self._clients[(address, agent)] = entry
        while len(self._clients) > MAX_CLIENTS:
            self._clients.popitem(last=False)

    def clients(self) -> list[dict[str, Any]]:
        """The TVs and players that browsed the library lately, most recent first."""
        return [dict(c) for c in reversed(self._clients.values())]

    async def _description(self, request: web.Request) -> web.Response:
        assert self.device is not None
        services = [s for s in self.device.all_services if isinstance(s, UpnpServerService)]
        body = device_description(
            self.udn,
            self.device.friendly_name,
            __version__,
            services,
            self.device.serial_number or "",
        )
        return web.Response(body=body.encode(), content_type="text/xml", charset="utf-8")

    @staticmethod
    def _scpd_handler(service: UpnpServerService) -> Handler:
        xml = ET.tostring(UpnpXmlSerializer.to_xml(service), encoding="utf-8",
                          xml_declaration=True)  # fmt: skip

        async def scpd(request: web.Request) -> web.Response:
            return web.Response(body=xml, content_type="text/xml", charset="utf-8")

        return scpd

    def _control_handler(self, service: UpnpServerService) -> Handler:
        control = ControlHandler(service, self.metrics, self.client)

        async def handle(request: web.Request) -> web.Response:
            return await control(request)

        return handle

    # ---- serving addresses -----------------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(self.reconcile_interval)
            try:
                await self.reconcile()
            except Exception:
                log.exception("DLNA: re-reading the serving addresses failed")

    async def reconcile(self) -> None:
        """Serve exactly on the current bindings (a changed address or setting moves us)."""
        async with self._lock:
            if not self._started:
                return
            want = list(dict.fromkeys(self._bindings()))
            for binding in [b for b in self._sites if b not in want]:
                await self._close(binding)
            for binding in want:
                if binding not in self._sites:
                    await self._open(binding)

    async def _open(self, binding: Binding) -> None:
        assert self._runner is not None and self.device is not None
        port = self.port if self.port is not None else self.http_port
        site = web.TCPSite(self._runner, binding.address, port, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            self._problems[binding] = (
                f"Cannot serve DLNA on {binding.address}:{port} ({e.strerror}); "
                "is another media server running?"
            )
            log.error("DLNA: %s", self._problems[binding])
            return
        server = site._server  # aiohttp keeps the listening sockets here
        if self.port is None and server is not None:
            sockets = getattr(server, "sockets", None) or []
            self.port = int(sockets[0].getsockname()[1]) if sockets else port
        self._sites[binding] = site
        self._problems.pop(binding, None)
        log.info("DLNA MediaServer on http://%s:%s%s", binding.address, self.port,
                 DESCRIPTION_PATH)  # fmt: skip
        if self.ssdp and binding.interface:
            await self._start_ssdp(binding)

    async def _start_ssdp(self, binding: Binding) -> None:
        assert self.device is not None and binding.interface is not None
        cls = type(self.device)
        # a device object per address: its base URI is the LOCATION SSDP hands out there
        device = cls(AiohttpRequester(), f"http://{binding.address}:{self.port}", 1, 1)
        responder = InterfaceSearchResponder(device, binding.interface, binding.address)
        announcer = InterfaceAnnouncer(device, binding.interface, binding.address)
        try:
            await responder.async_start()
            await announcer.async_start()
        except OSError as e:
            await responder.async_stop()
            self._problems[binding] = (
                f"TVs cannot discover the server on {binding.interface} ({e.strerror}); "
                "it still answers at its address."
            )
            log.error("DLNA SSDP: %s", self._problems[binding])
            return
        self._ssdp[binding] = (responder, announcer)

    async def _close(self, binding: Binding) -> None:
        pair = self._ssdp.pop(binding, None)
        if pair is not None:
            responder, announcer = pair
            with contextlib.suppress(Exception):
                await announcer.async_stop()  # ssdp:byebye
            await responder.async_stop()
        site = self._sites.pop(binding, None)
        if site is not None:
            await site.stop()
        self._problems.pop(binding, None)

    # ---- the library -----------------------------------------------------------------------

    async def _follow_library(self) -> None:
        with self.bus.subscribe(LibraryUpdated) as sub:
            while True:
                await sub.get()
                await self.bump_update_id()

    async def bump_update_id(self) -> None:
        self.update_id = (self.update_id + 1) % 2**32
        if self.cds is not None:
            self.cds.set_update_id(self.update_id)
        self.metrics.system_update_id.inc()
        self._state["update_id"] = self.update_id
        await asyncio.to_thread(_write_state, self.state_path, dict(self._state))

    # ---- status ----------------------------------------------------------------------------

    def description_urls(self) -> list[str]:
        return [f"http://{b.address}:{self.port}{DESCRIPTION_PATH}" for b in self._sites]

    def status(self) -> tuple[str, str]:
        if not self._started:
            return "starting", "Starting the DLNA server."
        problems = list(self._problems.values())
        if not self._sites:
            if problems:
                return "error", " ".join(problems)
            return "not_configured", (
                "The DLNA server waits for the streaming network: choose its port in the "
                "network settings."
            )
        where = ", ".join(
            f"{b.interface or 'loopback'} ({b.address}"
            + (", discoverable)" if b in self._ssdp else ", not announced)")
            for b in self._sites
        )
        detail = f"Serving on {where}."
        if problems:
            return "degraded", f"{detail} {' '.join(problems)}"
        return "ok", detail

    def health(self) -> dict[str, Any]:
        """For /api/health: where a TV (or a person) finds the device description."""
        return {
            "description_urls": self.description_urls(),
            "udn": self.udn or None,
            "announced_on": [b.interface for b in self._ssdp],
        }

    def snapshot(self) -> dict[str, Any]:
        state, detail = self.status()
        return {
            "state": state,
            "detail": detail,
            "udn": self.udn,
            "friendly_name": self.device.friendly_name if self.device else None,
            "description_urls": self.description_urls(),
            "system_update_id": self.update_id,
            "announced_on": [b.interface for b in self._ssdp],
        }
