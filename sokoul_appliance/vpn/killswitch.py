"""The kill switch: an nftables table in the torrent namespace, the second wall.

The first wall is the namespace itself: its only interfaces are ``lo`` and the WireGuard
interface, so when the tunnel is gone there is no route out at all. This table drops, in both
IPv4 and IPv6 (``inet`` family), everything that would leave by any other interface — should a
route or an interface ever appear there by mistake — and counts it:

- ``dropped_dns``: DNS (UDP/TCP port 53) not leaving through the tunnel;
- ``dropped_out``: any other packet not leaving through the tunnel;
- ``dropped_in``: packets arriving that are neither loopback, replies on the tunnel, nor to the
  forwarded port(s) on the tunnel.

Policy is drop from the first instant (Gluetun's order: the drop policy before any accept). The
forwarded ports live in a named set, so a new NAT-PMP port changes one set, not the ruleset (and
the counters keep counting). Interface names are matched with ``oifname``/``iifname``: they
match by name, also before the interface exists and after it is gone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from sokoul_appliance.vpn.runner import FILE_MARK, Runner

TABLE = "sokoul_killswitch"
COUNTERS = ("dropped_out", "dropped_dns", "dropped_in")
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.=+-]{1,15}$")


class KillSwitchError(RuntimeError):
    pass


def render_ruleset(ifname: str, table: str = TABLE, ports: tuple[int, ...] = ()) -> str:
    """The whole table, replaced atomically by one ``nft -f`` (create, delete, define)."""
    if not _IFNAME_RE.match(ifname):
        raise ValueError(f"not an interface name: {ifname!r}")
    elements = f" elements = {{ {', '.join(str(p) for p in sorted(set(ports)))} }}" if ports else ""
    return f"""table inet {table}
delete table inet {table}
table inet {table} {{
	counter dropped_out {{ }}
	counter dropped_dns {{ }}
	counter dropped_in {{ }}

	set forwarded_ports {{
		type inet_service;{elements}
	}}

	chain output {{
		type filter hook output priority filter; policy drop;
		oifname "lo" accept
		oifname "{ifname}" accept
		udp dport 53 counter name "dropped_dns" drop
		tcp dport 53 counter name "dropped_dns" drop
		counter name "dropped_out" drop
	}}

	chain input {{
		type filter hook input priority filter; policy drop;
		iifname "lo" accept
		iifname "{ifname}" ct state established,related accept
		iifname "{ifname}" tcp dport @forwarded_ports accept
		iifname "{ifname}" udp dport @forwarded_ports accept
		counter name "dropped_in" drop
	}}

	chain forward {{
		type filter hook forward priority filter; policy drop;
		counter name "dropped_out" drop
	}}
}}
"""


def render_ports_update(ports: tuple[int, ...], table: str = TABLE) -> str:
    text = f"flush set inet {table} forwarded_ports\n"
    if ports:
        text += (
            f"add element inet {table} forwarded_ports "
            f"{{ {', '.join(str(p) for p in sorted(set(ports)))} }}\n"
        )
    return text


def parse_counters(nft_json: str) -> dict[str, int]:
    """``nft -j list counters table inet T`` -> {counter name: packets}."""
    try:
        data = json.loads(nft_json)
    except json.JSONDecodeError as e:
        raise KillSwitchError(f"nft gave no JSON: {e}") from e
    out: dict[str, int] = {}
    for item in data.get("nftables", []):
        counter = item.get("counter")
        if isinstance(counter, dict) and isinstance(counter.get("name"), str):
            out[counter["name"]] = int(counter.get("packets", 0))
    return out


@dataclass(frozen=True)
class KillSwitch:
    runner: Runner
    namespace: str
    ifname: str
    table: str = TABLE

    async def apply(self, ports: tuple[int, ...] = ()) -> None:
        await self.runner.run_with_file(
            self.namespace, render_ruleset(self.ifname, self.table, ports), "nft", "-f", FILE_MARK
        )

    async def set_ports(self, ports: tuple[int, ...]) -> None:
        await self.runner.run_with_file(
            self.namespace, render_ports_update(ports, self.table), "nft", "-f", FILE_MARK
        )

    async def counters(self) -> dict[str, int]:
        result = await self.runner.run(
            self.namespace,
            "nft",
            "-j",
            "list",
            "counters",
            "table",
            "inet",
            self.table,
            timeout=10,
        )
        return parse_counters(result.stdout)

    async def present(self) -> bool:
        result = await self.runner.run(self.namespace, "nft", "list", "tables", timeout=10)
        return f"table inet {self.table}" in result.stdout.splitlines()
