"""cancel_and_wait: every room's stop ends its tasks, even one that had already failed."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sokoul_appliance.tasks import cancel_and_wait


async def test_cancels_every_task_and_logs_one_that_had_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ended: list[str] = []

    async def loop(name: str) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            ended.append(name)

    async def broken() -> None:
        raise RuntimeError("the disk went away")

    tasks = [asyncio.create_task(loop("a"), name="a"), asyncio.create_task(broken(), name="b")]
    tasks.append(asyncio.create_task(loop("c"), name="c"))
    await asyncio.sleep(0)  # all started; "b" has failed
    with caplog.at_level(logging.ERROR, logger="sokoul"):
        await cancel_and_wait(tasks)
    assert sorted(ended) == ["a", "c"] and all(t.done() for t in tasks)
    assert [r.getMessage() for r in caplog.records] == ["task b had failed"]
    await cancel_and_wait([])  # nothing to do
