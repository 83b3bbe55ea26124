"""The torrent engine as its own systemd unit on the appliance (``sokoul-torrent.service``).

The image ships the unit (``systemd/sokoul-torrent.service``: background slice, hardening, stop
timeout for the resume data); it is not enabled. At each engine start the supervisor writes a
runtime drop-in with the engine's command line (downloads folder, listen address and port can
change between starts) and, when a VPN is configured, ``NetworkNamespacePath=`` the torrent
namespace plus its resolv.conf — then reloads systemd and restarts the unit. The Unix socket is
a file, so the supervisor reaches the engine from its own namespace either way.

On a simulated board (and in tests) none of this runs: the engine is the supervisor's child.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from sokoul_appliance.host import Host
from sokoul_appliance.storage.mounts import write_atomic

UNIT = "sokoul-torrent.service"
# /run: regenerated at every engine start, gone at reboot (nothing stale survives a boot)
DROPIN = f"/run/systemd/system/{UNIT}.d/50-sokoul-engine.conf"
_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


class EngineUnits(Protocol):
    """What the torrent room needs from systemd (the systemd room's client implements it)."""

    async def reload(self) -> None: ...

    async def restart_unit(self, name: str) -> object: ...

    async def stop_unit(self, name: str) -> object: ...


def quote_arg(arg: str) -> str:
    """One ExecStart= argument as systemd reads it: '%' and '$' escaped (specifiers and
    variables), anything but plain characters double-quoted with C-style escapes."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if _PLAIN.match(arg):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def dropin_text(argv: Sequence[str], netns: str | None) -> str:
    """The drop-in: the engine's command line, and its network namespace when a VPN is set."""
    lines = [
        "# Written by the SOKOUL supervisor (torrent room) at each engine start; not to edit.",
        "[Service]",
        "ExecStart=",
        "ExecStart=" + " ".join(quote_arg(a) for a in argv),
    ]
    if netns:
        if not re.match(r"^[A-Za-z0-9_.-]{1,64}$", netns):
            raise ValueError(f"not a network namespace name: {netns!r}")
        lines += [
            # fails closed: the only way out of that namespace is the tunnel (docs/vpn.md)
            f"NetworkNamespacePath=/run/netns/{netns}",
            f"BindReadOnlyPaths=/etc/netns/{netns}/resolv.conf:/etc/resolv.conf",
        ]
    return "\n".join(lines) + "\n"


def write_dropin(host: Host, text: str) -> None:
    """Atomically (temp file, fsync, rename): systemd reads the old drop-in or the new one."""
    write_atomic(host.path(DROPIN), text)
