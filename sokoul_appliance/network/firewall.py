"""One nftables ruleset (table ``inet sokoul``), rendered from the configuration and applied
atomically with ``nft -f``: the file first creates-then-deletes the table and defines it again,
all in one transaction, so the kernel holds either the old ruleset or the new one.

Named counters count what is dropped per chain (``sokoul_firewall_dropped_packets_total``).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sokoul_appliance.host import Host
from sokoul_appliance.network.netplan import write_atomically
from sokoul_appliance.network.roles import NetworkConfig

TABLE = "sokoul"
# counter name -> the chain label the metric shows
DROP_COUNTERS = {
    "drop_input_internet": "input_internet",
    "drop_input_streaming": "input_streaming",
    "drop_input_other": "input_other",
    "drop_forward": "forward",
}
PRIVATE_V4 = "{ 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16 }"
PRIVATE_V6 = "{ fe80::/10, fc00::/7 }"
SSDP_PORT = 1900


@dataclass(frozen=True)
class Rule:
    """One row of the rules table (docs and panel): what is accepted, from where."""

    service: str
    ports: str
    internet: bool
    streaming: bool
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "ports": self.ports,
            "internet": self.internet,
            "streaming": self.streaming,
            "note": self.note,
        }


def _set(ports: tuple[int, ...] | list[int]) -> str:
    return "{ " + ", ".join(str(p) for p in sorted(set(ports))) + " }"


def rules_table(config: NetworkConfig) -> list[Rule]:
    s = config.services
    lan = config.dlna_serve_lan
    rows = [
        Rule("panel", "tcp " + ",".join(map(str, s.panel)), True, True),
        Rule("ssh", f"tcp {s.ssh}", True, False, "private source addresses only"),
        Rule("DHCP server", "udp 67", False, True),
        Rule("SSDP (DLNA discovery)", f"udp {SSDP_PORT}", lan, True),
        Rule("DLNA HTTP", f"tcp {s.dlna_http}", lan, True),
    ]
    if s.streaming:
        rows.append(Rule("streaming", "tcp " + ",".join(map(str, s.streaming)), lan, True))
    if config.nat_streaming:
        rows.append(Rule("DNS for TVs", "udp/tcp 53", False, True, "only with NAT"))
    rows.append(
        Rule(
            "forwarding",
            "all",
            False,
            config.nat_streaming,
            "streaming -> internet with NAT" if config.nat_streaming else "none",
        )
    )
    return rows


def render_ruleset(config: NetworkConfig) -> str:
    wan = config.internet.name
    tv = config.streaming.name
    s = config.services
    media = [s.dlna_http, *s.streaming]
    media_ifaces = f'{{ "{tv}", "{wan}" }}' if config.dlna_serve_lan else f'"{tv}"'
    lines = [
        f"table inet {TABLE} {{}}",
        f"delete table inet {TABLE}",
        f"table inet {TABLE} {{",
        *(f"  counter {name} {{}}" for name in DROP_COUNTERS),
        "  chain input {",
        "    type filter hook input priority filter; policy drop;",
        "    ct state established,related accept",
        "    ct state invalid drop",
        '    iifname "lo" accept',
        "    meta l4proto { icmp, ipv6-icmp } limit rate 50/second accept",
        f'    iifname "{wan}" udp sport 67 udp dport 68 accept',
        f'    iifname "{wan}" udp sport 547 udp dport 546 accept',
        f'    iifname {{ "{wan}", "{tv}" }} tcp dport {_set(s.panel)} accept',
        f'    iifname "{wan}" ip saddr {PRIVATE_V4} tcp dport {s.ssh} accept',
        f'    iifname "{wan}" ip6 saddr {PRIVATE_V6} tcp dport {s.ssh} accept',
        f'    iifname "{tv}" udp dport 67 accept',
        f"    iifname {media_ifaces} udp dport {SSDP_PORT} accept",
        f"    iifname {media_ifaces} tcp dport {_set(media)} accept",
    ]
    if config.nat_streaming:
        lines.append(f'    iifname "{tv}" meta l4proto {{ tcp, udp }} th dport 53 accept')
    lines += [
        f'    iifname "{wan}" counter name drop_input_internet drop',
        f'    iifname "{tv}" counter name drop_input_streaming drop',
        "    counter name drop_input_other drop",
        "  }",
        "  chain forward {",
        "    type filter hook forward priority filter; policy drop;",
        "    ct state established,related accept",
    ]
    if config.nat_streaming:
        lines.append(f'    iifname "{tv}" oifname "{wan}" accept')
    lines += [
        "    counter name drop_forward drop",
        "  }",
    ]
    if config.nat_streaming:
        net = config.streaming_network
        lines += [
            "  chain postrouting {",
            "    type nat hook postrouting priority srcnat; policy accept;",
            f'    oifname "{wan}" ip saddr {net} masquerade',
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def parse_counters(nft_json: str) -> dict[str, int]:
    """``nft -j list counters table inet sokoul`` -> {chain label: packets}."""
    out: dict[str, int] = {}
    for item in json.loads(nft_json or "{}").get("nftables", []):
        counter = item.get("counter")
        if counter and counter.get("name") in DROP_COUNTERS:
            out[DROP_COUNTERS[counter["name"]]] = int(counter.get("packets", 0))
    return out


class Firewall:
    def __init__(self, host: Host, run_dir: Path, binary: str = "nft") -> None:
        self._host = host
        self._run_dir = run_dir
        self._nft = binary
        # counters restart at 0 when the table is replaced: keep the total seen before
        self._base: dict[str, int] = dict.fromkeys(DROP_COUNTERS.values(), 0)
        self._last: dict[str, int] = dict.fromkeys(DROP_COUNTERS.values(), 0)
        self.applied: str | None = None

    async def _write(self, name: str, text: str) -> Path:
        path = self._run_dir / name
        await asyncio.to_thread(write_atomically, path, text)
        return path

    async def check(self, ruleset: str) -> None:
        """Dry run (``nft -c``): raises CommandError when the kernel would refuse it."""
        path = await self._write("sokoul-check.nft", ruleset)
        await self._host.run(self._nft, "-c", "-f", str(path), timeout=15)

    async def apply(self, ruleset: str) -> None:
        await self.read_counters()
        for label, value in self._last.items():
            self._base[label] += value
        self._last = dict.fromkeys(DROP_COUNTERS.values(), 0)
        path = await self._write("sokoul.nft", ruleset)
        await self._host.run(self._nft, "-f", str(path), timeout=15)
        self.applied = ruleset

    async def remove(self) -> None:
        if self.applied is None:
            return
        path = await self._write(
            "sokoul-remove.nft", f"table inet {TABLE} {{}}\ndelete table inet {TABLE}\n"
        )
        await self._host.run(self._nft, "-f", str(path), timeout=15)
        self.applied = None

    async def read_counters(self) -> dict[str, int]:
        """Dropped packets per chain since the supervisor started (survives re-applies)."""
        if self.applied is not None:
            result = await self._host.run(
                self._nft, "-j", "list", "counters", "table", "inet", TABLE, timeout=10
            )
            self._last.update(parse_counters(result.stdout))
        return {k: self._base[k] + self._last[k] for k in self._base}
