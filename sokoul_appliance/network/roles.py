"""Port roles and the network configuration they imply, built from settings and discovery.

The wizard saves ``network.plan`` = {internet_port, streaming_port, streaming_subnet} with port
*names*; a port is then pinned by its MAC (and PCI path, shown to the owner) so a renamed
interface keeps its role. Everything here is pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

INTERNET = "internet"
STREAMING = "streaming"
ROLES = (INTERNET, STREAMING)

# settings keys this room reads (and writes on a confirmed change)
NETWORK_KEYS = (
    "network.plan",
    "network.internet_mode",
    "network.internet_address",
    "network.internet_gateway",
    "network.internet_dns",
    "network.nat_streaming",
    "dlna.serve_lan",
)


DEFAULT_STREAMING_SUBNET = "10.0.1.1/24"


def check_plan(plan: Any, port_names: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The port roles a person chose (wizard or panel): (clean plan, errors by field)."""
    if not isinstance(plan, Mapping):
        return {}, {"network.plan": "the port roles must be an object"}
    errors: dict[str, str] = {}
    for key in ("internet_port", "streaming_port"):
        if plan.get(key) not in port_names:
            errors[key] = f"pick one of the ports: {', '.join(port_names) or 'none found'}"
    if not errors and plan["internet_port"] == plan["streaming_port"]:
        errors["streaming_port"] = "the streaming port must be the other port"
    subnet = plan.get("streaming_subnet") or DEFAULT_STREAMING_SUBNET
    iface = ipaddress.IPv4Interface(DEFAULT_STREAMING_SUBNET)
    try:
        iface = ipaddress.IPv4Interface(subnet)
        if (
            not iface.network.is_private
            or not 16 <= iface.network.prefixlen <= 29
            or iface.ip in (iface.network.network_address, iface.network.broadcast_address)
        ):
            raise ValueError
    except ValueError:
        errors["streaming_subnet"] = (
            "the appliance's address on the streaming network with its prefix, a private "
            "IPv4 range from /16 to /29, e.g. 10.0.1.1/24"
        )
    clean = {
        "internet_port": str(plan.get("internet_port")),
        "streaming_port": str(plan.get("streaming_port")),
        "streaming_subnet": str(iface),
    }
    return clean, errors


class NetworkConfigError(ValueError):
    """The settings do not make a usable network configuration (message for the owner)."""


@dataclass(frozen=True)
class Port:
    role: str  # "internet" | "streaming"
    name: str  # kernel interface name now, e.g. "enP2p1s0"
    mac: str | None
    pci_path: str | None

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "name": self.name, "mac": self.mac, "pci_path": self.pci_path}


@dataclass(frozen=True)
class Services:
    """TCP/UDP ports the firewall opens (the supervisor's listeners)."""

    panel: tuple[int, ...] = (80,)
    ssh: int = 22
    dlna_http: int = 8200
    streaming: tuple[int, ...] = ()  # extra HTTP streaming ports, streaming network only

    def to_json(self) -> dict[str, Any]:
        return {
            "panel": list(self.panel),
            "ssh": self.ssh,
            "dlna_http": self.dlna_http,
            "streaming": list(self.streaming),
        }


@dataclass(frozen=True)
class NetworkConfig:
    internet: Port
    streaming: Port
    internet_mode: str  # "dhcp" | "static"
    internet_address: str | None  # "192.168.1.20/24" when static
    internet_gateway: str | None
    internet_dns: tuple[str, ...]
    streaming_address: str  # the appliance on the streaming network, "10.0.1.1/24"
    nat_streaming: bool
    dlna_serve_lan: bool
    services: Services = field(default_factory=Services)

    @property
    def streaming_network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Interface(self.streaming_address).network

    def dhcp_range(self) -> tuple[str, str]:
        """The pool handed to TVs: the upper part of the streaming subnet, leaving the low
        addresses (the appliance is usually .1) for static use."""
        iface = ipaddress.IPv4Interface(self.streaming_address)
        hosts = list(iface.network.hosts())
        pool = [h for h in hosts[len(hosts) // 2 :] if h != iface.ip] or [
            h for h in hosts if h != iface.ip
        ]
        return str(pool[0]), str(pool[-1])

    def to_json(self) -> dict[str, Any]:
        first, last = self.dhcp_range()
        return {
            "ports": [self.internet.to_json(), self.streaming.to_json()],
            "internet": {
                "mode": self.internet_mode,
                "address": self.internet_address,
                "gateway": self.internet_gateway,
                "dns": list(self.internet_dns),
            },
            "streaming": {
                "address": self.streaming_address,
                "network": str(self.streaming_network),
                "dhcp_range": [first, last],
            },
            "nat_streaming": self.nat_streaming,
            "dlna_serve_lan": self.dlna_serve_lan,
            "services": self.services.to_json(),
        }


def _find_port(role: str, name: Any, nics: Sequence[Mapping[str, Any]]) -> Port:
    if not isinstance(name, str) or not name:
        raise NetworkConfigError(f"no {role} port chosen: pick one in the network settings")
    for nic in nics:
        if nic.get("name") == name:
            return Port(role, name, nic.get("mac"), nic.get("pci_path"))
    raise NetworkConfigError(
        f"the {role} port {name} is not on this board any more: pick one of "
        f"{', '.join(str(n.get('name')) for n in nics) or 'no ports found'}"
    )


def config_from_settings(
    get: Callable[[str], Any],
    nics: Sequence[Mapping[str, Any]],
    services: Services | None = None,
) -> NetworkConfig:
    """Build and cross-check the configuration; raise NetworkConfigError with every problem
    a person can fix. ``get`` reads a settings key; ``nics`` are discovery's ports."""
    plan = get("network.plan")
    if not isinstance(plan, Mapping):
        raise NetworkConfigError(
            "the port roles are not chosen yet: choose which port faces the internet and which "
            "the TVs"
        )
    internet = _find_port(INTERNET, plan.get("internet_port"), nics)
    streaming = _find_port(STREAMING, plan.get("streaming_port"), nics)
    if internet.name == streaming.name:
        raise NetworkConfigError("the internet and streaming ports must be two different ports")
    try:
        subnet = ipaddress.IPv4Interface(plan.get("streaming_subnet") or "10.0.1.1/24")
    except ValueError:
        raise NetworkConfigError(
            "the streaming subnet must be an address with prefix, e.g. 10.0.1.1/24"
        ) from None
    mode = get("network.internet_mode")
    address = get("network.internet_address")
    gateway = get("network.internet_gateway")
    problems = []
    if mode == "static":
        if not address:
            problems.append("a static internet port needs an address, e.g. 192.168.1.20/24")
        else:
            net = ipaddress.IPv4Interface(address).network
            if net.overlaps(subnet.network):
                problems.append(
                    f"the internet address {address} overlaps the streaming network "
                    f"{subnet.network}: pick another subnet for one of them"
                )
            if gateway and ipaddress.IPv4Address(gateway) not in net:
                problems.append(f"the gateway {gateway} is not inside {net}")
    if problems:
        raise NetworkConfigError("; ".join(problems))
    return NetworkConfig(
        internet=internet,
        streaming=streaming,
        internet_mode=str(mode),
        internet_address=address if mode == "static" else None,
        internet_gateway=gateway if mode == "static" else None,
        internet_dns=tuple(get("network.internet_dns") or ()),
        streaming_address=str(subnet),
        nat_streaming=bool(get("network.nat_streaming")),
        dlna_serve_lan=bool(get("dlna.serve_lan")),
        services=services or Services(),
    )


def with_services(config: NetworkConfig, services: Services) -> NetworkConfig:
    return replace(config, services=services)
