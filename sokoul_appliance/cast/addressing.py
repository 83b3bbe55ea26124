"""Which of this machine's addresses a device reaches: the local address of the route to it.

A connected UDP socket sends nothing; the kernel only picks the route and the source address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sokoul_appliance.network.roles import NetworkConfig


class Unreachable(Exception):
    """No route from this machine to the device (the message says what to check)."""


def local_address_for(device_ip: str, port: int = 8009) -> str:
    """This machine's address on the interface that routes to ``device_ip`` (no packet sent)."""
    family = socket.AF_INET6 if ":" in device_ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.connect((device_ip, port))
        except OSError as e:
            raise Unreachable(
                f"this appliance has no route to {device_ip} ({e.strerror or e}): check that the "
                "device is on the streaming network"
            ) from None
        return str(s.getsockname()[0])


def panel_port_for(local_ip: str, listen: Iterable[tuple[str | None, int]]) -> int | None:
    """The web server's port that answers on ``local_ip``: a listener on every address or on
    exactly that one (None: the device cannot reach the streams)."""
    for host, port in listen:
        if host in (None, "", "0.0.0.0", "::") or host == local_ip:
            return port
    return None


def media_url(local_ip: str, port: int, path: str) -> str:
    """'http://10.0.1.1:8080/stream/it-…' ([brackets] for IPv6)."""
    host = f"[{local_ip}]" if ipaddress.ip_address(local_ip).version == 6 else local_ip
    return f"http://{host}:{port}{path}"


def ipv4_addresses(ifname: str) -> list[str]:
    """The interface's IPv4 addresses (ifaddr: a getifaddrs() read, no packet)."""
    import ifaddr

    out: list[str] = []
    for adapter in ifaddr.get_adapters():
        if adapter.nice_name == ifname or adapter.name == ifname:
            out += [str(ip.ip) for ip in adapter.ips if isinstance(ip.ip, str)]
    return out


def discovery_addresses(config: NetworkConfig | None) -> list[str]:
    """Where to look for Chromecasts on the appliance: the streaming network, and the LAN
    (the internet port's addresses) when the DLNA setting serves the LAN too."""
    if config is None:
        return []
    out = [str(ipaddress.IPv4Interface(config.streaming_address).ip)]
    if config.dlna_serve_lan:
        out += [a for a in ipv4_addresses(config.internet.name) if a not in out]
    return out


def parse_addresses(value: str | None) -> tuple[str, ...] | None:
    """'10.0.1.1 192.168.1.20' (SOKOUL_CAST_INTERFACES) -> the addresses; None when unset.
    Raises ValueError on anything that is not an IP address."""
    if value is None:
        return None
    return tuple(str(ipaddress.ip_address(a)) for a in value.replace(",", " ").split())
