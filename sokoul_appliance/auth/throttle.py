"""Login throttling per client address: after 5 failures in a row, each further attempt must
wait, 30 s doubling per failure up to 15 min. A success clears the address's record."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

FREE_FAILURES = 5
FIRST_DELAY = 30.0
MAX_DELAY = 900.0
MAX_TRACKED = 10_000


@dataclass
class _Record:
    failures: int
    locked_until: float


class LoginThrottle:
    def __init__(self) -> None:
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._now = time.monotonic

    def retry_after(self, client: str) -> float | None:
        """Seconds the client must still wait, or None when it may try now."""
        rec = self._records.get(client)
        if rec is None:
            return None
        wait = rec.locked_until - self._now()
        return wait if wait > 0 else None

    def failure(self, client: str) -> float | None:
        """Record a failed login; returns the new wait when the client is now locked out."""
        rec = self._records.pop(client, None) or _Record(0, 0.0)
        rec.failures += 1
        self._records[client] = rec
        while len(self._records) > MAX_TRACKED:
            self._records.popitem(last=False)
        if rec.failures < FREE_FAILURES:
            return None
        delay = min(MAX_DELAY, FIRST_DELAY * float(2 ** (rec.failures - FREE_FAILURES)))
        rec.locked_until = self._now() + delay
        return delay

    def success(self, client: str) -> None:
        self._records.pop(client, None)
