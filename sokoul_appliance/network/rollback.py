"""Change with rollback (like ``netplan try``): a change is applied, then reverted by itself
when its deadline passes unless it was confirmed. One change can be on trial at a time.

The deadline (Unix time) and the seconds left are in the snapshot so the panel can count down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("sokoul.network")

DEFAULT_TIMEOUT = 90.0


class TrialError(RuntimeError):
    """No such change on trial, or another one is pending (message for the owner)."""


@dataclass
class Trial:
    id: str
    changes: dict[str, Any]
    started_at: float  # Unix time
    deadline: float  # Unix time
    timeout: float
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "changes": self.changes,
            "started_at": self.started_at,
            "deadline": self.deadline,
            "timeout_seconds": self.timeout,
            "seconds_left": max(0.0, round(self.deadline - now, 1)),
        }


class RollbackTimer:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.pending: Trial | None = None
        self.last: dict[str, Any] | None = None  # the outcome of the previous trial

    def begin(
        self,
        changes: Mapping[str, Any],
        timeout: float,
        revert: Callable[[], Awaitable[None]],
    ) -> Trial:
        if self.pending is not None:
            raise TrialError(
                f"a network change is waiting for confirmation ({self.pending.id}): confirm it "
                "or let it roll back first"
            )
        now = self._clock()
        trial = Trial(secrets.token_hex(4), dict(changes), now, now + timeout, timeout)
        trial.task = asyncio.create_task(self._expire(trial, revert), name=f"rollback-{trial.id}")
        self.pending = trial
        return trial

    async def _expire(self, trial: Trial, revert: Callable[[], Awaitable[None]]) -> None:
        await asyncio.sleep(trial.timeout)
        if self.pending is not trial:
            return
        log.warning(
            "network change %s not confirmed in %.0f s: rolling back", trial.id, trial.timeout
        )
        self.pending = None
        try:
            await revert()
        except Exception as e:
            log.exception("rolling back network change %s failed", trial.id)
            self.last = self._outcome(trial, "rollback_failed", f"Rolling back failed: {e}")
        else:
            self.last = self._outcome(
                trial, "rolled_back", "Not confirmed in time: the previous settings are back."
            )

    def _outcome(self, trial: Trial, result: str, detail: str) -> dict[str, Any]:
        return {"id": trial.id, "result": result, "detail": detail, "at": self._clock(),
                "changes": trial.changes}  # fmt: skip

    def _take(self, trial_id: str) -> Trial:
        trial = self.pending
        if trial is None or trial.id != trial_id:
            raise TrialError(
                f"no network change {trial_id} is waiting for confirmation (it may have been "
                "rolled back already)"
            )
        self.pending = None
        if trial.task is not None:
            trial.task.cancel()
        return trial

    def confirm(self, trial_id: str) -> Trial:
        trial = self._take(trial_id)
        self.last = self._outcome(trial, "confirmed", "Confirmed: the change is kept.")
        return trial

    def abandon(self, trial_id: str, result: str, detail: str) -> Trial:
        """End a trial without its timer (reverted on request, or failed to apply)."""
        trial = self._take(trial_id)
        self.last = self._outcome(trial, result, detail)
        return trial

    async def close(self) -> None:
        """Stop the timer without reverting (supervisor shutdown: the netplan file still holds
        the last confirmed settings, which the next boot uses)."""
        trial, self.pending = self.pending, None
        if trial is not None and trial.task is not None:
            trial.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await trial.task

    def snapshot(self) -> dict[str, Any]:
        now = self._clock()
        return {
            "pending": self.pending.to_json(now) if self.pending else None,
            "last": self.last,
        }
