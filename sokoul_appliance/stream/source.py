"""Files that are still arriving (a torrent downloading): the streamer reads them through a
ByteSource, which the torrent engine's client implements (it raises the priority of the pieces
asked for, as Tribler's stream.py does, and waits until they are on disk)."""

from __future__ import annotations

import secrets
from typing import Protocol


class SourceError(Exception):
    """The source cannot give those bytes now (its engine is down, the download stopped with an
    error); the text is written for a person. The streamer answers 503."""


class ByteSource(Protocol):
    @property
    def name(self) -> str:
        """The file name ('Film.2020.mkv'): it picks the MIME type."""
        ...

    @property
    def size(self) -> int:
        """The file's full size once complete (known from the torrent's metadata)."""
        ...

    async def read(self, offset: int, length: int, timeout: float) -> bytes:
        """Up to ``length`` bytes at ``offset`` (at least one unless offset >= size), waiting
        until they have been downloaded; raises TimeoutError after ``timeout`` seconds and
        SourceError when they cannot come at all."""
        ...


class SourceRegistry:
    """Object ids ('dl-…') for sources the streamer may serve; the torrent room adds a source
    when a user asks to play a download and removes it when the file joins the library."""

    def __init__(self) -> None:
        self._sources: dict[str, ByteSource] = {}

    def add(self, source: ByteSource) -> str:
        object_id = "dl-" + secrets.token_hex(8)
        self._sources[object_id] = source
        return object_id

    def remove(self, object_id: str) -> None:
        self._sources.pop(object_id, None)

    def get(self, object_id: str) -> ByteSource | None:
        return self._sources.get(object_id)

    def __len__(self) -> int:
        return len(self._sources)
