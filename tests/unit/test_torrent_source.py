"""TorrentSource: engine answers become what the streamer expects (bytes, TimeoutError for
pieces that did not come in time, SourceError with the reason otherwise)."""

from __future__ import annotations

import pytest

from sokoul_appliance.stream.source import SourceError
from sokoul_appliance.torrent.client import EngineError, EngineTimeout, EngineUnavailable
from sokoul_appliance.torrent.source import TorrentSource

pytestmark = pytest.mark.unit


class Reads:
    def __init__(self, outcome: bytes | Exception) -> None:
        self.outcome = outcome
        self.calls: list[tuple[str, int, int, int, float]] = []

    async def read(
        self, torrent: str, file: int, offset: int, length: int, timeout: float = 30.0
    ) -> bytes:
        self.calls.append((torrent, file, offset, length, timeout))
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


async def test_bytes_come_from_the_engine_for_that_file() -> None:
    reads = Reads(b"abc")
    src = TorrentSource(reads, "ab" * 20, 2, "Film.mkv", 1000)
    assert (src.name, src.size) == ("Film.mkv", 1000)
    assert await src.read(10, 3, 7.5) == b"abc"
    assert reads.calls == [("ab" * 20, 2, 10, 3, 7.5)]
    # past the end: nothing asked
    assert await src.read(1000, 10, 1.0) == b""
    assert len(reads.calls) == 1


@pytest.mark.parametrize(
    ("error", "expected", "text"),
    [
        (EngineTimeout("Timed out after 2 s waiting for 3 piece(s)"), TimeoutError, "3 piece"),
        (EngineUnavailable("The torrent engine is not running yet"), SourceError, "not running"),
        (EngineError("The torrent stopped with an error: disk full"), SourceError, "disk full"),
    ],
)
async def test_engine_errors_become_streamer_errors(
    error: Exception, expected: type[Exception], text: str
) -> None:
    src = TorrentSource(Reads(error), "cd" * 20, 0, "x.mp4", 10)
    with pytest.raises(expected, match=text):
        await src.read(0, 5, 1.0)
