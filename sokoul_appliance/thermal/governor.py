"""Thermal governor: polls every thermal zone, governs on the hottest, with hysteresis.

Every ``interval`` seconds (1 s by default) a worker thread reads the zones' temperatures, the
clusters' current frequency and ``/proc/stat``; the event loop then feeds the hottest zone to
the state machine (``states.py``) and carries out the actions of a change of state:

- throttled: ``TorrentLimitRequest(0.5)`` and ``CpuPlacementRequest(avoid_cpus=<hot cluster>)``;
- critical: ``PauseHeavyWork`` and every controllable fan to full;
- leaving critical: ``ResumeHeavyWork``; back to normal: factor 1.0, ``avoid_cpus=()``, the fan
  back to the value it had before.

The hot cluster comes from the zone's name where the firmware tells (ACPI ``TZB*`` big, ``TZM*``
mid), else it is the biggest cluster; it is chosen when throttling starts and kept until
release (following zones that trade places would move work back and forth). Thresholds are read
from Settings at each evaluation, and a ``SettingsChanged`` wakes the loop at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from sokoul_appliance.board.cpus import Cluster, cluster_labels, performance_key
from sokoul_appliance.board.discovery import Discovery, discover
from sokoul_appliance.board.sampler import CpuTicks, cluster_cur_khz, cluster_load, parse_proc_stat
from sokoul_appliance.board.sysfs import SysfsReader
from sokoul_appliance.board.thermal import ThermalZone, read_temp_c
from sokoul_appliance.bus import EventBus
from sokoul_appliance.events import (
    CpuPlacementRequest,
    PauseHeavyWork,
    ResumeHeavyWork,
    SettingsChanged,
    ThermalStateChanged,
    TorrentLimitRequest,
)
from sokoul_appliance.host import Host
from sokoul_appliance.tasks import cancel_and_wait
from sokoul_appliance.thermal.fan import FanControl, FanError, fan_controls
from sokoul_appliance.thermal.states import (
    ACTIONS,
    CRITICAL,
    FAN_FULL,
    FAN_RESTORE,
    NORMAL,
    PAUSE_HEAVY,
    PLACEMENT,
    PLACEMENT_RESTORE,
    RESUME_HEAVY,
    STATE_VALUE,
    STATES,
    THROTTLED,
    TORRENT_LIMIT,
    TORRENT_RESTORE,
    Thresholds,
    next_state,
    transition_actions,
)

log = logging.getLogger("sokoul.thermal")

THROTTLE_FACTOR = 0.5
KEEP_ACTIONS = 50
# a zone that fails one read keeps its last temperature this long (a sensor hiccup must not
# look like a cool-down and release the throttle); after that it is left out until it reads
STALE_ZONE_SECONDS = 5.0
# zone names that say which cluster they measure: ACPI TZB0/TZB1 (big), TZM0/TZM1 (mid); the
# Orange Pi's DT zones measure no CPU cluster, so they fall back to the biggest one
ZONE_ROLES = (
    (re.compile(r"^TZB\d*$|big", re.IGNORECASE), "big"),
    (re.compile(r"^TZM\d*$|mid", re.IGNORECASE), "mid"),
    (re.compile(r"little|^TZL\d*$", re.IGNORECASE), "little"),
)


class SettingsSource(Protocol):
    def get(self, key: str) -> Any: ...


def zone_role(zone: str) -> str | None:
    """The cluster role a zone's name points at, or None when it does not tell."""
    return next((role for rx, role in ZONE_ROLES if rx.search(zone)), None)


def hot_cpus(zone: str, clusters: Sequence[Cluster]) -> tuple[int, ...]:
    """CPUs to move background work off when ``zone`` is the hottest: the cluster the zone
    names, else the biggest; () when there is no other cluster to move to."""
    if len(clusters) < 2:
        return ()
    role = zone_role(zone)
    named = [c for c in clusters if c.role == role]
    chosen = named or [max(clusters, key=performance_key)]
    return tuple(sorted(cpu for c in chosen for cpu in c.cpus))


def zone_labels(zones: Sequence[ThermalZone]) -> list[str]:
    names = [z.name for z in zones]
    return [n if names.count(n) == 1 else f"{n}-{i}" for i, n in enumerate(names)]


@dataclass(frozen=True)
class Reading:
    temps: dict[str, float | None]  # zone label -> °C
    cluster_khz: tuple[int | None, ...]
    ticks: CpuTicks
    fan_modes: tuple[str | None, ...]
    problems: tuple[str, ...]


class ThermalGovernor:
    name = "thermal"
    title = "Thermal governor"

    def __init__(
        self,
        host: Host,
        bus: EventBus,
        settings: SettingsSource,
        registry: CollectorRegistry,
        discovery: Discovery | Callable[[], Awaitable[Discovery]] | None = None,
        interval: float = 1.0,
    ) -> None:
        self._host = host
        self._bus = bus
        self._settings = settings
        self._discovery = discovery
        self._interval = interval
        self._zones: tuple[ThermalZone, ...] = ()
        self._zone_labels: list[str] = []
        self._clusters: tuple[Cluster, ...] = ()
        self._cluster_labels: list[str] = []
        self._fans: list[FanControl] = []
        self._fan_modes: tuple[str | None, ...] = ()
        self._state = NORMAL
        self._since = time.time()
        self._temps: dict[str, float | None] = {}
        self._last_read: dict[str, tuple[float, float]] = {}  # zone -> (°C, monotonic time)
        self._hottest: tuple[str, float] | None = None
        self._cluster_khz: tuple[int | None, ...] = ()
        self._cluster_util: tuple[float | None, ...] = ()
        self._ticks: CpuTicks | None = None
        self._avoid: tuple[int, ...] = ()
        self._factor = 1.0
        self._heavy_paused = False
        self._actions: deque[dict[str, Any]] = deque(maxlen=KEEP_ACTIONS)
        self._problems: tuple[str, ...] = ()
        self._fan_problem: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._running = False

        self._m_temp = Gauge(
            "sokoul_thermal_zone_temperature_celsius",
            "Temperature of each thermal zone",
            ["zone"],
            registry=registry,
        )
        self._m_state = Gauge(
            "sokoul_thermal_state",
            "Thermal governor state: 0 normal, 1 throttled, 2 critical",
            registry=registry,
        )
        self._m_transitions = Counter(
            "sokoul_thermal_transitions",
            "Thermal state changes, by the state entered",
            ["to"],
            registry=registry,
        )
        self._m_actions = Counter(
            "sokoul_thermal_actions",
            "Actions the thermal governor took, by action",
            ["action"],
            registry=registry,
        )
        self._m_khz = Gauge(
            "sokoul_cpu_cluster_frequency_hertz",
            "Current frequency of each CPU cluster (mean of its cpufreq policies)",
            ["cluster"],
            registry=registry,
        )
        self._m_util = Gauge(
            "sokoul_cpu_cluster_utilisation_ratio",
            "Busy share of each CPU cluster's time between two polls (0-1)",
            ["cluster"],
            registry=registry,
        )
        for state in STATES:
            self._m_transitions.labels(state)
        for action in ACTIONS:
            self._m_actions.labels(action)

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._discovery is None:
            self._discovery = await discover(self._host)
        elif callable(self._discovery):  # e.g. the board room's discovery made at start
            self._discovery = await self._discovery()
        d = self._discovery
        self._zones = d.thermal_zones
        self._zone_labels = zone_labels(self._zones)
        self._clusters = d.clusters
        self._cluster_labels = cluster_labels(self._clusters)
        self._fans = await asyncio.to_thread(fan_controls, self._host, d.fans)
        self._m_state.set(STATE_VALUE[self._state])
        self._running = True
        self._tasks = [
            asyncio.create_task(self._follow_settings(), name="thermal-settings"),
            asyncio.create_task(self._poll(), name="thermal-governor"),
        ]
        log.info(
            "thermal governor: %d zone(s), %d cluster(s), fan(s): %s; polling every %.1f s",
            len(self._zones),
            len(self._clusters),
            ", ".join(f.name for f in self._fans) or "none controllable",
            self._interval,
        )

    async def stop(self) -> None:
        self._running = False
        await cancel_and_wait(self._tasks)
        self._tasks = []
        # never leave the fan forced to full behind: the EC's own curve takes over again
        for fan in self._fans:
            if fan.forced:
                try:
                    await asyncio.to_thread(fan.restore, self._host)
                    log.info("fan %s back to its own control (governor stopping)", fan.name)
                except FanError as e:
                    log.error("could not give fan %s back its mode: %s", fan.name, e)

    def status(self) -> tuple[str, str]:
        if not self._running:
            return "unavailable", "The thermal governor is not running."
        if not self._zones:
            return (
                "unavailable",
                "This board reports no thermal zones, so there is nothing to govern.",
            )
        th = self._thresholds()
        if self._hottest is None:
            text = "No temperature read yet."
        else:
            zone, temp = self._hottest
            if self._state == NORMAL:
                text = (
                    f"Normal: hottest zone {zone} at {temp:.1f} °C; "
                    f"throttles at {th.throttle_c:g} °C."
                )
            elif self._state == THROTTLED:
                text = (
                    f"Throttled: hottest zone {zone} at {temp:.1f} °C; torrent rates halved and "
                    f"background work moved; back to normal at {th.release_c:g} °C or below."
                )
            else:
                text = (
                    f"Critical: hottest zone {zone} at {temp:.1f} °C; torrents and transcodes "
                    f"paused, fan at full, until below {th.critical_release_c:g} °C."
                )
        problems = [*self._problems, *([self._fan_problem] if self._fan_problem else [])]
        if problems:
            return "degraded", f"{text} Problems: " + "; ".join(problems[:3])
        return ("ok" if self._state == NORMAL else "degraded"), text

    def snapshot(self) -> dict[str, Any]:
        """The governor's state for the panel (JSON-serialisable)."""
        hottest = None
        if self._hottest is not None:
            hottest = {"zone": self._hottest[0], "temp_c": self._hottest[1]}
        return {
            "state": self._state,
            "since": self._since,
            "hottest": hottest,
            "zones": [
                {
                    "name": label,
                    "type": zone.type,
                    "temp_c": self._temps.get(label),
                    "cluster": zone_role(zone.name) if len(self._clusters) > 1 else None,
                }
                for label, zone in zip(self._zone_labels, self._zones, strict=True)
            ],
            "thresholds": self._thresholds().to_json(),
            "fans": [
                {"name": f.name, "mode": mode, "forced_full": f.forced}
                for f, mode in zip(
                    self._fans, self._fan_modes or [None] * len(self._fans), strict=True
                )
            ],
            "torrent_factor": self._factor,
            "avoid_cpus": list(self._avoid),
            "heavy_work_paused": self._heavy_paused,
            "clusters": [
                {"name": label, "cpus": list(c.cpus), "cur_khz": khz, "utilisation": util}
                for label, c, khz, util in zip(
                    self._cluster_labels,
                    self._clusters,
                    self._cluster_khz or [None] * len(self._clusters),
                    self._cluster_util or [None] * len(self._clusters),
                    strict=True,
                )
            ],
            "last_actions": list(reversed(self._actions)),
            "problems": [*self._problems, *([self._fan_problem] if self._fan_problem else [])],
        }

    # -- the loop -------------------------------------------------------------------------------
    def _thresholds(self) -> Thresholds:
        get = self._settings.get
        return Thresholds(
            throttle_c=float(get("thermal.throttle_c")),
            release_c=float(get("thermal.release_c")),
            critical_c=float(get("thermal.critical_c")),
        )

    async def _follow_settings(self) -> None:
        with self._bus.subscribe(SettingsChanged) as sub:
            while True:
                event: SettingsChanged = await sub.get()
                if any(k.startswith("thermal.") for k in event.keys):
                    log.info("thermal thresholds changed: %s", self._thresholds().to_json())
                    self._wake.set()

    async def _poll(self) -> None:
        while True:
            try:
                reading = await asyncio.to_thread(self._read)
                await self._evaluate(reading)
            except Exception as e:  # keep governing: the next poll may succeed
                log.exception("thermal poll failed")
                self._problems = (f"the last poll failed: {e}",)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()

    def _read(self) -> Reading:
        """Blocking sysfs reads (worker thread only)."""
        reader = SysfsReader(self._host)
        temps = {
            label: read_temp_c(reader, f"{zone.path}/temp")
            for label, zone in zip(self._zone_labels, self._zones, strict=True)
        }
        khz = tuple(cluster_cur_khz(reader, c) for c in self._clusters)
        ticks = parse_proc_stat(reader) if self._clusters else {}
        modes: list[str | None] = []
        for fan in self._fans:
            try:
                modes.append(fan.read_mode(self._host))
            except FanError as e:
                reader.note(str(e))
                modes.append(None)
        return Reading(temps, khz, ticks, tuple(modes), tuple(reader.problems))

    async def _evaluate(self, r: Reading) -> None:
        self._temps = r.temps
        self._problems = r.problems
        self._fan_modes = r.fan_modes
        self._cluster_khz = r.cluster_khz
        previous, self._ticks = self._ticks, r.ticks
        utils: list[float | None] = []
        for label, c, khz in zip(self._cluster_labels, self._clusters, r.cluster_khz, strict=True):
            load = cluster_load(c.cpus, previous, r.ticks) if previous is not None else None
            utils.append(None if load is None else round(load / 100, 3))
            if khz is not None:
                self._m_khz.labels(label).set(khz * 1000)
            if load is not None:
                self._m_util.labels(label).set(load / 100)
        self._cluster_util = tuple(utils)
        for label, temp in r.temps.items():
            if temp is not None:
                self._m_temp.labels(label).set(temp)

        now = time.monotonic()
        known: dict[str, float] = {}
        for label, temp in r.temps.items():
            if temp is not None:
                known[label] = temp
                self._last_read[label] = (temp, now)
            elif label in self._last_read and now - self._last_read[label][1] <= max(
                STALE_ZONE_SECONDS, 3 * self._interval
            ):
                known[label] = self._last_read[label][0]
        if not known:
            self._hottest = None
            return  # nothing to govern on: keep the state (the problems say why)
        zone, temp = max(known.items(), key=lambda kv: kv[1])
        self._hottest = (zone, temp)
        th = self._thresholds()
        new = next_state(self._state, temp, th)
        if new == self._state:
            return
        old = self._state
        forced = any(f.forced for f in self._fans)
        actions = transition_actions(old, new, fan_forced=forced)
        self._state, self._since = new, time.time()
        self._m_state.set(STATE_VALUE[new])
        self._m_transitions.labels(new).inc()
        log.warning(
            "thermal: %s -> %s (%s at %.1f °C): %s", old, new, zone, temp, ", ".join(actions)
        )
        reason = self._reason(new, zone, temp, th)
        for action in actions:
            await self._act(action, new, zone, reason)
        self._bus.publish(ThermalStateChanged(new, zone, temp, actions))

    @staticmethod
    def _reason(state: str, zone: str, temp: float, th: Thresholds) -> str:
        if state == CRITICAL:
            return f"{zone} at {temp:.1f} °C (critical at {th.critical_c:g} °C)"
        if state == THROTTLED:
            return f"{zone} at {temp:.1f} °C (throttle at {th.throttle_c:g} °C)"
        return f"{zone} at {temp:.1f} °C (released at {th.release_c:g} °C)"

    async def _act(self, action: str, state: str, zone: str, reason: str) -> None:
        ok = True
        if action == TORRENT_LIMIT:
            self._factor = THROTTLE_FACTOR
            self._bus.publish(TorrentLimitRequest(THROTTLE_FACTOR, reason))
            detail = f"torrent rate limits x{THROTTLE_FACTOR:g}"
        elif action == TORRENT_RESTORE:
            self._factor = 1.0
            self._bus.publish(TorrentLimitRequest(1.0, reason))
            detail = "torrent rate limits restored"
        elif action == PLACEMENT:
            self._avoid = hot_cpus(zone, self._clusters)
            self._bus.publish(CpuPlacementRequest(self._avoid, reason))
            detail = (
                f"background work off CPUs {','.join(map(str, self._avoid))}"
                if self._avoid
                else "background work stays (no other CPU cluster)"
            )
        elif action == PLACEMENT_RESTORE:
            self._avoid = ()
            self._bus.publish(CpuPlacementRequest((), reason))
            detail = "background work back on its CPUs"
        elif action == PAUSE_HEAVY:
            self._heavy_paused = True
            self._bus.publish(PauseHeavyWork(reason))
            detail = "torrents and transcodes paused"
        elif action == RESUME_HEAVY:
            self._heavy_paused = False
            self._bus.publish(ResumeHeavyWork(reason))
            detail = "torrents and transcodes resumed"
        elif action in (FAN_FULL, FAN_RESTORE):
            ok, detail = await self._fan(action)
        else:  # pragma: no cover - ACTIONS is a closed set
            raise ValueError(f"unknown thermal action {action!r}")
        self._m_actions.labels(action).inc()
        self._actions.append(
            {
                "ts": time.time(),
                "state": state,
                "action": action,
                "detail": detail,
                "reason": reason,
                "ok": ok,
            }
        )

    async def _fan(self, action: str) -> tuple[bool, str]:
        if not self._fans:
            return True, "no controllable fan"
        done, failed = [], []
        for fan in self._fans:
            step = fan.force_full if action == FAN_FULL else fan.restore
            try:
                await asyncio.to_thread(step, self._host)
                done.append(fan.name)
            except FanError as e:
                log.error("fan %s: %s", fan.name, e)
                failed.append(str(e))
        verb = "to full" if action == FAN_FULL else "back to its mode"
        self._fan_problem = (
            f"the fan could not be set {verb} ({'; '.join(failed)}): check the fan driver"
            if failed
            else None
        )
        detail = f"fan {', '.join(done)} {verb}" if done else f"fan not set {verb}"
        if failed:
            detail += f" (failed: {'; '.join(failed)})"
        return not failed, detail
