"""The thermal governor on a real event loop against copies of the Orange Pi fixture trees: a
scripted temperature trace written into a zone's `temp` file gives exactly the expected
throttle / release / critical actions, each within 2 s of the write, and the fan files."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from sokoul_appliance.board import discover
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
from sokoul_appliance.thermal import ThermalGovernor

REPO = Path(__file__).resolve().parents[2]
INTERVAL = 0.2
HOLD = 0.6  # seconds each temperature stays written (3 polls)
DEADLINE = 2.0  # each action within 2 s of the write that causes it

THERMAL_EVENTS = (
    TorrentLimitRequest,
    CpuPlacementRequest,
    PauseHeavyWork,
    ResumeHeavyWork,
    ThermalStateChanged,
)


class FakeSettings:
    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.values: dict[str, Any] = {
            "thermal.throttle_c": 75,
            "thermal.release_c": 70,
            "thermal.critical_c": 90,
        }

    def get(self, key: str) -> Any:
        return self.values[key]

    def update(self, **changes: int) -> None:
        keys = tuple(f"thermal.{k}" for k in changes)
        self.values.update({f"thermal.{k}": v for k, v in changes.items()})
        self.bus.publish(SettingsChanged(keys))


@dataclass
class Board:
    root: Path
    zone_temp: Path  # the temp file the trace writes
    zone: str
    fan_file: Path
    fan_auto: str
    fan_full: str
    hot_cpus: tuple[int, ...]
    fan_mode: str  # the mode the snapshot shows when the fan is back under its own control


@dataclass
class Rig:
    board: Board
    bus: EventBus
    settings: FakeSettings
    registry: CollectorRegistry
    governor: ThermalGovernor
    seen: list[tuple[float, Any]]  # (monotonic time, event)


BOARDS = {
    "acpi": (
        "hw/orangepi-6-plus/sim/acpi",
        "sys/class/thermal/thermal_zone0/temp",  # TZB0: a big-cluster zone
        "TZB0",
        "sys/devices/platform/cix-fan/hwmon/hwmon0/pwm1_enable",
        "2",
        "1",
        (0, 1, 6, 7),
        "auto",
    ),
    "dt": (
        "hw/orangepi-6-plus/sim/dt",
        "sys/class/thermal/thermal_zone6/temp",  # ci700-thermal: no cluster named, the biggest
        "ci700-thermal",
        "sys/cix_fan/mode",
        "normal",
        "performance",
        (8, 9, 10, 11),
        "normal",
    ),
}


@pytest.fixture(params=sorted(BOARDS))
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    tree, temp, zone, fan, auto, full, cpus, mode = BOARDS[request.param]
    root = tmp_path / "root"
    shutil.copytree(REPO / tree, root, symlinks=True)
    board = Board(root, root / temp, zone, root / fan, auto, full, cpus, mode)
    bus = EventBus()
    settings = FakeSettings(bus)
    registry = CollectorRegistry()
    host = Host(root, writable=True)  # the test's own copy: fan writes land there
    governor = ThermalGovernor(
        host, bus, settings, registry, await discover(host), interval=INTERVAL
    )
    seen: list[tuple[float, Any]] = []

    async def record() -> None:
        with bus.subscribe(*THERMAL_EVENTS) as sub:
            while True:
                event = await sub.get()
                seen.append((time.monotonic(), event))

    recorder = asyncio.create_task(record())
    await asyncio.sleep(0)
    await governor.start()
    try:
        yield Rig(board, bus, settings, registry, governor, seen)
    finally:
        await governor.stop()
        recorder.cancel()
        await asyncio.gather(recorder, return_exceptions=True)


def replace_file(path: Path, text: str) -> None:
    """Write as sysfs shows a value: all at once (a reader never sees a half-written file)."""
    real = path.resolve()
    tmp = real.with_name(real.name + ".new")
    tmp.write_text(text)
    tmp.replace(real)


async def write_temp(board: Board, celsius: float) -> float:
    await asyncio.to_thread(replace_file, board.zone_temp, f"{int(celsius * 1000)}\n")
    return time.monotonic()


def shape(event: Any) -> tuple[Any, ...]:
    """An event without its free-text reason."""
    if isinstance(event, TorrentLimitRequest):
        return ("limit", event.factor)
    if isinstance(event, CpuPlacementRequest):
        return ("placement", event.avoid_cpus)
    if isinstance(event, PauseHeavyWork):
        return ("pause",)
    if isinstance(event, ResumeHeavyWork):
        return ("resume",)
    assert isinstance(event, ThermalStateChanged)
    return ("state", event.state, event.zone, event.temp_c, event.actions)


async def test_scripted_trace_gives_exactly_the_expected_actions(rig: Rig) -> None:
    b = rig.board
    hot = b.hot_cpus
    z = b.zone
    # (temperature, events it must cause); hovering 72-76 after throttling causes none
    trace: list[tuple[float, list[tuple[Any, ...]]]] = [
        (45, []),
        (60, []),
        (74, []),
        (76, [
            ("limit", 0.5),
            ("placement", hot),
            ("state", "throttled", z, 76.0, ("torrent_limit", "placement")),
        ]),
        (72, []),
        (76, []),
        (73, []),
        (75, []),
        (72, []),
        (71, []),
        (69, [
            ("limit", 1.0),
            ("placement", ()),
            ("state", "normal", z, 69.0, ("torrent_restore", "placement_restore")),
        ]),
        (60, []),
        (91, [
            ("limit", 0.5),
            ("placement", hot),
            ("pause",),
            ("state", "critical", z, 91.0, ("torrent_limit", "placement", "pause_heavy",
                                            "fan_full")),
        ]),
        (88, []),
        (80, [("resume",), ("state", "throttled", z, 80.0, ("resume_heavy",))]),
        (72, []),
        (65, [
            ("limit", 1.0),
            ("placement", ()),
            ("state", "normal", z, 65.0, ("torrent_restore", "placement_restore",
                                          "fan_restore")),
        ]),
    ]  # fmt: skip
    # the fan is at full from the spike (step 12) until the release (step 16)
    fan = [b.fan_full if 12 <= step < 16 else b.fan_auto for step in range(len(trace))]
    assert b.fan_file.read_text().strip() == b.fan_auto

    for step, (celsius, expected) in enumerate(trace):
        before = len(rig.seen)
        written = await write_temp(b, celsius)
        # wait for the expected events (at most DEADLINE), then a few more polls for extras
        while len(rig.seen) < before + len(expected) and time.monotonic() - written < DEADLINE:
            await asyncio.sleep(0.05)
        await asyncio.sleep(HOLD)
        got = rig.seen[before:]
        assert [shape(e) for _, e in got] == expected, f"step {step}: {celsius} °C"
        for at, event in got:
            assert 0 <= at - written <= DEADLINE, f"{event} {at - written:.2f} s after the write"
            if not isinstance(event, ThermalStateChanged):
                assert z in event.reason
        assert b.fan_file.read_text().strip() == fan[step], f"fan at step {step}: {celsius} °C"

    # the same story in the metrics and the panel's snapshot
    r = rig.registry
    for to, n in (("throttled", 2), ("normal", 2), ("critical", 1)):
        assert r.get_sample_value("sokoul_thermal_transitions_total", {"to": to}) == n, to
    for action, n in (
        ("torrent_limit", 2),
        ("torrent_restore", 2),
        ("placement", 2),
        ("placement_restore", 2),
        ("pause_heavy", 1),
        ("resume_heavy", 1),
        ("fan_full", 1),
        ("fan_restore", 1),
    ):
        assert r.get_sample_value("sokoul_thermal_actions_total", {"action": action}) == n, action
    assert r.get_sample_value("sokoul_thermal_state") == 0
    assert r.get_sample_value("sokoul_thermal_zone_temperature_celsius", {"zone": z}) == 65.0
    assert r.get_sample_value("sokoul_cpu_cluster_frequency_hertz", {"cluster": "big"}) in (
        2200000000.0,  # ACPI: mean of 2.6 and 1.8 GHz policies
        2500000000.0,  # DT
    )
    snap = rig.governor.snapshot()
    assert snap["state"] == "normal"
    assert snap["hottest"] == {"zone": z, "temp_c": 65.0}
    assert snap["thresholds"] == {
        "throttle_c": 75,
        "release_c": 70,
        "critical_c": 90,
        "critical_release_c": 85,
    }
    assert [a["action"] for a in reversed(snap["last_actions"])] == [
        "torrent_limit",
        "placement",
        "torrent_restore",
        "placement_restore",
        "torrent_limit",
        "placement",
        "pause_heavy",
        "fan_full",
        "resume_heavy",
        "torrent_restore",
        "placement_restore",
        "fan_restore",
    ]
    assert all(a["ok"] for a in snap["last_actions"])
    assert snap["fans"] == [
        {"name": "cix_fan", "mode": snap["fans"][0]["mode"], "forced_full": False}
    ]
    assert rig.governor.status()[0] == "ok"


async def test_thresholds_follow_settings_live(rig: Rig) -> None:
    b = rig.board
    await write_temp(b, 72)
    await asyncio.sleep(HOLD)
    assert rig.governor.snapshot()["state"] == "normal"
    changed = time.monotonic()
    rig.settings.update(throttle_c=71, release_c=65)
    await asyncio.sleep(HOLD)
    states = [(at, e.state) for at, e in rig.seen if isinstance(e, ThermalStateChanged)]
    assert [s for _, s in states] == ["throttled"]
    assert states[0][0] - changed <= DEADLINE
    assert rig.governor.snapshot()["thresholds"]["throttle_c"] == 71
    assert rig.governor.status()[0] == "degraded"
    # raising release above the temperature releases at once
    rig.settings.update(release_c=70, throttle_c=75)
    await asyncio.sleep(HOLD)
    states = [e.state for _, e in rig.seen if isinstance(e, ThermalStateChanged)]
    assert states == ["throttled"]  # 72 > 70: still throttled (no flapping on a settings change)
    rig.settings.update(release_c=73, throttle_c=75)
    await asyncio.sleep(HOLD)
    states = [e.state for _, e in rig.seen if isinstance(e, ThermalStateChanged)]
    assert states == ["throttled", "normal"]


async def test_a_zone_that_fails_a_read_keeps_its_last_temperature(rig: Rig) -> None:
    b = rig.board
    await write_temp(b, 80)
    await asyncio.sleep(HOLD)
    await asyncio.to_thread(replace_file, b.zone_temp, "")  # a sensor hiccup
    await asyncio.sleep(HOLD)
    states = [e.state for _, e in rig.seen if isinstance(e, ThermalStateChanged)]
    assert states == ["throttled"]  # not released by a read that failed
    state, detail = rig.governor.status()
    assert state == "degraded" and "temp: not a whole number" in detail
    assert rig.governor.snapshot()["hottest"] == {"zone": b.zone, "temp_c": 80.0}


async def test_stop_gives_the_fan_back(rig: Rig) -> None:
    b = rig.board
    await write_temp(b, 95)
    await asyncio.sleep(HOLD)
    assert b.fan_file.read_text().strip() == b.fan_full
    assert rig.governor.snapshot()["heavy_work_paused"] is True
    await rig.governor.stop()
    assert b.fan_file.read_text().strip() == b.fan_auto


async def test_a_board_without_zones_has_nothing_to_govern(tmp_path: Path) -> None:
    host = Host(REPO / "hw/qemu-arm64/sim")
    bus = EventBus()
    registry = CollectorRegistry()
    gov = ThermalGovernor(host, bus, FakeSettings(bus), registry, interval=INTERVAL)
    await gov.start()
    try:
        await asyncio.sleep(3 * INTERVAL)
        assert gov.status()[0] == "unavailable"
        snap = gov.snapshot()
        assert (snap["state"], snap["zones"], snap["fans"], snap["hottest"]) == (
            "normal",
            [],
            [],
            None,
        )
        assert [c["name"] for c in snap["clusters"]] == ["big"]
        assert snap["clusters"][0]["cur_khz"] is None
    finally:
        await gov.stop()
