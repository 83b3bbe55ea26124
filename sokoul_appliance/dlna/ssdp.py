"""SSDP on one interface only: async-upnp-client's search responder and announcer, with their
sockets tied to the interface (SO_BINDTODEVICE) and the listening socket bound to the SSDP
group address, not 0.0.0.0 — an M-SEARCH from any other interface never reaches us, and
nothing we send leaves by another interface.

The library's own start-up binds its listener to ("", 1900) on every interface; these
subclasses replace only the socket set-up (async_start) and keep its packet handling.
"""

from __future__ import annotations

import asyncio
import socket

from async_upnp_client.client import UpnpDevice, UpnpService
from async_upnp_client.server import (
    SsdpAdvertisementAnnouncer,
    SsdpSearchResponder,
    UpnpServerDevice,
)
from async_upnp_client.ssdp import SSDP_IP_V4, SSDP_PORT, SsdpProtocol, get_ssdp_socket
from async_upnp_client.utils import CaseInsensitiveDict

IP_MULTICAST_ALL = 49  # linux/in.h: deliver only the groups this socket joined


def interface_socket(interface: str, address: str) -> socket.socket:
    """A UDP socket set up by async-upnp-client for (address -> SSDP group), then tied to
    ``interface``: multicast leaves and arrives only there."""
    sock, _, _ = get_ssdp_socket((address, 0), (SSDP_IP_V4, SSDP_PORT))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    except OSError:
        sock.close()
        raise
    return sock


class InterfaceSearchResponder(SsdpSearchResponder):
    """Answers M-SEARCH arriving on one interface, from that interface's address."""

    def __init__(self, device: UpnpServerDevice, interface: str, address: str) -> None:
        super().__init__(device, source=(address, 0), target=(SSDP_IP_V4, SSDP_PORT))
        self.interface = interface
        self.address = address
        self._search_target = ""

    # async-upnp-client 0.44 answers with the lowercased search target
    # ('urn:…:device:mediaserver:1'); GUPnP (gssdp-discover) and TVs compare ST exactly and
    # drop such answers. Keep the client's own spelling.
    def _build_responses(self, headers: CaseInsensitiveDict) -> list[bytes]:
        self._search_target = str(headers.get_lower("st", ""))
        return super()._build_responses(headers)

    def _build_responses_device_type(
        self, device: UpnpDevice, device_type: str | None = None
    ) -> bytes:
        st = self._search_target if device_type is not None else None
        return super()._build_responses_device_type(device, st)

    def _build_responses_service(
        self, service: UpnpService, service_type: str | None = None
    ) -> bytes:
        st = self._search_target if service_type is not None else None
        return super()._build_responses_service(service, st)

    async def async_start(self) -> None:
        loop = asyncio.get_running_loop()
        response = interface_socket(self.interface, self.address)
        response.bind((self.address, 0))
        await loop.create_datagram_endpoint(
            lambda: SsdpProtocol(loop, on_connect=self._on_connect_response), sock=response
        )
        listen = interface_socket(self.interface, self.address)
        listen.bind((SSDP_IP_V4, SSDP_PORT))
        await loop.create_datagram_endpoint(
            lambda: SsdpProtocol(loop, on_connect=self._on_connect, on_data=self._on_data),
            sock=listen,
        )

    async def async_stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
        if self._response_transport is not None:
            self._response_transport.close()


class InterfaceAnnouncer(SsdpAdvertisementAnnouncer):
    """NOTIFY ssdp:alive on one interface: the whole set at start (then the library's slow
    cycle of one advertisement per interval), ssdp:byebye at stop."""

    def __init__(self, device: UpnpServerDevice, interface: str, address: str) -> None:
        super().__init__(device, source=(address, 0), target=(SSDP_IP_V4, SSDP_PORT))
        self.interface = interface
        self.address = address
        self.burst = 1 + 2 * len(device.all_devices) + len(device.all_services)

    async def async_start(self) -> None:
        loop = asyncio.get_running_loop()
        sock = interface_socket(self.interface, self.address)
        sock.bind((self.address, 0))
        await loop.create_datagram_endpoint(
            lambda: SsdpProtocol(loop, on_connect=self._on_connect), sock=sock
        )
        await self.async_wait_for_transport_protocol()
        for _ in range(self.burst - 1):
            self._announce_next()
            if self._cancel_announce is not None:
                self._cancel_announce.cancel()
        self._announce_next()
