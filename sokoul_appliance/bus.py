"""In-process event bus: typed events fanned out to subscribers' bounded asyncio queues.

Publishing never blocks and never waits for a subscriber: a subscriber that falls behind loses
its oldest events (and the loss is counted), the publisher and everyone else carry on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Subscription:
    def __init__(self, types: tuple[type[Any], ...], size: int) -> None:
        self.types = types
        self.queue: asyncio.Queue[Any] = asyncio.Queue(size)
        self.dropped = 0

    def offer(self, event: Any) -> None:
        if self.types and not isinstance(event, self.types):
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    async def get(self) -> Any:
        return await self.queue.get()


class EventBus:
    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self.published = 0

    def publish(self, event: Any) -> None:
        """Hand ``event`` to every matching subscriber (call from the event loop thread)."""
        self.published += 1
        for sub in list(self._subs):
            sub.offer(event)

    @contextmanager
    def subscribe(self, *types: type[Any], size: int = 256) -> Iterator[Subscription]:
        """``with bus.subscribe(LogLine) as sub: event = await sub.get()`` (no types: all)."""
        sub = Subscription(types, size)
        self._subs.append(sub)
        try:
            yield sub
        finally:
            self._subs.remove(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)
