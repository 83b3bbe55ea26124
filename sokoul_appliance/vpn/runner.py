"""Commands of the vpn room, run through the host seam, optionally inside a network namespace.

``ns=None`` runs in the supervisor's own namespace (the appliance's main namespace on the
board; the tests' ``appliance`` namespace in integration tests). Text that a command reads from
a file (``wg setconf``'s keys, an ``nft -f`` ruleset) goes to a private temporary file (mode
0600) that is removed as soon as the command returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from pathlib import Path

from sokoul_appliance.host import CommandResult, Host

FILE_MARK = "{file}"


def in_namespace(ns: str | None, *argv: str) -> tuple[str, ...]:
    return ("ip", "netns", "exec", ns, *argv) if ns else tuple(argv)


def _write_private(text: str, directory: str | None) -> str:
    fd, path = tempfile.mkstemp(prefix="sokoul-vpn-", dir=directory)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    return path


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class Runner:
    def __init__(self, host: Host, tmp_dir: Path | None = None) -> None:
        self.host = host
        self._tmp_dir = str(tmp_dir) if tmp_dir else None

    async def run(self, ns: str | None, *argv: str, timeout: float = 15.0) -> CommandResult:
        return await self.host.run(*in_namespace(ns, *argv), timeout=timeout)

    async def run_with_file(
        self, ns: str | None, text: str, *argv: str, timeout: float = 15.0
    ) -> CommandResult:
        """Run argv with ``{file}`` replaced by a private file holding ``text``."""
        path = await asyncio.to_thread(_write_private, text, self._tmp_dir)
        try:
            real = tuple(path if a == FILE_MARK else a for a in argv)
            return await self.run(ns, *real, timeout=timeout)
        finally:
            await asyncio.to_thread(_remove, path)
