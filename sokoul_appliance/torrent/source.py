"""A file of a torrent that is still downloading, as the streamer's ByteSource.

``read(offset, length, timeout)`` asks the engine for the bytes: the engine gives the pieces under
the range the tightest deadlines, moves the window ahead of them, waits for them to be verified
and only then reads the file (never unverified bytes). Pieces that do not arrive in time raise
TimeoutError (the streamer answers 503 with Retry-After); an engine that is down or a torrent in
error raises SourceError with the reason for a person.
"""

from __future__ import annotations

from typing import Protocol

from sokoul_appliance.stream.source import SourceError
from sokoul_appliance.torrent.client import EngineError, EngineTimeout


class StreamReads(Protocol):
    """What the source needs from the torrent manager."""

    async def read(
        self, torrent: str, file: int, offset: int, length: int, timeout: float = 30.0
    ) -> bytes: ...


class TorrentSource:
    def __init__(self, reads: StreamReads, torrent: str, file: int, name: str, size: int) -> None:
        self._reads = reads
        self.torrent = torrent
        self.file = file
        self._name = name
        self._size = size

    @property
    def name(self) -> str:
        return self._name

    @property
    def size(self) -> int:
        return self._size

    async def read(self, offset: int, length: int, timeout: float) -> bytes:
        if offset >= self._size or length <= 0:
            return b""
        try:
            return await self._reads.read(self.torrent, self.file, offset, length, timeout)
        except EngineTimeout as e:
            raise TimeoutError(str(e)) from None
        except EngineError as e:
            raise SourceError(str(e)) from None
