# ruff: noqa: F821, F722
# (dbus-fast reads D-Bus signatures from string annotations such as "a(sv)": not Python names)
"""A D-Bus service double of systemd (org.freedesktop.systemd1) served with dbus-fast's
ServiceInterface on a real dbus-daemon (``tests/doubles/dbus_daemon.py``).

What it answers, like systemd does:
- Manager at /org/freedesktop/systemd1: GetUnit, LoadUnit, StartUnit, StopUnit, RestartUnit,
  SetUnitProperties, Reload, Subscribe, Unsubscribe; signals JobNew and JobRemoved.
- One object per unit at /org/freedesktop/systemd1/unit/<escaped name> with the Unit interface
  (Id, Description, LoadState, ActiveState, SubState) and its type's interface: Slice / Service
  / Scope (AllowedCPUs, EffectiveCPUs, CPUWeight, ControlGroup), Mount (What, Where, Type,
  Options, Result), an empty one for other types.

It records every Manager call in ``calls`` (method name, arguments as received, time), lets a
test register one hook per method (``double.hook("StartUnit", fn)``: ``fn(call, unit)`` may be
async, may raise ``DBusError`` to answer with an error, and for job methods may return the job
result, e.g. "failed"; a storage test can run ``mount`` there for a .mount unit), and finishes
jobs after ``job_delay`` seconds - or, with ``signal_before_reply``, emits JobRemoved before the
method even replies, which only a client that subscribed first survives.

    double = SystemdDouble(online_cpus=range(12))
    double.add_unit("sokoul-background.slice")
    async with double.serving(address):
        ...
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from dbus_fast import BusType, PropertyAccess, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusError
from dbus_fast.service import ServiceInterface, dbus_property, method, signal

NAME = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
NO_SUCH_UNIT = "org.freedesktop.systemd1.NoSuchUnit"
UNIT_INACTIVE = "org.freedesktop.systemd1.UnitInactive"
CGROUP_TYPES = {
    "slice": "org.freedesktop.systemd1.Slice",
    "service": "org.freedesktop.systemd1.Service",
    "scope": "org.freedesktop.systemd1.Scope",
}
ACTIVE_SUB_STATE = {"service": "running", "mount": "mounted", "slice": "active"}


def cpus_mask(cpus: Iterable[int]) -> bytes:
    wanted = sorted(set(cpus))
    if not wanted:
        return b""
    mask = bytearray(wanted[-1] // 8 + 1)
    for cpu in wanted:
        mask[cpu // 8] |= 1 << (cpu % 8)
    return bytes(mask)


def mask_cpus(mask: bytes) -> set[int]:
    return {i * 8 + b for i, byte in enumerate(mask) for b in range(8) if byte >> b & 1}


def unit_path(name: str) -> str:
    """systemd's bus label escaping: every byte but [A-Za-z0-9] (and a leading digit) -> _xx."""
    out = []
    for i, ch in enumerate(name):
        if ch.isascii() and (ch.isalpha() or (ch.isdigit() and i > 0)):
            out.append(ch)
        else:
            out.extend(f"_{b:02x}" for b in ch.encode())
    return f"{MANAGER_PATH}/unit/{''.join(out)}"


@dataclass
class Call:
    method: str
    args: tuple[Any, ...]
    at: float = field(default_factory=time.monotonic)


@dataclass
class FakeUnit:
    name: str
    active_state: str = "inactive"
    sub_state: str = "dead"
    load_state: str = "loaded"
    description: str = ""
    props: dict[str, Any] = field(default_factory=dict)  # type interface values (plain Python)
    freezer_state: str = "running"  # FreezeUnit / ThawUnit: "frozen" | "running"

    @property
    def path(self) -> str:
        return unit_path(self.name)

    @property
    def kind(self) -> str:
        return self.name.rpartition(".")[2]

    @property
    def allowed_cpus(self) -> set[int]:
        return mask_cpus(self.props.get("AllowedCPUs", b""))


Hook = Callable[[Call, FakeUnit | None], Any]


class UnitInterface(ServiceInterface):
    def __init__(self, unit: FakeUnit) -> None:
        super().__init__("org.freedesktop.systemd1.Unit")
        self._unit = unit

    @dbus_property(access=PropertyAccess.READ)
    def Id(self) -> "s":
        return self._unit.name

    @dbus_property(access=PropertyAccess.READ)
    def Description(self) -> "s":
        return self._unit.description or self._unit.name

    @dbus_property(access=PropertyAccess.READ)
    def LoadState(self) -> "s":
        return self._unit.load_state

    @dbus_property(access=PropertyAccess.READ)
    def ActiveState(self) -> "s":
        return self._unit.active_state

    @dbus_property(access=PropertyAccess.READ)
    def SubState(self) -> "s":
        return self._unit.sub_state

    @dbus_property(access=PropertyAccess.READ)
    def FreezerState(self) -> "s":
        return self._unit.freezer_state


class CgroupInterface(ServiceInterface):
    """The resource-control part of Slice / Service / Scope."""

    def __init__(self, interface: str, unit: FakeUnit, double: "SystemdDouble") -> None:
        super().__init__(interface)
        self._unit = unit
        self._double = double

    @dbus_property(access=PropertyAccess.READ)
    def AllowedCPUs(self) -> "ay":
        return bytes(self._unit.props.get("AllowedCPUs", b""))

    @dbus_property(access=PropertyAccess.READ)
    def EffectiveCPUs(self) -> "ay":
        """What the kernel's cpuset.cpus.effective would say: empty while inactive."""
        if self._unit.active_state != "active":
            return b""
        online = self._double.online_cpus
        allowed = self._unit.allowed_cpus & online
        return cpus_mask(allowed or online)

    @dbus_property(access=PropertyAccess.READ)
    def CPUWeight(self) -> "t":
        return int(self._unit.props.get("CPUWeight", 2**64 - 1))

    @dbus_property(access=PropertyAccess.READ)
    def ControlGroup(self) -> "s":
        if self._unit.active_state != "active":
            return ""
        return f"/{self._unit.name}"


class MountInterface(ServiceInterface):
    def __init__(self, unit: FakeUnit) -> None:
        super().__init__("org.freedesktop.systemd1.Mount")
        self._unit = unit

    @dbus_property(access=PropertyAccess.READ)
    def What(self) -> "s":
        return str(self._unit.props.get("What", ""))

    @dbus_property(access=PropertyAccess.READ)
    def Where(self) -> "s":
        return str(self._unit.props.get("Where", ""))

    @dbus_property(access=PropertyAccess.READ)
    def Type(self) -> "s":
        return str(self._unit.props.get("Type", ""))

    @dbus_property(access=PropertyAccess.READ)
    def Options(self) -> "s":
        return str(self._unit.props.get("Options", ""))

    @dbus_property(access=PropertyAccess.READ)
    def Result(self) -> "s":
        return str(self._unit.props.get("Result", "success"))


class EmptyTypeInterface(ServiceInterface):
    pass


class ManagerInterface(ServiceInterface):
    def __init__(self, double: "SystemdDouble") -> None:
        super().__init__("org.freedesktop.systemd1.Manager")
        self._d = double

    @method()
    async def GetUnit(self, name: "s") -> "o":
        unit = await self._d._enter("GetUnit", (name,), name)
        return self._d._require(unit, name).path

    @method()
    async def LoadUnit(self, name: "s") -> "o":
        await self._d._enter("LoadUnit", (name,), None)
        return self._d._load(name).path

    @method()
    async def StartUnit(self, name: "s", mode: "s") -> "o":
        return await self._d._job("StartUnit", name, mode)

    @method()
    async def StopUnit(self, name: "s", mode: "s") -> "o":
        return await self._d._job("StopUnit", name, mode)

    @method()
    async def RestartUnit(self, name: "s", mode: "s") -> "o":
        return await self._d._job("RestartUnit", name, mode)

    @method()
    async def SetUnitProperties(self, name: "s", runtime: "b", properties: "a(sv)") -> None:
        unit = await self._d._enter("SetUnitProperties", (name, runtime, properties), name)
        unit = self._d._require(unit, name)
        for key, value in properties:
            unit.props[key] = value.value if isinstance(value, Variant) else value

    @method()
    async def FreezeUnit(self, name: "s") -> None:
        await self._freezer("FreezeUnit", name, "frozen")

    @method()
    async def ThawUnit(self, name: "s") -> None:
        await self._freezer("ThawUnit", name, "running")

    async def _freezer(self, method_name: str, name: str, state: str) -> None:
        unit = self._d._require(await self._d._enter(method_name, (name,), name), name)
        if unit.active_state != "active":  # as systemd answers for an inactive unit
            raise DBusError(UNIT_INACTIVE, f"Unit {name} is not active.")
        unit.freezer_state = state

    @method()
    async def Reload(self) -> None:
        await self._d._enter("Reload", (), None)

    @method()
    async def Subscribe(self) -> None:
        await self._d._enter("Subscribe", (), None)
        self._d.subscribed += 1

    @method()
    async def Unsubscribe(self) -> None:
        await self._d._enter("Unsubscribe", (), None)
        self._d.subscribed = max(0, self._d.subscribed - 1)

    @signal()
    def JobNew(self, job_id: "u", job: "o", unit: "s") -> "uos":
        return [job_id, job, unit]

    @signal()
    def JobRemoved(self, job_id: "u", job: "o", unit: "s", result: "s") -> "uoss":
        return [job_id, job, unit, result]


class SystemdDouble:
    def __init__(
        self,
        online_cpus: Iterable[int] = range(2),
        *,
        job_delay: float = 0.0,
        signal_before_reply: bool = False,
    ) -> None:
        self.online_cpus = set(online_cpus)
        self.job_delay = job_delay
        self.signal_before_reply = signal_before_reply
        self.calls: list[Call] = []
        self.units: dict[str, FakeUnit] = {}
        self.jobs_removed: list[tuple[str, str, str, float]] = []  # (job, unit, result, time)
        self.subscribed = 0
        self._hooks: dict[str, Hook] = {}
        self._manager = ManagerInterface(self)
        self._bus: MessageBus | None = None
        self._job_id = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # test API -----------------------------------------------------------------------------

    def add_unit(self, name: str, active_state: str = "inactive", **props: Any) -> FakeUnit:
        unit = FakeUnit(name, props=dict(props))
        self._set_active(unit, active_state == "active")
        self.units[name] = unit
        if self._bus is not None:
            self._export(unit)
        return unit

    def unit(self, name: str) -> FakeUnit:
        return self.units[name]

    def hook(self, method_name: str, fn: Hook | None) -> None:
        """Run ``fn(call, unit)`` on every call of ``method_name`` (None removes it)."""
        if fn is None:
            self._hooks.pop(method_name, None)
        else:
            self._hooks[method_name] = fn

    def calls_to(self, method_name: str) -> list[Call]:
        return [c for c in self.calls if c.method == method_name]

    @contextlib.asynccontextmanager
    async def serving(self, address: str) -> AsyncIterator["SystemdDouble"]:
        bus = await asyncio.wait_for(
            MessageBus(bus_address=address, bus_type=BusType.SESSION).connect(), 10
        )
        self._bus = bus
        try:
            bus.export(MANAGER_PATH, self._manager)
            for unit in self.units.values():
                self._export(unit)
            await asyncio.wait_for(bus.request_name(NAME), 10)
            yield self
        finally:
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._bus = None
            bus.disconnect()

    # behaviour ----------------------------------------------------------------------------

    def _export(self, unit: FakeUnit) -> None:
        assert self._bus is not None
        self._bus.export(unit.path, UnitInterface(unit))
        if unit.kind in CGROUP_TYPES:
            self._bus.export(unit.path, CgroupInterface(CGROUP_TYPES[unit.kind], unit, self))
        elif unit.kind == "mount":
            self._bus.export(unit.path, MountInterface(unit))
        else:
            self._bus.export(
                unit.path, EmptyTypeInterface(f"org.freedesktop.systemd1.{unit.kind.title()}")
            )

    def _load(self, name: str) -> FakeUnit:
        if name not in self.units:  # like systemd: a unit with no file loads as "not-found"
            unit = self.add_unit(name)
            unit.load_state = "not-found"
        return self.units[name]

    @staticmethod
    def _require(unit: FakeUnit | None, name: str) -> FakeUnit:
        if unit is None or unit.load_state == "not-found":
            raise DBusError(NO_SUCH_UNIT, f"Unit {name} not found.")
        return unit

    async def _enter(self, method_name: str, args: tuple[Any, ...], name: str | None) -> Any:
        """Record the call, run its hook; returns the unit named ``name`` (or None)."""
        call = Call(method_name, args)
        self.calls.append(call)
        unit = self.units.get(name) if name is not None else None
        hook = self._hooks.get(method_name)
        if hook is not None:
            result = hook(call, unit)
            if isinstance(result, Awaitable):
                await result
        return unit

    @staticmethod
    def _set_active(unit: FakeUnit, active: bool) -> None:
        unit.active_state = "active" if active else "inactive"
        unit.sub_state = ACTIVE_SUB_STATE.get(unit.kind, "active") if active else "dead"

    async def _job(self, method_name: str, name: str, mode: str) -> str:
        call = Call(method_name, (name, mode))
        self.calls.append(call)
        unit = self._require(self.units.get(name), name)
        self._job_id += 1
        job_id = self._job_id
        job = f"{MANAGER_PATH}/job/{job_id}"
        self._manager.JobNew(job_id, job, name)

        async def finish() -> None:
            if self.job_delay:
                await asyncio.sleep(self.job_delay)
            result = "done"
            hook = self._hooks.get(method_name)
            if hook is not None:
                try:
                    answer = hook(call, unit)
                    if isinstance(answer, Awaitable):
                        answer = await answer
                    if isinstance(answer, str):
                        result = answer
                except Exception:
                    result = "failed"
            if result == "done":
                self._set_active(unit, method_name != "StopUnit")
            elif method_name != "StopUnit":
                unit.active_state, unit.sub_state = "failed", "failed"
            self.jobs_removed.append((job, name, result, time.monotonic()))
            self._manager.JobRemoved(job_id, job, name, result)

        if self.signal_before_reply:
            await finish()
        else:
            task = asyncio.ensure_future(finish())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return job
