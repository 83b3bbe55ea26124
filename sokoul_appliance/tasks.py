"""Ending a room's background tasks (every manager's stop())."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("sokoul")


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel every task, then wait for each to end. Ending cancelled is the normal end; a
    task that had already failed is logged, not raised, so that a stop always finishes."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            await task
        except asyncio.CancelledError:
            continue
        except Exception:
            name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
            log.exception("task %s had failed", name)
