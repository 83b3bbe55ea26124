"""Where the MediaServer serves: from the network plan (the streaming port's address, plus the
internet port's when ``dlna.serve_lan`` is set), or 127.0.0.1 without SSDP on a simulated
board (dev mode and tests never announce on the machine's real interfaces)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from sokoul_appliance.dlna.manager import Binding
from sokoul_appliance.network.live import LinkState
from sokoul_appliance.network.roles import NetworkConfig

LOOPBACK = Binding("127.0.0.1", None, "loopback")


def _ip(cidr: str | None) -> str | None:
    if not cidr:
        return None
    try:
        return str(ipaddress.IPv4Interface(cidr).ip)
    except ValueError:
        return None


def serving_bindings(
    config: NetworkConfig | None, live: bool, links: Mapping[str, LinkState]
) -> list[Binding]:
    """``links``: the network manager's last sample by role ('internet', 'streaming')."""
    if not live:
        return [LOOPBACK]
    if config is None:
        return []
    out = []
    streaming = _ip(config.streaming_address)
    if streaming:
        out.append(Binding(streaming, config.streaming.name, "streaming"))
    if config.dlna_serve_lan:
        lan_link = links.get("internet")
        lan = _ip(config.internet_address) or (
            _ip(lan_link.addresses[0]) if lan_link and lan_link.addresses else None
        )
        if lan:
            out.append(Binding(lan, config.internet.name, "lan"))
    return out
