"""Live configuration with pyroute2: addresses, default route, link state, byte counters.

pyroute2 0.7.7 (Debian trixie's) is used through its synchronous ``IPRoute`` in a worker
thread, one short-lived netlink socket per call, so the event loop never waits on netlink. It
acts on the network namespace the supervisor runs in.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def IPRoute() -> Any:  # stands for pyroute2's class
    """pyroute2 is imported on first use, in the worker thread: most boots (no network plan
    yet, or a simulated board) never need it, and its import costs seconds under emulation."""
    from pyroute2 import IPRoute as _IPRoute  # type: ignore[import-untyped]

    return _IPRoute()


def _is_netlink_error(e: BaseException) -> bool:
    from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

    return isinstance(e, NetlinkError)


AF_INET = 2
# the supervisor's own routes and addresses carry this protocol number (RTPROT_STATIC)
RTPROT_STATIC = 4


class LiveNetworkError(RuntimeError):
    pass


@dataclass(frozen=True)
class LinkState:
    name: str
    up: bool
    carrier: bool
    addresses: tuple[str, ...]  # IPv4 "a.b.c.d/len"
    rx_bytes: int
    tx_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "up": self.up,
            "carrier": self.carrier,
            "addresses": list(self.addresses),
            "rx_bytes": self.rx_bytes,
            "tx_bytes": self.tx_bytes,
        }


def _index(ipr: Any, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise LiveNetworkError(f"interface {ifname} not found")
    return int(found[0])


def _ipv4(ipr: Any, index: int) -> list[str]:
    return [
        f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
        for a in ipr.get_addr(index=index, family=AF_INET)
    ]


def _read(names: Sequence[str]) -> dict[str, LinkState]:
    out: dict[str, LinkState] = {}
    with IPRoute() as ipr:
        for name in names:
            found = ipr.link_lookup(ifname=name)
            if not found:
                continue
            link = ipr.get_links(found[0])[0]
            stats = link.get_attr("IFLA_STATS64") or {}
            flags = int(link["flags"])
            out[name] = LinkState(
                name=name,
                up=bool(flags & 1),
                carrier=bool(link.get_attr("IFLA_CARRIER")),
                addresses=tuple(_ipv4(ipr, found[0])),
                rx_bytes=int(stats.get("rx_bytes", 0)),
                tx_bytes=int(stats.get("tx_bytes", 0)),
            )
    return out


def _set_addresses(ifname: str, wanted: Sequence[str], gateway: str | None) -> None:
    """Make ``wanted`` the interface's only IPv4 addresses, bring it up, and (when given)
    point the default route at ``gateway``."""
    with IPRoute() as ipr:
        index = _index(ipr, ifname)
        ipr.link("set", index=index, state="up")
        have = set(_ipv4(ipr, index))
        for cidr in have - set(wanted):
            iface = ipaddress.IPv4Interface(cidr)
            ipr.addr("del", index=index, address=str(iface.ip), mask=iface.network.prefixlen)
        for cidr in wanted:
            if cidr in have:
                continue
            iface = ipaddress.IPv4Interface(cidr)
            ipr.addr(
                "add",
                index=index,
                address=str(iface.ip),
                mask=iface.network.prefixlen,
                broadcast=str(iface.network.broadcast_address),
            )
        if gateway:
            ipr.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=index, proto=RTPROT_STATIC)


def _flush(ifname: str) -> None:
    with IPRoute() as ipr:
        index = _index(ipr, ifname)
        for cidr in _ipv4(ipr, index):
            iface = ipaddress.IPv4Interface(cidr)
            ipr.addr("del", index=index, address=str(iface.ip), mask=iface.network.prefixlen)


class LiveNetwork:
    """Async front of the pyroute2 calls (each runs in a worker thread with a timeout)."""

    def __init__(self, timeout: float = 10.0) -> None:
        self._timeout = timeout

    async def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn, *args), self._timeout)
        except Exception as e:
            if _is_netlink_error(e):
                raise LiveNetworkError(f"netlink refused the change: {e}") from e
            raise

    async def read(self, names: Sequence[str]) -> dict[str, LinkState]:
        result: dict[str, LinkState] = await self._call(_read, list(names))
        return result

    async def set_addresses(
        self, ifname: str, addresses: Sequence[str], gateway: str | None = None
    ) -> None:
        await self._call(_set_addresses, ifname, list(addresses), gateway)

    async def flush(self, ifname: str) -> None:
        await self._call(_flush, ifname)
