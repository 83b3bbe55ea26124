"""Cores governor and systemd client against a systemd D-Bus double on a real dbus-daemon."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from dbus_fast import Variant
from dbus_fast.errors import DBusError
from prometheus_client import CollectorRegistry

from sokoul_appliance.board.discovery import Discovery, discover
from sokoul_appliance.bus import EventBus
from sokoul_appliance.cores import BACKGROUND, HEAVY, INTERACTIVE, SLICES, CoreGovernor
from sokoul_appliance.events import CpuPlacementRequest
from sokoul_appliance.host import Host
from sokoul_appliance.systemd import SystemdClient, SystemdError, SystemdUnavailable, mask_to_cpus
from tests.doubles.dbus_daemon import dbus_daemon_binary, private_bus
from tests.doubles.systemd_dbus import Call, FakeUnit, SystemdDouble

REPO = Path(__file__).resolve().parents[2]
ACPI = REPO / "hw/orangepi-6-plus/sim/acpi"
DT = REPO / "hw/orangepi-6-plus/sim/dt"
QEMU = REPO / "hw/qemu-arm64/sim"

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(dbus_daemon_binary() is None, reason="dbus-daemon is not installed"),
]

# tree -> slice -> AllowedCPUs bitmask (bit n of byte n//8 = CPU n). The A520s are cpu2-5 in ACPI
# numbering and cpu0-3 in DT numbering; the fixture trees put big A720s at 0,1,6,7 (ACPI) and
# 8-11 (DT), mid at 8-11 (ACPI) and 4-7 (DT). QEMU virt has one cluster: every slice, both CPUs.
EXPECTED = {
    "acpi": {INTERACTIVE: b"\x00\x0f", HEAVY: b"\xc3", BACKGROUND: b"\x3c"},
    "dt": {INTERACTIVE: b"\xf0", HEAVY: b"\x00\x0f", BACKGROUND: b"\x0f"},
    "qemu": {INTERACTIVE: b"\x03", HEAVY: b"\x03", BACKGROUND: b"\x03"},
}
TREES = {"acpi": ACPI, "dt": DT, "qemu": QEMU}


@pytest.fixture
def bus_address(tmp_path: Path) -> Iterator[str]:
    with private_bus(tmp_path) as address:
        yield address


@pytest.fixture
async def systemd(bus_address: str) -> AsyncIterator[SystemdDouble]:
    double = SystemdDouble(online_cpus=range(12))
    for unit in SLICES:
        double.add_unit(unit)
    async with double.serving(bus_address):
        yield double


async def board(tree: str) -> Discovery:
    return await discover(Host(TREES[tree]))


def allowed_cpus_calls(double: SystemdDouble) -> list[tuple[str, bool, bytes]]:
    out = []
    for call in double.calls_to("SetUnitProperties"):
        name, runtime, props = call.args
        assert [key for key, _ in props] == ["AllowedCPUs"]
        variant = props[0][1]
        assert isinstance(variant, Variant) and variant.signature == "ay"
        out.append((name, runtime, bytes(variant.value)))
    return out


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the timeout")
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("tree", ["acpi", "dt", "qemu"])
async def test_slices_get_their_clusters(
    tree: str, systemd: SystemdDouble, bus_address: str
) -> None:
    found = await board(tree)
    systemd.online_cpus = {cpu for c in found.clusters for cpu in c.cpus}
    registry = CollectorRegistry()
    governor = CoreGovernor(
        EventBus(), SystemdClient(bus_address, timeout=5), found, registry=registry
    )
    await governor.start()
    try:
        assert governor.status()[0] == "ok", governor.status()
        expected = EXPECTED[tree]
        assert allowed_cpus_calls(systemd) == [(unit, True, expected[unit]) for unit in SLICES]
        # every slice was inactive: each got started, and its job waited for
        assert [c.args for c in systemd.calls_to("StartUnit")] == [(u, "replace") for u in SLICES]
        assert [(unit, result) for _, unit, result, _ in systemd.jobs_removed] == [
            (u, "done") for u in SLICES
        ]
        assert systemd.subscribed == 1
        # read back through the client, as `systemctl show -p AllowedCPUs -p EffectiveCPUs` would
        async with SystemdClient(bus_address) as client:
            for unit in SLICES:
                state = await client.unit_state(unit)
                assert state.active_state == "active"
                assert state.properties["AllowedCPUs"] == expected[unit]
                assert state.effective_cpus == state.allowed_cpus
        for unit in SLICES:
            count = bin(int.from_bytes(expected[unit], "little")).count("1")
            value = registry.get_sample_value("sokoul_slice_allowed_cpus", {"slice": unit})
            assert value == count
        snap = governor.snapshot()
        assert [s["slice"] for s in snap["slices"]] == list(SLICES)
        assert all(s["applied"] for s in snap["slices"])
        assert all(s["last_change"]["previous"] is None for s in snap["slices"])
        roles = {s["slice"]: s["roles"] for s in snap["slices"]}
        if tree == "qemu":
            assert len(snap["clusters"]) == 1
            assert {len(s["cpus"]) for s in snap["slices"]} == {2}
        else:
            assert roles == {INTERACTIVE: ["mid"], HEAVY: ["big"], BACKGROUND: ["little"]}
            assert sorted(c["role"] for c in snap["clusters"]) == ["big", "little", "mid"]
    finally:
        await governor.stop()


@pytest.mark.parametrize(
    ("tree", "little", "moved_to"),
    [("dt", (0, 1, 2, 3), b"\xf0"), ("acpi", (2, 3, 4, 5), b"\x00\x0f")],
)
async def test_placement_request_moves_background_and_back(
    tree: str, little: tuple[int, ...], moved_to: bytes, systemd: SystemdDouble, bus_address: str
) -> None:
    found = await board(tree)
    bus = EventBus()
    governor = CoreGovernor(bus, SystemdClient(bus_address), found, clock=lambda: 1000.0)
    await governor.start()
    try:
        home = EXPECTED[tree][BACKGROUND]
        assert len(systemd.calls_to("SetUnitProperties")) == 3

        # the little cluster is the hottest: background moves to the mid cores, nothing else moves
        bus.publish(CpuPlacementRequest(avoid_cpus=little, reason="A520 cluster at 76 °C"))
        await wait_for(lambda: len(systemd.calls_to("SetUnitProperties")) == 4)
        assert allowed_cpus_calls(systemd)[3] == (BACKGROUND, True, moved_to)
        assert systemd.unit(BACKGROUND).props["AllowedCPUs"] == moved_to
        snap = {s["slice"]: s for s in governor.snapshot()["slices"]}
        change = snap[BACKGROUND]["last_change"]
        assert change["reason"] == "A520 cluster at 76 °C"
        assert change["previous"] == list(mask_to_cpus(home))
        assert change["cpus"] == list(mask_to_cpus(moved_to)) and change["at"] == 1000.0
        assert snap[BACKGROUND]["roles"] == ["mid"]
        assert governor.snapshot()["avoid_cpus"] == list(little)

        # restore (each request replaces the previous one; () lifts it)
        bus.publish(CpuPlacementRequest(avoid_cpus=(), reason="temperatures back to normal"))
        await wait_for(lambda: len(systemd.calls_to("SetUnitProperties")) == 5)
        calls = allowed_cpus_calls(systemd)
        assert calls[4] == (BACKGROUND, True, home)
        assert systemd.unit(BACKGROUND).props["AllowedCPUs"] == home
        assert systemd.unit(HEAVY).props["AllowedCPUs"] == EXPECTED[tree][HEAVY]
        snap = {s["slice"]: s for s in governor.snapshot()["slices"]}
        assert snap[BACKGROUND]["last_change"]["reason"] == "temperatures back to normal"
        assert snap[BACKGROUND]["roles"] == ["little"]

        # a hot big cluster: background is not there, so nothing changes (no call at all)
        big = next(c.cpus for c in found.clusters if c.role == "big")
        bus.publish(CpuPlacementRequest(avoid_cpus=big, reason="big cluster hot"))
        await wait_for(lambda: governor.snapshot()["avoid_cpus"] == list(big))
        await asyncio.sleep(0.2)
        assert len(systemd.calls_to("SetUnitProperties")) == 5
        assert governor.status()[0] == "ok"
    finally:
        await governor.stop()


async def test_start_unit_waits_for_job_removed(systemd: SystemdDouble, bus_address: str) -> None:
    systemd.add_unit("sokoul-torrent.service")
    systemd.job_delay = 0.4
    async with SystemdClient(bus_address, job_timeout=5) as client:
        t0 = time.monotonic()
        done = await client.start_unit("sokoul-torrent.service")
        returned = time.monotonic()
        assert done.result == "done" and done.unit == "sokoul-torrent.service"
        assert returned - t0 >= 0.4
        [(job, unit, result, removed_at)] = systemd.jobs_removed
        assert job == done.job and removed_at <= returned
        assert (await client.unit_state("sokoul-torrent.service")).sub_state == "running"

        # JobRemoved emitted before the method reply: only a subscribe-first client sees it
        systemd.job_delay = 0
        systemd.signal_before_reply = True
        done = await asyncio.wait_for(client.stop_unit("sokoul-torrent.service"), 3)
        assert done.result == "done"
        assert systemd.unit("sokoul-torrent.service").active_state == "inactive"
        systemd.signal_before_reply = False

        # a failing job is an error for a person, naming where to look
        systemd.hook("RestartUnit", lambda call, unit: "failed")
        with pytest.raises(SystemdError) as failed:
            await client.restart_unit("sokoul-torrent.service")
        assert "journalctl -u sokoul-torrent.service" in str(failed.value)
        assert "failed" in str(failed.value)

        with pytest.raises(SystemdError) as missing:
            await client.start_unit("nothing-here.service")
        assert missing.value.dbus_name == "org.freedesktop.systemd1.NoSuchUnit"
        assert "knows no unit 'nothing-here.service'" in str(missing.value)

        await client.reload()
        assert [c.method for c in systemd.calls][-1] == "Reload"
        assert (await client.get_unit("sokoul-torrent.service")).endswith(
            "/unit/sokoul_2dtorrent_2eservice"
        )


async def test_hook_per_method_for_mount_units(systemd: SystemdDouble, bus_address: str) -> None:
    """What the storage room will do: a test hook 'mounts' when a .mount unit starts."""
    mounted: list[str] = []

    async def mount(call: Call, unit: FakeUnit | None) -> str:
        assert unit is not None
        mounted.append(unit.props["Where"])
        return "done"

    systemd.add_unit("srv-media.mount", What="/dev/disk/by-uuid/1234", Where="/srv/media")
    systemd.hook("StartUnit", mount)
    async with SystemdClient(bus_address) as client:
        await client.start_unit("srv-media.mount")
        props = await client.unit_properties("srv-media.mount")
    assert mounted == ["/srv/media"]
    assert props["Where"] == "/srv/media" and props["What"] == "/dev/disk/by-uuid/1234"
    assert systemd.unit("srv-media.mount").sub_state == "mounted"


async def test_refused_property_degrades_with_a_message(
    systemd: SystemdDouble, bus_address: str
) -> None:
    def refuse(call: Call, unit: FakeUnit | None) -> None:
        if call.args[0] == HEAVY:
            raise DBusError("org.freedesktop.DBus.Error.AccessDenied", "Access denied")

    systemd.hook("SetUnitProperties", refuse)
    governor = CoreGovernor(EventBus(), SystemdClient(bus_address), await board("dt"))
    await governor.start()
    try:
        state, detail = governor.status()
        assert state == "degraded"
        assert "1 of 3 slices" in detail and "run as root" in detail
        snap = {s["slice"]: s for s in governor.snapshot()["slices"]}
        assert snap[HEAVY]["applied"] is False and "refused" in snap[HEAVY]["error"]
        assert snap[BACKGROUND]["applied"] is True
    finally:
        await governor.stop()


async def test_critical_temperature_freezes_the_heavy_slice_and_release_thaws_it(
    systemd: SystemdDouble, bus_address: str
) -> None:
    """PauseHeavyWork (the thermal governor at critical) freezes sokoul-heavy.slice, i.e.
    every running conversion, through systemd's FreezeUnit; ResumeHeavyWork thaws it; a stop
    never leaves it frozen, and a start thaws what an earlier run left frozen."""
    from sokoul_appliance.events import PauseHeavyWork, ResumeHeavyWork

    bus = EventBus()
    systemd.unit(HEAVY).freezer_state = "frozen"  # an earlier supervisor died at critical
    governor = CoreGovernor(bus, SystemdClient(bus_address), await board("dt"))
    await governor.start()
    try:
        assert [c.args for c in systemd.calls_to("ThawUnit")] == [(HEAVY,)]
        assert systemd.unit(HEAVY).freezer_state == "running"
        assert governor.status()[0] == "ok" and not governor.snapshot()["heavy_frozen"]

        bus.publish(PauseHeavyWork("SoC at 91 °C"))
        await wait_for(lambda: len(systemd.calls_to("FreezeUnit")) == 1)
        assert systemd.calls_to("FreezeUnit")[0].args == (HEAVY,)
        await wait_for(lambda: governor.snapshot()["heavy_frozen"])
        assert systemd.unit(HEAVY).freezer_state == "frozen"
        state, detail = governor.status()
        assert state == "ok" and detail.endswith(" Conversions frozen: SoC at 91 °C.")
        assert governor.snapshot()["heavy_frozen_reason"] == "SoC at 91 °C"
        bus.publish(PauseHeavyWork("SoC at 93 °C"))  # still frozen: no second call
        await wait_for(lambda: governor.snapshot()["heavy_frozen_reason"] == "SoC at 93 °C")
        assert len(systemd.calls_to("FreezeUnit")) == 1
        assert governor.status()[1].endswith(" Conversions frozen: SoC at 93 °C.")

        bus.publish(ResumeHeavyWork("back to 84 °C"))
        await wait_for(lambda: len(systemd.calls_to("ThawUnit")) == 2)
        await wait_for(lambda: not governor.snapshot()["heavy_frozen"])
        assert systemd.unit(HEAVY).freezer_state == "running"
        assert "frozen" not in governor.status()[1]

        # frozen when the supervisor stops: thawed on the way out
        bus.publish(PauseHeavyWork("SoC at 91 °C"))
        await wait_for(lambda: systemd.unit(HEAVY).freezer_state == "frozen")
    finally:
        await governor.stop()
    assert systemd.unit(HEAVY).freezer_state == "running"
    assert len(systemd.calls_to("ThawUnit")) == 3


async def test_a_refused_freeze_is_shown_and_nothing_else_changes(
    systemd: SystemdDouble, bus_address: str
) -> None:
    from sokoul_appliance.events import PauseHeavyWork, ResumeHeavyWork

    def refuse(call: Call, unit: FakeUnit | None) -> None:
        raise DBusError("org.freedesktop.DBus.Error.AccessDenied", "Access denied")

    systemd.hook("FreezeUnit", refuse)
    bus = EventBus()
    governor = CoreGovernor(bus, SystemdClient(bus_address), await board("dt"))
    await governor.start()
    try:
        bus.publish(PauseHeavyWork("SoC at 91 °C"))
        await wait_for(lambda: governor.snapshot()["freeze_error"] is not None)
        state, detail = governor.status()
        assert state == "degraded" and "The heavy slice: " in detail
        assert not governor.snapshot()["heavy_frozen"]
        assert systemd.unit(HEAVY).freezer_state == "running"
        bus.publish(ResumeHeavyWork("back to 80 °C"))  # never frozen: nothing to thaw
        await asyncio.sleep(0.2)
        assert systemd.calls_to("ThawUnit") == []
    finally:
        await governor.stop()


class BootedHost(Host):
    """Claims to be the appliance (booted with systemd: its tree has /run/systemd/system),
    so SliceCommands really runs this machine's systemd-run, which has no systemd to ask."""

    @property
    def live(self) -> bool:
        return True


@pytest.mark.skipif(
    Path("/run/systemd/system").is_dir(), reason="this machine runs systemd: the check may pass"
)
async def test_children_that_cannot_be_placed_run_unplaced_and_degrade(
    systemd: SystemdDouble, bus_address: str, tmp_path: Path
) -> None:
    from sokoul_appliance.cores.scope import SliceCommands

    (tmp_path / "run/systemd/system").mkdir(parents=True)
    slices = SliceCommands(BootedHost(tmp_path))
    assert slices.active and slices.prefix(HEAVY)[:2] == ("systemd-run", "--scope")
    governor = CoreGovernor(EventBus(), SystemdClient(bus_address), await board("dt"))
    await governor.start()
    try:
        assert governor.status()[0] == "ok"
        await slices.check()  # systemd-run here: "System has not been booted with systemd"
        assert not slices.active and slices.prefix(HEAVY) == () and slices.prefix(BACKGROUND) == ()
        assert slices.problem is not None and "run beside the supervisor" in slices.problem
        governor.note_scope_problem(slices.problem)
        state, detail = governor.status()
        assert state == "degraded" and detail.startswith("CPUs: interactive 4-7")
        assert "could not be started in their slices (systemd-run: " in detail
        governor.note_scope_problem(None)
        assert governor.status()[0] == "ok"
    finally:
        await governor.stop()


async def test_a_client_connects_on_first_use(
    systemd: SystemdDouble, bus_address: str, tmp_path: Path
) -> None:
    """The rooms hold a SystemdClient without a connect step of their own (the torrent unit,
    storage mounts): the first call connects; after the bus drops, the next call reconnects."""
    systemd.add_unit("sokoul-torrent.service")
    client = SystemdClient(bus_address, job_timeout=5)
    assert not client.connected
    try:
        await client.reload()
        done = await client.restart_unit("sokoul-torrent.service")
        assert done.result == "done" and client.connected
        await client.close()
        assert not client.connected
        assert (await client.stop_unit("sokoul-torrent.service")).result == "done"
        methods = [c.method for c in systemd.calls]
        assert [m for m in methods if m in ("Reload", "RestartUnit", "StopUnit")] == [
            "Reload",
            "RestartUnit",
            "StopUnit",
        ], methods
    finally:
        await client.close()
    # no bus at all: the call says why, as connect() does
    gone = SystemdClient(f"unix:path={tmp_path}/no-such-bus", timeout=2)
    with pytest.raises(SystemdUnavailable) as e:
        await gone.reload()
    assert "system D-Bus is not reachable" in str(e.value)


async def test_missing_system_bus_is_unavailable(tmp_path: Path) -> None:
    client = SystemdClient(f"unix:path={tmp_path}/no-such-bus", timeout=2)
    governor = CoreGovernor(EventBus(), client, await board("dt"))
    await governor.start()
    try:
        state, detail = governor.status()
        assert state == "unavailable"
        assert "system D-Bus is not reachable" in detail
        assert "dbus.service" in detail
        snap = governor.snapshot()
        assert [s["cpus"] for s in snap["slices"]] == [[4, 5, 6, 7], [8, 9, 10, 11], [0, 1, 2, 3]]
        assert not any(s["applied"] for s in snap["slices"])
    finally:
        await governor.stop()


async def test_bus_without_systemd_is_unavailable(bus_address: str) -> None:
    governor = CoreGovernor(EventBus(), SystemdClient(bus_address, timeout=2), await board("qemu"))
    await governor.start()
    try:
        state, detail = governor.status()
        assert state == "unavailable"
        assert "systemd is not on this D-Bus" in detail
    finally:
        await governor.stop()
