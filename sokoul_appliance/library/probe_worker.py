"""The library's ffprobes through one long-lived helper process.

On the appliance the library's probes belong in ``sokoul-background.slice`` (the little
cores, docs/cores.md). Starting every ffprobe through ``systemd-run --scope`` would cost a
transient unit per file: a D-Bus round trip to PID 1, about a fifth more time per probe
(measured in the QEMU image), and two journal lines ("Started run-….scope", "Deactivated
successfully") per file of a 20 000-file library. Instead the supervisor starts this helper
once, in that slice; the helper runs the probes (``probe_file``) as its own children, which
stay in its scope.

Protocol: one JSON object a line. Request ``{"id": N, "path": "/real/path"}``; answer
``{"id": N, "media": "<MediaInfo JSON>"}`` or ``{"id": N, "error": "<ProbeError text>"}``.
The helper ends when its stdin closes (after answering what it was asked).

Run as ``python3 -m sokoul_appliance.library.probe_worker``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sokoul_appliance.host import Host
from sokoul_appliance.library.probe import PROBE_TIMEOUT, MediaInfo, ProbeError, probe_file

log = logging.getLogger("sokoul.library")

MODULE = "sokoul_appliance.library.probe_worker"
LINE_LIMIT = 1 << 20  # an answer is a MediaInfo JSON: a few kB even with dozens of streams


class ProbeHelperError(Exception):
    """The helper itself failed (would not start, ended, answered nonsense): nothing is
    known about the file, which the caller probes another way."""


class ProbeHelper:
    """The supervisor's end: ``probe(host, path)`` (LibraryManager's probe signature) sends
    the path to the helper, started on first use (again after it ended) with ``prefix()``
    in front of its command line (cores.scope: systemd-run into the background slice)."""

    def __init__(self, prefix: Callable[[], Sequence[str]] = tuple) -> None:
        self._prefix = prefix
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        # request id -> (the helper it was sent to, its answer)
        self._pending: dict[int, tuple[asyncio.subprocess.Process, asyncio.Future[Any]]] = {}
        self._ids = itertools.count(1)
        self._start_lock = asyncio.Lock()
        self.starts = 0  # helper starts tried so far (one that keeps dying is given up)

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    async def probe(self, host: Host, path: Path) -> MediaInfo:
        proc = await self._ensure()
        n = next(self._ids)
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[n] = (proc, answer)
        try:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({"id": n, "path": str(path)}).encode() + b"\n")
            await proc.stdin.drain()
            # the helper's own probe_file has PROBE_TIMEOUT; a helper that says nothing for
            # longer is stuck
            reply = await asyncio.wait_for(answer, PROBE_TIMEOUT + 15)
        except (OSError, TimeoutError) as e:  # a broken pipe, a stuck helper
            await self._end(proc)
            raise ProbeHelperError(f"the probe helper did not answer ({e!r})") from e
        finally:
            self._pending.pop(n, None)
        if "error" in reply:
            raise ProbeError(str(reply["error"]))
        try:
            return MediaInfo.from_json(str(reply["media"]))
        except (KeyError, ValueError, TypeError) as e:
            raise ProbeHelperError(f"the probe helper answered {reply!r}") from e

    async def _ensure(self) -> asyncio.subprocess.Process:
        async with self._start_lock:
            proc = self._proc
            if proc is not None and proc.returncode is None:
                return proc
            argv = [*self._prefix(), sys.executable, "-m", MODULE]
            self.starts += 1
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    limit=LINE_LIMIT,
                )
            except OSError as e:
                raise ProbeHelperError(f"the probe helper did not start ({e})") from e
            self._proc = proc
            self._reader = asyncio.create_task(self._read(proc), name="library-probe-helper")
            return proc

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            try:
                line = await proc.stdout.readline()
            except ValueError:  # a line over LINE_LIMIT: not this protocol
                log.warning("probe helper: an answer longer than %d bytes", LINE_LIMIT)
                await self._end(proc)
                break
            if not line:
                break
            try:
                reply = json.loads(line)
                n = int(reply["id"])
            except (ValueError, KeyError, TypeError):
                log.warning("probe helper: unreadable line %r", line[:200])
                continue
            entry = self._pending.get(n)
            if entry is None:
                continue  # its caller stopped waiting
            sent_to, answer = entry
            if sent_to is proc and not answer.done():
                answer.set_result(reply)
        code = await proc.wait()
        if self._proc is proc:
            self._proc = None
        for sent_to, answer in list(self._pending.values()):  # this helper's only
            if sent_to is proc and not answer.done():
                answer.set_exception(ProbeHelperError(f"the probe helper ended (exit {code})"))

    async def _end(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def close(self) -> None:
        """End the helper: stdin closed (it answers what it was asked and exits), killed
        after 5 s."""
        proc, reader = self._proc, self._reader
        self._proc = self._reader = None
        if proc is not None:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                await self._end(proc)
        if reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await reader


# ---- the helper process -------------------------------------------------------------------


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    host = Host(Path("/"))
    out = sys.stdout.buffer
    running: set[asyncio.Task[None]] = set()

    async def answer(request: dict[str, Any]) -> None:
        n = request.get("id")
        try:
            media = await probe_file(host, Path(str(request["path"])))
            reply: dict[str, Any] = {"id": n, "media": media.to_json()}
        except ProbeError as e:
            reply = {"id": n, "error": str(e)}
        except Exception as e:  # one odd file never ends the helper
            reply = {"id": n, "error": f"{Path(str(request.get('path'))).name}: {e!r}"}
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()

    while line := await reader.readline():
        try:
            request = json.loads(line)
        except ValueError:
            continue
        if isinstance(request, dict):
            task = asyncio.create_task(answer(request))
            running.add(task)
            task.add_done_callback(running.discard)
    if running:
        await asyncio.gather(*running)


def main() -> None:
    asyncio.run(_serve())


if __name__ == "__main__":
    main()
