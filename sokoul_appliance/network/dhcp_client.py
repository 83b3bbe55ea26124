"""The internet port's DHCP client, an injectable piece.

- On the appliance, systemd-networkd is the DHCP client (the netplan file says ``dhcp4: true``):
  ``NetworkdDhcp`` only asks networkd to reconfigure the port and reads the address it got.
- Where no networkd runs (tests in network namespaces, a bare rootfs), ``UdhcpcDhcp`` runs
  busybox ``udhcpc`` in the foreground as a child of the supervisor, with an event script that
  sets the address and default route with ``ip`` and never touches /etc/resolv.conf.

Both answer ``lease()`` with what the port holds now (``address`` "a.b.c.d/len", ``router``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Protocol

from sokoul_appliance.host import Host, stop_process

log = logging.getLogger("sokoul.network")

UDHCPC_SCRIPT = """#!/bin/sh
# udhcpc event script written by the SOKOUL supervisor: address and default route only
# (DNS is systemd-resolved's job on the appliance; tests must not touch /etc/resolv.conf).
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set dev "$interface" up
    rm -f "$SOKOUL_LEASE_FILE"
    ;;
  bound|renew)
    cidr="$ip/${mask:-24}"
    if ! ip -4 -o addr show dev "$interface" | grep -q " inet $cidr "; then
      ip -4 addr flush dev "$interface"
      ip addr add "$cidr" broadcast + dev "$interface"
    fi
    if [ -n "$router" ]; then
      set -- $router
      ip route replace default via "$1" dev "$interface" proto dhcp
    fi
    printf 'address=%s\\nrouter=%s\\ndns=%s\\nlease=%s\\n' "$cidr" "$router" "$dns" "$lease" \\
      > "$SOKOUL_LEASE_FILE.tmp" && mv "$SOKOUL_LEASE_FILE.tmp" "$SOKOUL_LEASE_FILE"
    ;;
esac
exit 0
"""


class DhcpClient(Protocol):
    name: str

    async def start(self, ifname: str) -> None: ...

    async def stop(self) -> None: ...

    def running(self) -> bool: ...

    def lease(self) -> dict[str, Any] | None: ...


def parse_lease(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    out: dict[str, Any] = {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key in ("address", "router", "dns", "lease"):
            out[key] = value.strip() or None
    return out if out.get("address") else None


class UdhcpcDhcp:
    """busybox udhcpc as a child process (stopped by its PID)."""

    name = "udhcpc"

    def __init__(self, run_dir: Path, binary: str = "udhcpc", retry_seconds: int = 2) -> None:
        self._run_dir = run_dir
        self._binary = binary
        self._retry = retry_seconds
        self._proc: asyncio.subprocess.Process | None = None
        self._ifname: str | None = None

    @property
    def lease_file(self) -> Path:
        return self._run_dir / f"udhcpc-{self._ifname or 'none'}.lease"

    async def start(self, ifname: str) -> None:
        if self.running() and self._ifname == ifname:
            return
        await self.stop()
        binary = shutil.which(self._binary)
        if binary is None:
            raise RuntimeError(
                f"{self._binary} is not installed: cannot ask for an address by DHCP on {ifname}"
            )
        self._ifname = ifname
        script = self._run_dir / "udhcpc.script"

        def prepare() -> None:
            self._run_dir.mkdir(parents=True, exist_ok=True)
            script.write_text(UDHCPC_SCRIPT)
            script.chmod(0o700)

        await asyncio.to_thread(prepare)
        self._proc = await asyncio.create_subprocess_exec(
            binary,
            "-f",  # foreground: a child we own and stop by PID
            "-i", ifname,
            "-s", str(script),
            "-B",  # ask for broadcast replies
            "-t", "3", "-T", "1", "-A", str(self._retry),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "SOKOUL_LEASE_FILE": str(self.lease_file)},
        )  # fmt: skip
        log.info("udhcpc started on %s (pid %d)", ifname, self._proc.pid)

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        await stop_process(proc)
        await asyncio.to_thread(self.lease_file.unlink, missing_ok=True)

    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def lease(self) -> dict[str, Any] | None:
        try:
            return parse_lease(self.lease_file.read_text())
        except FileNotFoundError:
            return None


class NetworkdDhcp:
    """systemd-networkd is the DHCP client on the appliance (netplan ``dhcp4: true``)."""

    name = "networkd"

    def __init__(self, host: Host) -> None:
        self._host = host
        self._ifname: str | None = None

    async def start(self, ifname: str) -> None:
        self._ifname = ifname
        if self._host.live and shutil.which("networkctl"):
            await self._host.run("networkctl", "reconfigure", ifname, timeout=15)

    async def stop(self) -> None:
        self._ifname = None

    def running(self) -> bool:
        return self._ifname is not None

    def lease(self) -> dict[str, Any] | None:
        return None  # the manager shows the port's live addresses instead
