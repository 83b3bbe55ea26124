"""NAT-PMP (RFC 6886) client: a forwarded port on the VPN's gateway, over the tunnel.

Requests go from a UDP socket opened *inside* the torrent namespace to the gateway's port 5351,
so they travel through the tunnel like the torrent engine's own traffic. Retransmission follows
the RFC (first wait 250 ms, doubled each time), with fewer tries than its nine by default.

The forwarder maps UDP first, then TCP for the port the gateway gave (providers such as
ProtonVPN give one external port and forward it to the same port on the client; like Gluetun
it asks with internal port 0 unless told a port, and suggests the current port on renewal);
it renews every ``renew_every`` seconds (15 minutes by default), sooner when the gateway
grants a shorter lifetime (at half of it), and publishes ``VpnPortForwarded(port)`` whenever
the port changes — ``port=0`` when the mapping is lost.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sokoul_appliance.vpn.namespace import close_quietly

log = logging.getLogger("sokoul.vpn.natpmp")

PORT = 5351
VERSION = 0
OP_EXTERNAL_ADDRESS = 0
OP_MAP_UDP = 1
OP_MAP_TCP = 2
RESULT_TEXT = {
    0: "success",
    1: "unsupported version",
    2: "not authorized or refused (is port forwarding enabled for this VPN server?)",
    3: "network failure at the gateway",
    4: "out of resources",
    5: "unsupported opcode",
}


class NatPmpError(RuntimeError):
    pass


@dataclass(frozen=True)
class Mapping:
    protocol: str  # "udp" | "tcp"
    internal_port: int
    external_port: int
    lifetime: int
    epoch: int


def encode_external_address_request() -> bytes:
    return struct.pack("!BB", VERSION, OP_EXTERNAL_ADDRESS)


def encode_map_request(
    protocol: str, internal_port: int, external_port: int, lifetime: int
) -> bytes:
    op = {"udp": OP_MAP_UDP, "tcp": OP_MAP_TCP}[protocol]
    if not 0 <= internal_port <= 65535 or not 0 <= external_port <= 65535:
        raise ValueError("ports are 0-65535")
    return struct.pack("!BBHHHI", VERSION, op, 0, internal_port, external_port, lifetime)


def _header(data: bytes, opcode: int) -> int:
    if len(data) < 8:
        raise NatPmpError(f"a {len(data)}-byte answer is too short for NAT-PMP")
    version, op, result, epoch = struct.unpack("!BBHI", data[:8])
    if version != VERSION:
        raise NatPmpError(f"the gateway answered NAT-PMP version {version}")
    if op != 128 + opcode:
        raise NatPmpError(f"answer for opcode {op - 128}, expected {opcode}")
    if result != 0:
        raise NatPmpError(
            f"the gateway refused: {RESULT_TEXT.get(result, f'result code {result}')}"
        )
    return int(epoch)


def decode_external_address(data: bytes) -> tuple[str, int]:
    epoch = _header(data, OP_EXTERNAL_ADDRESS)
    if len(data) < 12:
        raise NatPmpError("the external-address answer is too short")
    return str(ipaddress.IPv4Address(data[8:12])), epoch


def decode_map_response(data: bytes, protocol: str) -> Mapping:
    op = {"udp": OP_MAP_UDP, "tcp": OP_MAP_TCP}[protocol]
    epoch = _header(data, op)
    if len(data) < 16:
        raise NatPmpError("the mapping answer is too short")
    internal, external, lifetime = struct.unpack("!HHI", data[8:16])
    return Mapping(protocol, internal, external, lifetime, epoch)


SocketFactory = Callable[[], Awaitable[socket.socket]]


class NatPmpClient:
    def __init__(
        self,
        open_socket: SocketFactory,
        gateway: str,
        first_wait: float = 0.25,
        tries: int = 6,
        port: int = PORT,
    ) -> None:
        self._open_socket = open_socket
        self.gateway = gateway
        self.port = port
        self.first_wait = first_wait
        self.tries = tries

    async def _ask(self, request: bytes, decode: Callable[[bytes], object]) -> object:
        loop = asyncio.get_running_loop()
        sock = await self._open_socket()
        try:
            await loop.sock_connect(sock, (self.gateway, self.port))
            wait = self.first_wait
            last: Exception | None = None
            for _ in range(self.tries):
                await loop.sock_sendall(sock, request)
                deadline = loop.time() + wait
                while (left := deadline - loop.time()) > 0:
                    try:
                        async with asyncio.timeout(left):
                            data = await loop.sock_recv(sock, 64)
                    except TimeoutError:
                        break
                    except OSError as e:  # e.g. ICMP unreachable, or no route (tunnel down)
                        last = e
                        await asyncio.sleep(min(left, 0.05))
                        continue
                    try:
                        return decode(data)
                    except NatPmpError as e:
                        if "refused" in str(e) or "version" in str(e):
                            raise
                        last = e  # a stray or mismatched datagram: keep listening
                wait *= 2
            why = f" ({last})" if last else ""
            raise NatPmpError(
                f"no NAT-PMP answer from {self.gateway}:{self.port}{why}; "
                "this VPN server may not offer port forwarding"
            )
        finally:
            close_quietly(sock)

    async def external_address(self) -> str:
        result = await self._ask(encode_external_address_request(), decode_external_address)
        assert isinstance(result, tuple)
        return str(result[0])

    async def map_port(
        self, protocol: str, internal_port: int, external_port: int, lifetime: int
    ) -> Mapping:
        request = encode_map_request(protocol, internal_port, external_port, lifetime)
        result = await self._ask(request, lambda d: decode_map_response(d, protocol))
        assert isinstance(result, Mapping)
        return result


class PortForwarder:
    """Keeps one TCP+UDP mapping alive and reports the port through ``on_port``."""

    def __init__(
        self,
        client: NatPmpClient,
        on_port: Callable[[int], Awaitable[None]],
        renew_every: float = 900.0,
        lifetime: int = 3600,
        retry_after: float = 30.0,
        internal_port: int = 0,
    ) -> None:
        self.client = client
        # 0, as Gluetun asks ProtonVPN: the gateway forwards its external port to the same port
        # on the tunnel address (RFC gateways want the port the engine listens on instead)
        self.internal_port = internal_port
        self._on_port = on_port
        self.renew_every = renew_every
        self.lifetime = lifetime
        self.retry_after = retry_after
        self.port: int | None = None
        self.tcp_port: int | None = None
        self.external_ip: str | None = None
        self.renewals = 0
        self.last_renewed: float | None = None  # unix time
        self.granted_lifetime: int | None = None
        self.error: str | None = None

    async def refresh(self) -> float:
        """Map (or renew) once; return the seconds until the next renewal."""
        wanted = self.port or 0
        internal = self.internal_port
        udp = await self.client.map_port("udp", internal, wanted, self.lifetime)
        tcp = await self.client.map_port("tcp", internal, udp.external_port, self.lifetime)
        try:
            self.external_ip = await self.client.external_address()
        except NatPmpError as e:
            log.info("no external address from the gateway: %s", e)
        if tcp.external_port != udp.external_port:
            log.warning(
                "the gateway forwards UDP %d but TCP %d; the torrent engine gets the UDP port",
                udp.external_port,
                tcp.external_port,
            )
        renewed = self.port is not None
        changed = udp.external_port != self.port
        self.port, self.tcp_port = udp.external_port, tcp.external_port
        self.granted_lifetime = min(udp.lifetime, tcp.lifetime)
        self.last_renewed = time.time()
        self.error = None
        if renewed:
            self.renewals += 1
        if changed:
            log.info("forwarded port %d (lifetime %d s)", self.port, self.granted_lifetime)
            await self._on_port(self.port)
        return max(1.0, min(self.renew_every, self.granted_lifetime / 2))

    async def run(self) -> None:
        try:
            while True:
                try:
                    delay = await self.refresh()
                except (NatPmpError, OSError) as e:
                    self.error = str(e)
                    log.warning("port forwarding: %s", e)
                    delay = self.retry_after
                await asyncio.sleep(delay)
        finally:
            if self.port:
                self.port = None
                await self._on_port(0)
