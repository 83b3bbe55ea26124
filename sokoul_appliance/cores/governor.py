"""The cores governor: pins the three SOKOUL slices to CPU clusters through systemd's D-Bus API.

At start it plans ``AllowedCPUs=`` per slice from the discovered clusters (``cores/plan.py``),
sets them live (SetUnitProperties, runtime: re-applied at every boot from that boot's discovery)
and starts any slice that is not active yet, so ``EffectiveCPUs`` shows on the appliance. Then
it follows ``CpuPlacementRequest`` events (the thermal governor: "move background work off the
hottest cluster"; ``avoid_cpus=()`` restores). Without a system bus (dev mode on a machine
without systemd) it reports "unavailable" and keeps the plan for the panel; it never raises out
of ``start()`` for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Gauge

from sokoul_appliance.bus import EventBus, Subscription
from sokoul_appliance.cores.plan import (
    HEAVY,
    SLICE_ROLE,
    SLICE_WORK,
    SLICES,
    ClusterLike,
    SlicePlan,
    cluster_roles,
    plan_slices,
)
from sokoul_appliance.events import CpuPlacementRequest, PauseHeavyWork, ResumeHeavyWork
from sokoul_appliance.systemd.client import SystemdClient, SystemdError, SystemdUnavailable
from sokoul_appliance.systemd.cpuset import format_cpu_list

log = logging.getLogger("sokoul.cores")


class DiscoveryLike(Protocol):
    @property
    def clusters(self) -> Sequence[ClusterLike]: ...


DiscoverySource = DiscoveryLike | Callable[[], Awaitable[DiscoveryLike]]


@dataclass(frozen=True)
class SliceChange:
    at: float  # unix time
    cpus: tuple[int, ...]
    previous: tuple[int, ...] | None  # None: first setting since the supervisor started
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "cpus": list(self.cpus),
            "previous": list(self.previous) if self.previous is not None else None,
            "reason": self.reason,
        }


class CoreGovernor:
    name = "cores"
    title = "CPU slices"

    def __init__(
        self,
        bus: EventBus,
        systemd: SystemdClient,
        discovery: DiscoverySource,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
        close_client: bool = True,
        read_only: bool = False,
    ) -> None:
        self._bus = bus
        self._close_client = close_client
        # against a simulated board: compute and show the plan, never touch this machine's systemd
        self._read_only = read_only
        self._systemd = systemd
        self._discovery = discovery
        self._clock = clock
        self._clusters: Sequence[ClusterLike] = ()
        self._avoid: tuple[int, ...] = ()
        self._avoid_reason = ""
        self._plan: tuple[SlicePlan, ...] = ()
        self._applied: dict[str, tuple[int, ...]] = {}
        self._changes: dict[str, SliceChange] = {}
        self._errors: dict[str, str] = {}
        self._state = ("unavailable", "Not started.")
        # the supervisor's children could not be placed in their slices (cores/scope.py)
        self._scope_problem: str | None = None
        # critical temperature (PauseHeavyWork): the heavy slice frozen, i.e. every running
        # conversion suspended where it is until ResumeHeavyWork thaws it
        self._frozen_for: str | None = None
        self._freeze_error: str | None = None
        self._lock = asyncio.Lock()
        self._stack = contextlib.ExitStack()
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._gauge = Gauge(
            "sokoul_slice_allowed_cpus",
            "CPUs a SOKOUL slice may run on (as last set through systemd)",
            ["slice"],
            registry=registry,
        )

    # manager ------------------------------------------------------------------------------

    async def start(self) -> None:
        found = self._discovery if not callable(self._discovery) else await self._discovery()
        self._clusters = tuple(found.clusters)
        self._plan = plan_slices(self._clusters)
        # subscribe before anything can publish a request, so none is lost
        self._sub = self._stack.enter_context(
            self._bus.subscribe(CpuPlacementRequest, PauseHeavyWork, ResumeHeavyWork, size=32)
        )
        await self._apply("plan from the discovered CPU clusters")
        # a supervisor that ended while conversions were frozen (a crash at critical
        # temperature) must not leave the next ones frozen
        await self._thaw_left_over()
        self._task = asyncio.create_task(self._follow_requests(), name="cores-governor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._frozen_for is not None:  # never leave conversions frozen behind
            await self._freeze_heavy(None)
        self._stack.close()
        self._sub = None
        if self._close_client and not self._read_only:  # False: the client is shared
            await self._systemd.close()

    def status(self) -> tuple[str, str]:
        return self._state

    def planned_cpus(self, unit: str) -> tuple[int, ...]:
        """The CPUs the plan gives a slice (also on a simulated board); () before start."""
        return next((p.cpus for p in self._plan if p.unit == unit), ())

    # what the panel shows -------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        roles = cluster_roles(self._clusters)
        state, detail = self._state
        slices = []
        for plan in self._plan:
            applied = self._applied.get(plan.unit)
            change = self._changes.get(plan.unit)
            slices.append(
                {
                    "slice": plan.unit,
                    "work": SLICE_WORK[plan.unit],
                    "home_role": SLICE_ROLE[plan.unit],
                    "cpus": list(plan.cpus),
                    "cpu_list": format_cpu_list(plan.cpus),
                    "roles": list(plan.roles),
                    "applied": applied == plan.cpus,
                    "applied_cpus": list(applied) if applied is not None else None,
                    "last_change": change.to_json() if change else None,
                    "error": self._errors.get(plan.unit),
                }
            )
        return {
            "state": state,
            "detail": detail,
            "clusters": [
                {"cpus": list(c.cpus), "core": c.core, "role": role}
                for c, role in zip(self._clusters, roles, strict=True)
            ],
            "avoid_cpus": list(self._avoid),
            "avoid_reason": self._avoid_reason or None,
            "slices": slices,
            "heavy_frozen": self._frozen_for is not None,
            "heavy_frozen_reason": self._frozen_for,
            "freeze_error": self._freeze_error,
        }

    # work ---------------------------------------------------------------------------------

    async def _follow_requests(self) -> None:
        assert self._sub is not None
        while True:
            request = await self._sub.get()
            if isinstance(request, PauseHeavyWork | ResumeHeavyWork):
                reason = request.reason if isinstance(request, PauseHeavyWork) else None
                await self._freeze_heavy(reason)
                continue
            self._avoid = tuple(sorted(set(request.avoid_cpus)))
            self._avoid_reason = request.reason
            self._plan = plan_slices(self._clusters, self._avoid)
            reason = request.reason or (
                "thermal request: restore" if not self._avoid else "thermal request"
            )
            try:
                await self._apply(reason)
            except Exception:  # keep following requests; the state says what went wrong
                log.exception("applying the CPU placement request failed")
                self._state = ("error", "Applying a CPU placement request failed; see the log.")

    async def _apply(self, reason: str) -> None:
        async with self._lock:
            if not self._clusters:
                self._state = (
                    "error",
                    "No CPU clusters were discovered, so the slices keep their unit-file "
                    "settings (all CPUs). See the System page's discovery problems.",
                )
                return
            if self._read_only:
                self._state = (
                    "unavailable",
                    "Simulated board (read-only): the plan is computed, not applied — "
                    + self._summary()[1],
                )
                return
            try:
                await self._systemd.connect()
            except SystemdUnavailable as e:
                log.info("systemd unavailable: %s (%s)", e, e.detail)
                self._state = (
                    "unavailable",
                    f"{e} The slices keep their unit-file settings (all CPUs).",
                )
                return
            except SystemdError as e:
                log.warning("systemd: %s (%s)", e, e.detail)
                self._state = ("error", str(e))
                return
            for plan in self._plan:
                await self._apply_slice(plan, reason)
            self._state = self._summary()

    async def _apply_slice(self, plan: SlicePlan, reason: str) -> None:
        previous = self._applied.get(plan.unit)
        try:
            if previous != plan.cpus:
                await self._systemd.set_allowed_cpus(plan.unit, plan.cpus, runtime=True)
                self._applied[plan.unit] = plan.cpus
                self._changes[plan.unit] = SliceChange(self._clock(), plan.cpus, previous, reason)
                self._gauge.labels(slice=plan.unit).set(len(plan.cpus))
                log.info("%s: AllowedCPUs=%s (%s)", plan.unit, format_cpu_list(plan.cpus), reason)
            if previous is None:
                state = await self._systemd.unit_state(plan.unit)
                if state.active_state not in ("active", "activating", "reloading"):
                    await self._systemd.start_unit(plan.unit)
            self._errors.pop(plan.unit, None)
        except SystemdError as e:
            log.warning("%s: %s (%s)", plan.unit, e, e.detail)
            self._errors[plan.unit] = str(e)

    def _summary(self) -> tuple[str, str]:
        if self._errors:
            first = next(iter(self._errors.items()))
            return "error" if len(self._errors) == len(SLICES) else "degraded", (
                f"{len(self._errors)} of {len(SLICES)} slices could not be set: "
                f"{first[0]}: {first[1]}"
            )
        parts = [
            f"{p.unit.removeprefix('sokoul-').removesuffix('.slice')} "
            f"{format_cpu_list(p.cpus)} ({'+'.join(p.roles)})"
            for p in self._plan
        ]
        moved = f"; background avoids CPUs {format_cpu_list(self._avoid)}" if self._avoid else ""
        detail = "CPUs: " + ", ".join(parts) + moved + "."
        if self._frozen_for is not None:
            detail += f" Conversions frozen: {self._frozen_for}."
        if self._freeze_error:
            return "degraded", f"{detail} The heavy slice: {self._freeze_error}"
        if self._scope_problem:
            return "degraded", f"{detail} {self._scope_problem}"
        return "ok", detail

    async def _freeze_heavy(self, reason: str | None) -> None:
        """Freeze (reason) or thaw (None) sokoul-heavy.slice with systemd's cgroup freezer:
        at critical temperature a running conversion stops using the CPU where it is and goes
        on from there afterwards (the stream room refuses new ones meanwhile). Only a slice
        this governor set up is frozen; a failure is logged and shown, nothing else."""
        async with self._lock:
            if self._read_only or HEAVY not in self._applied:
                return
            if (reason is not None) == (self._frozen_for is not None):
                self._frozen_for = reason  # already so: a new reason at most
            else:
                await self._freezer_call(reason)
            if self._state[0] in ("ok", "degraded") and not self._errors:
                self._state = self._summary()

    async def _freezer_call(self, reason: str | None) -> None:
        try:
            if reason is not None:
                await self._systemd.freeze_unit(HEAVY)
            else:
                await self._systemd.thaw_unit(HEAVY)
        except SystemdError as e:
            log.warning("%s %s: %s (%s)", "freezing" if reason else "thawing", HEAVY, e,
                        e.detail)  # fmt: skip
            self._freeze_error = str(e)
            if reason is None:
                self._frozen_for = None  # thawing failed: do not try again and again
        else:
            log.info("%s %s (%s)", "froze" if reason else "thawed", HEAVY,
                     reason or "back under the critical temperature")  # fmt: skip
            self._frozen_for, self._freeze_error = reason, None

    async def _thaw_left_over(self) -> None:
        if self._read_only or HEAVY not in self._applied:
            return
        try:
            state = await self._systemd.unit_properties(HEAVY, "org.freedesktop.systemd1.Unit")
        except SystemdError:
            return
        if state.get("FreezerState") not in (None, "running", "thawing"):
            self._frozen_for = "left frozen by an earlier run"
            await self._freeze_heavy(None)

    def note_scope_problem(self, problem: str | None) -> None:
        """What SliceCommands.check() found: the slices are set, but the supervisor's own
        children (ffmpeg, ffprobe) cannot be started in them."""
        self._scope_problem = problem
        if self._state[0] in ("ok", "degraded") and not self._errors:
            self._state = self._summary()
