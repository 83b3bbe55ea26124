"""Bring a WireGuard interface up from a validated config, the way wireguard-tools does.

Like wg-quick's ``add_if``: ``ip link add <if> type wireguard`` uses the kernel module when it
is there; when that fails and ``/sys/module/wireguard`` is absent, the userspace
implementation ``wireguard-go <if>`` creates a TUN device instead (kept in the foreground with
``WG_PROCESS_FOREGROUND=1``, owned and stopped by PID by this class). Then ``wg setconf`` with
the config stripped of wg-quick's own fields, and the interface moves into the torrent
namespace, which gives it addresses and routes (namespace.py).

Every step that fails takes the interface away again: a half-made tunnel never stays.
wireguard-go's control sockets (``/var/run/wireguard/<if>.sock``) are shared by every network
namespace, so ``wg`` finds the interface wherever it is; interface names must be unique on the
machine (tests use a random suffix).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from sokoul_appliance.host import CommandError
from sokoul_appliance.vpn.namespace import TorrentNamespace
from sokoul_appliance.vpn.runner import FILE_MARK, Runner, in_namespace
from sokoul_appliance.vpn.wgconf import WireGuardConfig, setconf_text

log = logging.getLogger("sokoul.vpn")

WIREGUARD_GO = "wireguard-go"


class TunnelError(RuntimeError):
    """A step of bringing the tunnel up failed; the message is for a person."""


class Tunnel:
    def __init__(
        self,
        runner: Runner,
        namespace: TorrentNamespace,
        ifname: str = "wg0",
        appliance_ns: str | None = None,
        userspace: str = WIREGUARD_GO,
        prefer_kernel: bool = True,
    ) -> None:
        self.runner = runner
        self.namespace = namespace
        self.ifname = ifname
        self.appliance_ns = appliance_ns  # None: the supervisor's own namespace
        self.userspace = userspace
        self.prefer_kernel = prefer_kernel
        self.implementation: str | None = None  # "kernel" | "wireguard-go" while up
        self.process: asyncio.subprocess.Process | None = None
        self._process_log: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    @property
    def control_socket(self) -> str:
        return f"/var/run/wireguard/{self.ifname}.sock"

    # -- up ---------------------------------------------------------------------------------------
    async def up(self, cfg: WireGuardConfig) -> None:
        """Create, configure and move the interface into the torrent namespace."""
        await self._clear_leftovers()
        try:
            await self._create()
            await self.runner.run_with_file(
                self.appliance_ns, setconf_text(cfg), "wg", "setconf", self.ifname, FILE_MARK
            )
            await self.namespace.adopt(self.ifname, cfg, self.appliance_ns)
        except (CommandError, TimeoutError, OSError) as e:
            await self.down()
            raise TunnelError(f"the tunnel did not come up: {_reason(e)}") from e
        log.info(
            "WireGuard %s up (%s) in namespace %s",
            self.ifname,
            self.implementation,
            self.namespace.name,
        )

    async def _create(self) -> None:
        if self.prefer_kernel:
            try:
                await self.runner.run(
                    self.appliance_ns, "ip", "link", "add", "dev", self.ifname, "type", "wireguard"
                )
                self.implementation = "kernel"
                return
            except CommandError as e:
                if await asyncio.to_thread(os.path.exists, "/sys/module/wireguard"):
                    raise
                log.info("no WireGuard kernel module (%s); using %s", _reason(e), self.userspace)
        await self._start_userspace()

    async def _start_userspace(self) -> None:
        argv = in_namespace(self.appliance_ns, self.userspace, self.ifname)
        env = {**os.environ, "WG_PROCESS_FOREGROUND": "1", "LOG_LEVEL": "error"}
        self.process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self.implementation = "wireguard-go"
        self._process_log = []
        self._reader = asyncio.create_task(self._read_output(self.process))
        # the TUN device and its control socket appear a moment after the start
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not await asyncio.to_thread(os.path.exists, self.control_socket):
            if self.process.returncode is not None:
                raise TunnelError(
                    f"{self.userspace} exited at once ({self.process.returncode}): "
                    + " ".join(self._process_log[-3:])
                )
            if loop.time() > deadline:
                raise TunnelError(f"{self.userspace} made no interface within 10 s")
            await asyncio.sleep(0.05)

    async def _read_output(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self._process_log = [*self._process_log[-19:], line]
            log.info("%s: %s", self.userspace, line)

    # -- state ------------------------------------------------------------------------------------
    def process_alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def exists(self) -> bool:
        try:
            links = await self.namespace.links()
        except CommandError:
            return False
        return self.ifname in links

    async def dump(self) -> str:
        """``wg show <if> dump`` (run inside the torrent namespace: the kernel interface lives
        there; wireguard-go answers on its control socket from anywhere)."""
        result = await self.runner.run(
            self.namespace.name, "wg", "show", self.ifname, "dump", timeout=10
        )
        return result.stdout

    # -- down -------------------------------------------------------------------------------------
    async def down(self) -> None:
        """Delete the interface wherever it is and stop wireguard-go (by its PID)."""
        await self.namespace.remove_link(self.ifname)
        with contextlib.suppress(CommandError):
            await self.runner.run(self.appliance_ns, "ip", "link", "del", self.ifname)
        await self._stop_process()
        self.implementation = None

    async def _stop_process(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(5):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if proc is not None:
            # a wireguard-go that was killed (not stopped) leaves its control socket behind
            await asyncio.to_thread(_remove_socket, self.control_socket)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None

    async def _clear_leftovers(self) -> None:
        """An interface of the same name from an earlier run (e.g. a supervisor restart) goes
        first; deleting the TUN device also ends the wireguard-go that held it."""
        if await self.namespace.remove_link(self.ifname):
            log.info("removed a leftover %s from namespace %s", self.ifname, self.namespace.name)
        with contextlib.suppress(CommandError):
            await self.runner.run(self.appliance_ns, "ip", "link", "del", self.ifname)


def _remove_socket(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _reason(e: BaseException) -> str:
    if isinstance(e, CommandError):
        r = e.result
        return f"{' '.join(r.argv[-6:])}: {(r.stderr or r.stdout).strip()[-300:]}"
    if isinstance(e, TimeoutError):
        return "a command timed out"
    return str(e)
