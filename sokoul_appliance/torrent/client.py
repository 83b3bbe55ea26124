"""Supervisor side of the engine socket: request/reply with timeouts, and a status stream.

Pure asyncio (no libtorrent): safe in the supervisor's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sokoul_appliance.torrent import protocol


class EngineError(Exception):
    """The engine answered with an error; the text is written for a person."""


class EngineUnavailable(EngineError):
    """No engine on the socket (not started, restarting, or crashed)."""


class EngineTimeout(EngineError):
    """The engine gave up waiting (a stream read whose pieces did not arrive in time)."""


class EngineClient:
    def __init__(self, socket_path: Path, timeout: float = 10.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._rx: asyncio.Task[None] | None = None
        self._connect_lock = asyncio.Lock()

    async def _ensure(self) -> asyncio.StreamWriter:
        async with self._connect_lock:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_unix_connection(str(self.socket_path), limit=protocol.MAX_LINE),
                    self.timeout,
                )
            except (OSError, TimeoutError) as e:
                raise EngineUnavailable(f"The torrent engine is not reachable: {e}") from None
            self._reader, self._writer = reader, writer
            self._rx = asyncio.create_task(self._receive(reader))
            return writer

    async def _receive(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                msg = protocol.decode(line)
                fut = self._pending.pop(msg.get("id", -1), None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
        except (OSError, ValueError, protocol.ProtocolError):
            pass
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(EngineUnavailable("The torrent engine went away."))
            self._pending.clear()
            if self._writer is not None:
                self._writer.close()

    async def request(self, op: str, reply_timeout: float | None = None, **args: Any) -> Any:
        """Send ``op`` with ``args``; the reply's result, or EngineError with its message.
        An engine-side ``timeout`` argument (a stream read) extends the wait for the reply."""
        wait = reply_timeout or self.timeout
        engine_timeout = args.get("timeout")
        if isinstance(engine_timeout, int | float):
            wait = max(wait, float(engine_timeout) + 5.0)
        writer = await self._ensure()
        rid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            writer.write(protocol.encode({"id": rid, "op": op, **args}))
            await writer.drain()
            reply = await asyncio.wait_for(fut, wait)
        except (OSError, TimeoutError) as e:
            self._pending.pop(rid, None)
            raise EngineUnavailable(f"The torrent engine did not answer '{op}': {e!r}") from None
        if not reply.get("ok"):
            if reply.get("code") == "timeout":
                raise EngineTimeout(str(reply.get("error")))
            raise EngineError(str(reply.get("error")))
        return reply.get("result")

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        if self._rx is not None:
            self._rx.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rx
        self._writer = None


async def status_stream(socket_path: Path, interval: float = 1.0) -> AsyncIterator[dict[str, Any]]:
    """Events from the engine (``{"event": "status", "torrents": [...]}`` every ``interval``
    seconds, plus finished/error/metadata events) until the connection closes."""
    reader, writer = await asyncio.open_unix_connection(str(socket_path), limit=protocol.MAX_LINE)
    try:
        writer.write(protocol.encode({"id": 0, "op": "subscribe", "interval": interval}))
        await writer.drain()
        while line := await reader.readline():
            msg = protocol.decode(line)
            if "event" in msg:
                yield msg
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
