"""Hostname and timezone, applied through systemd's hostnamed/timedated (hostnamectl,
timedatectl) on the appliance. Against a simulated board (dev mode, tests) nothing on the
machine is changed: the choice is stored and reported as such."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sokoul_appliance.host import CommandError, Host

log = logging.getLogger("sokoul.system")


@dataclass(frozen=True)
class Outcome:
    status: str  # "applied" | "stored" | "failed"
    detail: str


class SystemIdentity:
    name = "system"
    title = "System"

    def __init__(self, host: Host) -> None:
        self._host = host

    def current_hostname(self) -> str | None:
        text = self._host.read_text("/etc/hostname")
        if not text:
            return None
        return text.strip() or None

    async def apply(self, hostname: str, timezone: str) -> Outcome:
        if not self._host.live:
            return Outcome(
                "stored",
                f"Saved hostname {hostname} and timezone {timezone}. This supervisor runs "
                "against a simulated board (read-only), so this machine was not changed.",
            )
        try:
            await self._host.run("hostnamectl", "set-hostname", hostname, timeout=20)
            await self._host.run("timedatectl", "set-timezone", timezone, timeout=20)
        except (CommandError, OSError, TimeoutError) as e:
            log.error("applying hostname/timezone failed: %s", e)
            return Outcome("failed", f"Could not set hostname/timezone: {e}")
        return Outcome("applied", f"Hostname is now {hostname}, timezone {timezone}.")
