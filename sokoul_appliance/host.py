"""The host seam: every read of /sys, /proc, /dev, /etc and every external command goes here.

``Host(root)`` maps absolute appliance paths under ``root`` ("/" on the board and in QEMU, a
fixture tree in tests and dev mode) and runs commands with a timeout, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path


class HostPathError(ValueError):
    """A path was not absolute or tried to leave the host root."""


class HostReadOnlyError(PermissionError):
    """A write to a simulated board's tree that was not asked for."""


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class CommandError(Exception):
    def __init__(self, result: CommandResult) -> None:
        self.result = result
        super().__init__(
            f"{' '.join(result.argv)} exited {result.returncode}: {result.stderr.strip()[-500:]}"
        )


class Host:
    def __init__(self, root: Path, writable: bool | None = None) -> None:
        self.root = root.resolve()
        # control-file writes (write_text) go through only on the appliance, or when a test
        # asks for them on its own copy of a tree: never into a committed fixture tree
        self.writable = self.live if writable is None else writable

    @property
    def live(self) -> bool:
        """True on the appliance itself (root "/"); False against a simulated board, where
        managers must not change this machine (no commands that touch network, disks, clock)."""
        return self.root == Path("/")

    def path(self, absolute: str) -> Path:
        """The real location of appliance path ``absolute`` (which must start with '/')."""
        if not absolute.startswith("/"):
            raise HostPathError(f"host paths are absolute, got {absolute!r}")
        candidate = (self.root / absolute.lstrip("/")).resolve()
        if candidate != self.root and self.root not in candidate.parents:
            raise HostPathError(f"{absolute!r} leaves the host root")
        return candidate

    def read_text(self, absolute: str) -> str | None:
        """Contents of a small file (sysfs/procfs/etc), or None when it does not exist."""
        try:
            return self.path(absolute).read_text(errors="replace")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def write_text(self, absolute: str, text: str) -> None:
        """Write a control file in place (sysfs/procfs knobs such as pwm1_enable). Not for state
        files: those are written atomically (temp file + fsync + rename) by their owner."""
        if not self.writable:
            raise HostReadOnlyError(
                f"{absolute}: not written, this supervisor runs against a simulated board "
                "(read-only)"
            )
        with open(self.path(absolute), "w") as f:
            f.write(text)

    def listdir(self, absolute: str) -> list[str]:
        """Names in a directory (sorted), or [] when it does not exist."""
        try:
            return sorted(os.listdir(self.path(absolute)))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def filesystem_usage(self, absolute: str) -> tuple[int, int]:
        """(size_bytes, free_bytes) of the filesystem holding ``absolute``."""
        st = os.statvfs(self.path(absolute))
        return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize

    @staticmethod
    def monotonic() -> float:
        return time.monotonic()

    async def run(self, *argv: str, timeout: float = 30.0) -> CommandResult:
        """Run an external command (never through a shell); raise CommandError on failure."""
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except (TimeoutError, asyncio.CancelledError):
            # timed out, or the caller was cancelled (a manager stopping): the command is ours,
            # it ends with us instead of living on unwatched
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await asyncio.shield(proc.wait())
            raise
        result = CommandResult(tuple(argv), proc.returncode or 0, out.decode(), err.decode())
        if result.returncode != 0:
            raise CommandError(result)
        return result


async def stop_process(proc: asyncio.subprocess.Process, grace: float = 5.0) -> None:
    """End a child we started, by its PID: SIGTERM, then SIGKILL after ``grace`` seconds."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
