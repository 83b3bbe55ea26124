"""DHCP for the TVs on the streaming network: dnsmasq (from dnsmasq-base) as a child process.

Why dnsmasq rather than systemd-networkd's ``DHCPServer=``: the same program serves the
appliance and the namespace tests (networkd cannot run without systemd here), it only ever
listens on the streaming port, it can add DNS for the TVs when NAT is on, and its lease file
tells the panel which TVs are connected. DNS is off (``--port=0``) unless NAT is enabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from sokoul_appliance.host import stop_process
from sokoul_appliance.network.roles import NetworkConfig

log = logging.getLogger("sokoul.network")

LEASE_TIME = "12h"


def dnsmasq_argv(config: NetworkConfig, run_dir: Path, binary: str = "dnsmasq") -> list[str]:
    iface = ipaddress.IPv4Interface(config.streaming_address)
    first, last = config.dhcp_range()
    argv = [
        binary,
        "--conf-file=/dev/null",  # nothing from /etc/dnsmasq.conf: this file is the config
        "--keep-in-foreground",
        "--pid-file=",  # no pid file: the supervisor owns the process by PID
        "--log-facility=-",
        f"--interface={config.streaming.name}",
        "--bind-interfaces",
        "--except-interface=lo",
        f"--dhcp-range={first},{last},{iface.netmask},{LEASE_TIME}",
        f"--dhcp-leasefile={run_dir / 'dnsmasq-streaming.leases'}",
        "--dhcp-authoritative",
    ]
    if config.nat_streaming:
        # the appliance routes and resolves for the TVs
        argv += [
            f"--dhcp-option=option:router,{iface.ip}",
            f"--dhcp-option=option:dns-server,{iface.ip}",
            f"--listen-address={iface.ip}",
        ]
        argv += [f"--server={d}" for d in config.internet_dns]
    else:
        # no route out and no DNS: TVs only talk to the appliance
        argv += ["--port=0", "--dhcp-option=option:router", "--dhcp-option=option:dns-server"]
    return argv


def parse_leases(text: str | None, now: float | None = None) -> list[dict[str, Any]]:
    """dnsmasq lease lines: "<expiry> <mac> <ip> <hostname> <client-id>"."""
    now = time.time() if now is None else now
    out = []
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        expiry = int(parts[0]) if parts[0].isdigit() else 0
        if expiry and expiry < now:
            continue
        out.append(
            {
                "mac": parts[1],
                "address": parts[2],
                "hostname": None if parts[3] == "*" else parts[3],
                "expires": expiry or None,
            }
        )
    return out


class DnsmasqServer:
    def __init__(self, run_dir: Path, binary: str = "dnsmasq") -> None:
        self._run_dir = run_dir
        self._binary = binary
        self._proc: asyncio.subprocess.Process | None = None
        self._argv: list[str] | None = None
        self._log: Path = run_dir / "dnsmasq-streaming.log"

    def argv(self, config: NetworkConfig) -> list[str]:
        return dnsmasq_argv(config, self._run_dir, self._binary)

    async def start(self, config: NetworkConfig) -> None:
        """(Re)start with ``config``; no restart when nothing changed and it still runs."""
        binary = shutil.which(self._binary)
        if binary is None:
            raise RuntimeError(
                "dnsmasq is not installed (package dnsmasq-base): TVs get no address"
            )
        argv = dnsmasq_argv(config, self._run_dir, binary)
        if self.running() and argv == self._argv:
            return
        await self.stop()
        await asyncio.to_thread(self._run_dir.mkdir, parents=True, exist_ok=True)
        out = await asyncio.to_thread(self._log.open, "ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *argv, stdout=out, stderr=asyncio.subprocess.STDOUT
            )
        finally:
            out.close()
        self._argv = argv
        # dnsmasq exits at once on a bad option or a taken port: report that now
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._proc.wait(), 0.3)
        if self._proc.returncode is not None:
            tail = (await asyncio.to_thread(self._log.read_text, errors="replace"))[-300:]
            raise RuntimeError(f"dnsmasq exited {self._proc.returncode}: {tail.strip()}")
        log.info("dnsmasq serving DHCP on %s (pid %d)", config.streaming.name, self._proc.pid)

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        await stop_process(proc)

    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def leases(self) -> list[dict[str, Any]]:
        try:
            return parse_leases((self._run_dir / "dnsmasq-streaming.leases").read_text())
        except FileNotFoundError:
            return []
