"""Running a subprocess in one of SOKOUL's slices.

The torrent engine is a service unit with ``Slice=sokoul-background.slice``; the supervisor's
own children (ffmpeg for a conversion, in the heavy slice; the library's probe helper, in the
background slice) are started through ``systemd-run --scope --slice=…``, which registers a
transient scope in that slice and then execs the command itself (same PID: killing it, its
pipes and its exit status work as for a plain child). On a host not booted with systemd (a
simulated board, the test machine) there is no manager to ask: the command runs as it is,
where the supervisor runs."""

from __future__ import annotations

import logging

from sokoul_appliance.cores.plan import HEAVY
from sokoul_appliance.host import CommandError, Host

log = logging.getLogger("sokoul.cores")


def systemd_booted(host: Host) -> bool:
    """sd_booted(): the host runs systemd as its init (``/run/systemd/system`` exists)."""
    return host.live and host.path("/run/systemd/system").is_dir()


def scope_argv(slice_name: str) -> tuple[str, ...]:
    """The argv prefix that runs a command in a transient scope of ``slice_name``."""
    # --collect: the scope goes away even when the command fails (no failed units piling up)
    return ("systemd-run", "--scope", "--quiet", "--collect", f"--slice={slice_name}", "--")


class SliceCommands:
    """The prefixes the supervisor starts its children with, tried once at start: when
    systemd-run cannot place a command in a slice (no D-Bus, a policy), the children run
    unplaced rather than not at all, and ``problem`` says so (the cores room shows it)."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self.active = systemd_booted(host)
        self.problem: str | None = None

    def prefix(self, slice_name: str) -> tuple[str, ...]:
        return scope_argv(slice_name) if self.active else ()

    async def check(self) -> None:
        """Start ``cat /proc/self/cgroup`` in the heavy slice; fall back on any failure."""
        if not self.active:
            return
        try:
            result = await self._host.run(
                *self.prefix(HEAVY), "cat", "/proc/self/cgroup", timeout=30.0
            )
            wrong = (
                None
                if f"/{HEAVY}/" in result.stdout
                else f"the command ran in {result.stdout.strip()!r}"
            )
        except (CommandError, TimeoutError, OSError) as e:
            wrong = str(e) or type(e).__name__
        if wrong is None:
            return
        self.active = False
        self.problem = (
            "Conversions and library probes could not be started in their slices "
            f"(systemd-run: {wrong}); they run beside the supervisor instead."
        )
        log.warning("%s", self.problem)
