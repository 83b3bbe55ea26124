"""VPN health: handshake age and transfer from ``wg show <if> dump``, and the exit-IP check.

``dump`` carries, per peer, the same ``latest-handshakes`` figure (unix seconds, 0 = never) plus
the endpoint and the transfer counters, in one call. WireGuard re-keys every 2 minutes while
packets flow and the appliance keeps a 25 s keepalive, so a handshake older than
``STALE_AFTER`` (180 s, WireGuard's reject-after time) means the peer is not answering.

The exit-IP check is opt-in: an HTTP(S) "what is my IP" URL the owner configures (none by
default: the appliance calls no third party on its own). It is fetched twice — once through the
tunnel from a socket inside the torrent namespace (the exit IP) and once from the appliance's
own namespace (the internet port's public IP) — and the two must differ. The URL's host name is
resolved by the appliance's resolver (the name of a what-is-my-IP service, not torrent traffic).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from sokoul_appliance.vpn.namespace import close_quietly

STALE_AFTER = 180.0
MAX_BODY = 64 * 1024
_CANDIDATE_RE = re.compile(r"[0-9A-Fa-f:.]{3,45}")


class HealthError(RuntimeError):
    pass


@dataclass(frozen=True)
class PeerStatus:
    public_key: str
    endpoint: str | None
    latest_handshake: int  # unix seconds; 0 = never
    rx_bytes: int
    tx_bytes: int


def parse_dump(text: str) -> list[PeerStatus]:
    """Peers from ``wg show <if> dump`` (first line: the interface; then one line a peer)."""
    peers = []
    lines = [line for line in text.splitlines() if line.strip()]
    for n, line in enumerate(lines[1:], 2):
        f = line.split("\t")
        if len(f) < 8:
            raise HealthError(f"wg dump line {n}: expected 8 fields, got {len(f)}")
        try:
            peers.append(
                PeerStatus(
                    public_key=f[0],
                    endpoint=None if f[2] == "(none)" else f[2],
                    latest_handshake=int(f[4]),
                    rx_bytes=int(f[5]),
                    tx_bytes=int(f[6]),
                )
            )
        except ValueError as e:
            raise HealthError(f"wg dump line {n}: {e}") from e
    return peers


def handshake_age(peers: list[PeerStatus], now: float) -> float | None:
    """Seconds since the most recent handshake with any peer; None when there was none."""
    latest = max((p.latest_handshake for p in peers), default=0)
    return max(0.0, now - latest) if latest else None


def ip_in_body(body: str) -> str | None:
    """The first IP address in a what-is-my-IP answer (plain text or JSON)."""
    for candidate in _CANDIDATE_RE.findall(body):
        try:
            return str(ipaddress.ip_address(candidate.strip(".:")))
        except ValueError:
            continue
    return None


def _decode_chunked(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return out


SocketOpener = Callable[[int, int], Awaitable[socket.socket]]


async def plain_socket(family: int, kind: int) -> socket.socket:
    sock = socket.socket(family, kind)
    sock.setblocking(False)
    return sock


async def fetch_ip(url: str, open_socket: SocketOpener, timeout: float = 10.0) -> str:
    """GET ``url`` over a socket from ``open_socket`` and return the IP address it answers."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HealthError(f"the exit-IP URL must be http:// or https://, got {url[:80]!r}")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        infos = await loop.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
        if not infos:
            raise HealthError(f"{parts.hostname} has no address")
        family, _, _, _, addr = infos[0]
        sock = await open_socket(family, socket.SOCK_STREAM)
        try:
            await loop.sock_connect(sock, addr)
        except BaseException:
            close_quietly(sock)
            raise
        reader, writer = await asyncio.open_connection(
            sock=sock,
            ssl=ssl.create_default_context() if tls else None,
            server_hostname=parts.hostname if tls else None,
        )
        try:
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: sokoul-appliance\r\n"
                "Accept: text/plain, application/json\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            data = b""
            while len(data) < MAX_BODY:
                chunk = await reader.read(MAX_BODY)
                if not chunk:
                    break
                data += chunk
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
    fields = status_line.split()
    if len(fields) < 2 or fields[1] != "200":
        raise HealthError(f"{parts.hostname} answered {status_line[:80]!r}")
    if b"transfer-encoding: chunked" in head.lower():
        body = _decode_chunked(body)
    ip = ip_in_body(body.decode(errors="replace"))
    if ip is None:
        raise HealthError(f"{parts.hostname} answered no IP address")
    return ip
