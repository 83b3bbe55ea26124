"""The thermal state machine fed temperatures, the zone -> cluster map, the fan controls."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sokoul_appliance.board import discover
from sokoul_appliance.host import Host
from sokoul_appliance.thermal.fan import FanError, fan_controls
from sokoul_appliance.thermal.governor import hot_cpus, zone_role
from sokoul_appliance.thermal.states import (
    CRITICAL,
    NORMAL,
    THROTTLED,
    Thresholds,
    next_state,
    transition_actions,
)

REPO = Path(__file__).resolve().parents[2]
ACPI = REPO / "hw/orangepi-6-plus/sim/acpi"
DT = REPO / "hw/orangepi-6-plus/sim/dt"
QEMU = REPO / "hw/qemu-arm64/sim"
DEFAULT = Thresholds()  # 75 / 70 / 90, critical left below 85


def run(temps: list[float], t: Thresholds = DEFAULT, state: str = NORMAL) -> list[str]:
    """The state after each temperature."""
    out = []
    for temp in temps:
        state = next_state(state, temp, t)
        out.append(state)
    return out


def changes(temps: list[float], t: Thresholds = DEFAULT) -> list[tuple[float, str, str]]:
    """(temperature, from, to) of each change of state."""
    state, out = NORMAL, []
    for temp in temps:
        new = next_state(state, temp, t)
        if new != state:
            out.append((temp, state, new))
        state = new
    return out


def test_throttle_exactly_at_the_threshold_and_release_exactly_at_release() -> None:
    assert run([74.9, 75.0]) == [NORMAL, THROTTLED]
    assert run([70.1, 70.0], state=THROTTLED) == [THROTTLED, NORMAL]


def test_hovering_between_release_and_throttle_never_flaps() -> None:
    hover = [76, 72, 75.5, 71, 76, 74.9, 75, 70.1, 76, 72, 73, 74]
    assert changes([60, *hover]) == [(76, NORMAL, THROTTLED)]
    # and hovering below throttle from normal stays normal
    assert changes([72, 74.9, 70, 74.99, 71]) == []


def test_critical_needs_the_hysteresis_to_leave() -> None:
    assert run([91, 89, 86, 85.0, 84.9], state=THROTTLED) == [
        CRITICAL,
        CRITICAL,
        CRITICAL,
        CRITICAL,
        THROTTLED,
    ]
    # hovering 87-91 around the critical threshold: one change only
    assert changes([80, 90, 88, 91, 87, 90.5, 86]) == [
        (80, NORMAL, THROTTLED),
        (90, THROTTLED, CRITICAL),
    ]


def test_jumps_go_straight_to_the_right_state() -> None:
    assert changes([95, 65]) == [(95, NORMAL, CRITICAL), (65, CRITICAL, NORMAL)]


def test_the_acceptance_trace() -> None:
    trace = [45, 60, 74, 76, 72, 76, 73, 75, 72, 71, 69, 60, 91, 88, 80, 72, 65]
    assert changes(trace) == [
        (76, NORMAL, THROTTLED),
        (69, THROTTLED, NORMAL),
        (91, NORMAL, CRITICAL),
        (80, CRITICAL, THROTTLED),
        (65, THROTTLED, NORMAL),
    ]


def test_other_thresholds() -> None:
    t = Thresholds(throttle_c=60, release_c=50, critical_c=70, critical_hysteresis_c=5)
    assert t.critical_release_c == 65
    assert changes([55, 61, 52, 50, 70, 66, 64, 49], t) == [
        (61, NORMAL, THROTTLED),
        (50, THROTTLED, NORMAL),
        (70, NORMAL, CRITICAL),
        (64, CRITICAL, THROTTLED),
        (49, THROTTLED, NORMAL),
    ]


def test_actions_of_each_transition() -> None:
    assert transition_actions(NORMAL, NORMAL) == ()
    assert transition_actions(NORMAL, THROTTLED) == ("torrent_limit", "placement")
    assert transition_actions(THROTTLED, CRITICAL) == ("pause_heavy", "fan_full")
    assert transition_actions(NORMAL, CRITICAL) == (
        "torrent_limit",
        "placement",
        "pause_heavy",
        "fan_full",
    )
    # leaving critical resumes heavy work; the fan stays at full until release
    assert transition_actions(CRITICAL, THROTTLED) == ("resume_heavy",)
    assert transition_actions(THROTTLED, NORMAL, fan_forced=True) == (
        "torrent_restore",
        "placement_restore",
        "fan_restore",
    )
    assert transition_actions(THROTTLED, NORMAL) == ("torrent_restore", "placement_restore")
    assert transition_actions(CRITICAL, NORMAL, fan_forced=True) == (
        "resume_heavy",
        "torrent_restore",
        "placement_restore",
        "fan_restore",
    )
    # back to critical while the fan is still held at full: no second fan write
    assert transition_actions(THROTTLED, CRITICAL, fan_forced=True) == ("pause_heavy",)


async def test_hot_cluster_from_the_zone_name() -> None:
    acpi = (await discover(Host(ACPI))).clusters
    assert [zone_role(z) for z in ("TZB0", "TZB1", "TZM0", "TZM1", "TZGT")] == [
        "big",
        "big",
        "mid",
        "mid",
        None,
    ]
    assert hot_cpus("TZB1", acpi) == (0, 1, 6, 7)
    assert hot_cpus("TZM0", acpi) == (8, 9, 10, 11)
    assert hot_cpus("TZGT", acpi) == (0, 1, 6, 7)  # not a CPU zone: the biggest cluster
    dt = (await discover(Host(DT))).clusters
    assert hot_cpus("gpu0-thermal", dt) == (8, 9, 10, 11)
    assert hot_cpus("ci700-thermal", dt) == (8, 9, 10, 11)
    qemu = (await discover(Host(QEMU))).clusters
    assert hot_cpus("TZB0", qemu) == ()  # one cluster: nowhere to move to


@pytest.mark.parametrize(
    ("tree", "file", "before", "full"),
    [
        (ACPI, "sys/devices/platform/cix-fan/hwmon/hwmon0/pwm1_enable", "2", "1"),
        (DT, "sys/cix_fan/mode", "normal", "performance"),
    ],
)
async def test_fan_full_and_back(
    tmp_path: Path, tree: Path, file: str, before: str, full: str
) -> None:
    root = tmp_path / "root"
    shutil.copytree(tree, root, symlinks=True)
    host = Host(root, writable=True)  # the test's own copy
    [fan] = fan_controls(host, (await discover(host)).fans)
    assert fan.name == "cix_fan"
    fan.force_full(host)
    assert (root / file).read_text() == full + "\n"
    assert fan.read_mode(host) in ("full", "performance")
    fan.force_full(host)  # already forced: the saved "before" value is kept
    fan.restore(host)
    assert (root / file).read_text() == before + "\n"
    assert not fan.forced


async def test_pwm_fan_goes_to_255_and_back(tmp_path: Path) -> None:
    hw = tmp_path / "sys/devices/platform/pwm-fan/hwmon/hwmon3"
    hw.mkdir(parents=True)
    (hw / "name").write_text("pwm-fan\n")
    (hw / "pwm1").write_text("80\n")
    (hw / "pwm1_enable").write_text("1\n")
    (tmp_path / "sys/class/hwmon").mkdir(parents=True)
    (tmp_path / "sys/class/hwmon/hwmon3").symlink_to(hw)
    host = Host(tmp_path, writable=True)
    [fan] = fan_controls(host, (await discover(host)).fans)
    fan.force_full(host)
    assert (hw / "pwm1").read_text() == "255\n"
    assert fan.read_mode(host) == "pwm 255"
    fan.restore(host)
    assert (hw / "pwm1").read_text() == "80\n"


async def test_a_missing_fan_file_is_a_fan_error_naming_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(ACPI, root, symlinks=True)
    host = Host(root, writable=True)  # the test's own copy
    [fan] = fan_controls(host, (await discover(host)).fans)
    (root / "sys/devices/platform/cix-fan/hwmon/hwmon0/pwm1_enable").unlink()
    with pytest.raises(FanError, match="pwm1_enable: missing"):
        fan.force_full(host)
