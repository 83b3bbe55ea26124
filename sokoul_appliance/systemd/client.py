"""A small async client of systemd's D-Bus API (org.freedesktop.systemd1) with dbus-fast.

Only what the supervisor needs: set unit properties at runtime (``AllowedCPUs=``), start / stop /
restart a unit and wait for its job to finish, daemon-reload, and read a unit's properties.
Every call has a timeout; every failure becomes a ``SystemdError`` whose message is written for
the person reading the panel (what failed, why, what to do), with the D-Bus detail kept in
``detail`` for the log.

Jobs: the JobRemoved signal is matched and listened to *before* StartUnit is called (systemd
may emit it before our coroutine sees the method's reply), and early signals are kept until the
caller learns its job path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.errors import AuthError, DBusError, InvalidAddressError

from sokoul_appliance.systemd.cpuset import cpus_to_mask, mask_to_cpus

log = logging.getLogger("sokoul.systemd")

SYSTEM_BUS_ADDRESS = "unix:path=/run/dbus/system_bus_socket"
SYSTEMD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
UNIT = "org.freedesktop.systemd1.Unit"
PROPERTIES = "org.freedesktop.DBus.Properties"
DBUS = "org.freedesktop.DBus"
# unit suffix -> the interface carrying that type's own properties (AllowedCPUs, What, ...)
TYPE_INTERFACES = {
    "service": "org.freedesktop.systemd1.Service",
    "slice": "org.freedesktop.systemd1.Slice",
    "scope": "org.freedesktop.systemd1.Scope",
    "mount": "org.freedesktop.systemd1.Mount",
    "socket": "org.freedesktop.systemd1.Socket",
    "timer": "org.freedesktop.systemd1.Timer",
    "target": "org.freedesktop.systemd1.Target",
    "swap": "org.freedesktop.systemd1.Swap",
    "automount": "org.freedesktop.systemd1.Automount",
    "path": "org.freedesktop.systemd1.Path",
}
JOB_REMOVED_MATCH = (
    f"type='signal',sender='{SYSTEMD}',interface='{MANAGER}',"
    f"member='JobRemoved',path='{MANAGER_PATH}'"
)


class SystemdError(Exception):
    """A systemd request failed; ``str(e)`` is for a person, ``detail`` for the log."""

    def __init__(self, message: str, detail: str = "", dbus_name: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail
        self.dbus_name = dbus_name


class SystemdUnavailable(SystemdError):
    """No system bus, or no systemd on it (dev mode on a machine without systemd)."""


@dataclass(frozen=True)
class JobResult:
    job: str  # object path of the finished job
    unit: str
    result: str  # done, canceled, timeout, failed, dependency, skipped


@dataclass(frozen=True)
class UnitState:
    name: str
    path: str
    load_state: str
    active_state: str
    sub_state: str
    properties: dict[str, Any] = field(default_factory=dict)  # the unit type's interface

    @property
    def allowed_cpus(self) -> tuple[int, ...]:
        return mask_to_cpus(self.properties.get("AllowedCPUs", b""))

    @property
    def effective_cpus(self) -> tuple[int, ...]:
        return mask_to_cpus(self.properties.get("EffectiveCPUs", b""))


def unit_type_interface(name: str) -> str:
    suffix = name.rpartition(".")[2]
    if suffix not in TYPE_INTERFACES:
        raise SystemdError(
            f"{name!r} is not a systemd unit name (it needs a type suffix such as .service or "
            ".slice)."
        )
    return TYPE_INTERFACES[suffix]


def _unwrap(value: Any) -> Any:
    return value.value if isinstance(value, Variant) else value


class SystemdClient:
    """``async with SystemdClient() as sd: await sd.start_unit("x.service")``.

    ``address`` is a D-Bus address (default: ``$DBUS_SYSTEM_BUS_ADDRESS`` or the system bus
    socket); tests point it at a private ``dbus-daemon``.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float = 5.0,
        job_timeout: float = 90.0,
    ) -> None:
        self.address = address or os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or SYSTEM_BUS_ADDRESS
        self.timeout = timeout
        self.job_timeout = job_timeout
        self._bus: MessageBus | None = None
        self._lock = asyncio.Lock()
        # JobRemoved bookkeeping: signals seen while a job call is in flight, and waiters
        self._job_calls = 0
        self._removed: dict[str, JobResult] = {}
        self._waiters: dict[str, asyncio.Future[JobResult]] = {}

    # connection ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._bus is not None and self._bus.connected

    async def __aenter__(self) -> SystemdClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect to the bus and check that systemd answers there (idempotent)."""
        async with self._lock:
            if self.connected:
                return
            await self._connect()

    async def _connect(self) -> None:
        where = self.address
        try:
            bus = MessageBus(bus_address=where, bus_type=BusType.SYSTEM)
            self._bus = await asyncio.wait_for(bus.connect(), self.timeout)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            self._bus = None
            raise SystemdUnavailable(
                f"The system D-Bus is not reachable ({where}): without it the supervisor cannot "
                "ask systemd to change units. On the appliance, check `systemctl status "
                "dbus.service`; on a development machine without systemd this is expected.",
                detail=repr(e),
            ) from e
        except (OSError, InvalidAddressError, AuthError, TimeoutError) as e:
            self._bus = None
            raise SystemdUnavailable(
                f"Could not connect to the system D-Bus at {where} within {self.timeout:g} s "
                f"({type(e).__name__}: {e}). Check `systemctl status dbus.service`.",
                detail=repr(e),
            ) from e
        bus = self._bus
        bus.add_message_handler(self._on_message)
        try:
            await self._call_raw(
                DBUS,
                "/org/freedesktop/DBus",
                DBUS,
                "AddMatch",
                "s",
                [JOB_REMOVED_MATCH],
                what="listen to systemd's job signals",
            )
            # systemd sends job signals only while some client is subscribed
            try:
                await self._call_raw(
                    SYSTEMD,
                    MANAGER_PATH,
                    MANAGER,
                    "Subscribe",
                    "",
                    [],
                    what="subscribe to systemd's signals",
                )
            except SystemdError as e:
                if e.dbus_name != "org.freedesktop.systemd1.AlreadySubscribed":
                    raise
        except SystemdError:
            bus.disconnect()
            self._bus = None
            raise

    async def close(self) -> None:
        bus, self._bus = self._bus, None
        if bus is None:
            return
        with contextlib.suppress(Exception):
            bus.remove_message_handler(self._on_message)
        bus.disconnect()
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(SystemdError("The connection to systemd was closed."))
        self._waiters.clear()

    # Manager methods ----------------------------------------------------------------------

    async def set_unit_properties(
        self, name: str, properties: Sequence[tuple[str, Variant]], *, runtime: bool = True
    ) -> None:
        """SetUnitProperties: runtime=True lasts until reboot (/run), False persists (/etc)."""
        await self._manager(
            "SetUnitProperties",
            "sba(sv)",
            [name, runtime, [[key, value] for key, value in properties]],
            what=f"change the settings of {name}",
            unit=name,
        )

    async def set_allowed_cpus(
        self, name: str, cpus: Iterable[int], *, runtime: bool = True
    ) -> None:
        """AllowedCPUs= of a slice/service/scope; an empty set lifts the restriction."""
        mask = cpus_to_mask(cpus)
        await self.set_unit_properties(
            name, [("AllowedCPUs", Variant("ay", mask))], runtime=runtime
        )

    async def start_unit(
        self, name: str, mode: str = "replace", timeout: float | None = None
    ) -> JobResult:
        return await self._job("StartUnit", name, mode, "start", timeout)

    async def stop_unit(
        self, name: str, mode: str = "replace", timeout: float | None = None
    ) -> JobResult:
        return await self._job("StopUnit", name, mode, "stop", timeout)

    async def restart_unit(
        self, name: str, mode: str = "replace", timeout: float | None = None
    ) -> JobResult:
        return await self._job("RestartUnit", name, mode, "restart", timeout)

    async def freeze_unit(self, name: str) -> None:
        """FreezeUnit (systemd >= 246): suspend every process of the unit with the cgroup
        freezer (a slice: everything in its scopes and services) until ThawUnit."""
        await self._manager("FreezeUnit", "s", [name], what=f"freeze {name}", unit=name)

    async def thaw_unit(self, name: str) -> None:
        """ThawUnit: the processes FreezeUnit suspended run on."""
        await self._manager("ThawUnit", "s", [name], what=f"thaw {name}", unit=name)

    async def reload(self) -> None:
        """daemon-reload: systemd rereads unit files (after writing one to /etc)."""
        await self._manager("Reload", "", [], what="reload its unit files", timeout=60.0)

    async def get_unit(self, name: str) -> str:
        """Object path of a loaded unit (NoSuchUnit -> SystemdError when it is not loaded)."""
        body = await self._manager("GetUnit", "s", [name], what=f"find {name}", unit=name)
        return str(body[0])

    async def load_unit(self, name: str) -> str:
        """Object path of a unit, loading it from disk if needed."""
        body = await self._manager("LoadUnit", "s", [name], what=f"load {name}", unit=name)
        return str(body[0])

    async def unit_properties(self, name: str, interface: str | None = None) -> dict[str, Any]:
        """All properties of one interface of a unit (default: its type's, e.g. Slice)."""
        path = await self.load_unit(name)
        return await self._get_all(path, interface or unit_type_interface(name), name)

    async def unit_state(self, name: str) -> UnitState:
        path = await self.load_unit(name)
        unit = await self._get_all(path, UNIT, name)
        props = await self._get_all(path, unit_type_interface(name), name)
        return UnitState(
            name=name,
            path=path,
            load_state=str(unit.get("LoadState", "")),
            active_state=str(unit.get("ActiveState", "")),
            sub_state=str(unit.get("SubState", "")),
            properties=props,
        )

    # internals ----------------------------------------------------------------------------

    async def _get_all(self, path: str, interface: str, name: str) -> dict[str, Any]:
        body = await self._call_raw(
            SYSTEMD,
            path,
            PROPERTIES,
            "GetAll",
            "s",
            [interface],
            what=f"read the state of {name}",
            unit=name,
        )
        return {key: _unwrap(value) for key, value in dict(body[0]).items()}

    async def _manager(
        self,
        member: str,
        signature: str,
        body: list[Any],
        *,
        what: str,
        unit: str | None = None,
        timeout: float | None = None,
    ) -> list[Any]:
        return await self._call_raw(
            SYSTEMD,
            MANAGER_PATH,
            MANAGER,
            member,
            signature,
            body,
            what=what,
            unit=unit,
            timeout=timeout,
        )

    async def _call_raw(
        self,
        destination: str,
        path: str,
        interface: str,
        member: str,
        signature: str,
        body: list[Any],
        *,
        what: str,
        unit: str | None = None,
        timeout: float | None = None,
    ) -> list[Any]:
        bus = self._bus
        if bus is None or not bus.connected:
            # first use, or the bus went away (dbus restarted): connect now; every room that
            # holds a client (storage mounts, the torrent unit, the CPU slices) gets a working
            # one without its own connect step. SystemdUnavailable says why when it cannot.
            await self.connect()
            bus = self._bus
            if bus is None or not bus.connected:
                raise SystemdUnavailable(
                    f"Cannot {what}: not connected to systemd (the system D-Bus at {self.address})."
                )
        limit = timeout if timeout is not None else self.timeout
        message = Message(
            destination=destination,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=body,
        )
        try:
            reply = await asyncio.wait_for(bus.call(message), limit)
        except TimeoutError as e:
            raise SystemdError(
                f"systemd did not answer within {limit:g} s when asked to {what}. It may be busy "
                "(starting or stopping many units); try again, and check `systemctl status` "
                "if it keeps happening.",
                detail=f"{interface}.{member} timed out",
            ) from e
        except (OSError, EOFError, DBusError) as e:
            raise SystemdUnavailable(
                f"The connection to systemd broke while asking it to {what}: {e}.",
                detail=repr(e),
            ) from e
        if reply is None:
            return []
        if reply.message_type == MessageType.ERROR:
            text = str(reply.body[0]) if reply.body else ""
            raise _error_for(reply.error_name or "", text, what, unit, f"{interface}.{member}")
        return list(reply.body)

    async def _job(
        self, member: str, name: str, mode: str, verb: str, timeout: float | None
    ) -> JobResult:
        limit = timeout if timeout is not None else self.job_timeout
        with self._collect_jobs():
            body = await self._manager(member, "ss", [name, mode], what=f"{verb} {name}", unit=name)
            job = str(body[0])
            finished = self._removed.pop(job, None)
            if finished is None:
                fut: asyncio.Future[JobResult] = asyncio.get_running_loop().create_future()
                self._waiters[job] = fut
                try:
                    finished = await asyncio.wait_for(fut, limit)
                except TimeoutError as e:
                    raise SystemdError(
                        f"systemd accepted the request to {verb} {name} but did not finish it "
                        f"within {limit:g} s. See `systemctl status {name}` and "
                        f"`journalctl -u {name}`.",
                        detail=f"job {job} still pending",
                    ) from e
                finally:
                    self._waiters.pop(job, None)
        if finished.result != "done":
            raise SystemdError(
                f"systemd could not {verb} {name} (job result: {finished.result}). See "
                f"`systemctl status {name}` and `journalctl -u {name}` for why.",
                detail=f"{member} {name}: JobRemoved result {finished.result}",
            )
        return finished

    @contextlib.contextmanager
    def _collect_jobs(self) -> Iterator[None]:
        self._job_calls += 1
        try:
            yield
        finally:
            self._job_calls -= 1
            if self._job_calls == 0:
                self._removed.clear()

    def _on_message(self, msg: Message) -> None:
        if (
            msg.message_type != MessageType.SIGNAL
            or msg.interface != MANAGER
            or msg.member != "JobRemoved"
            or msg.path != MANAGER_PATH
            or msg.signature != "uoss"
        ):
            return
        _job_id, job, unit, result = msg.body
        done = JobResult(str(job), str(unit), str(result))
        log.debug("job %s for %s finished: %s", job, unit, result)
        fut = self._waiters.pop(done.job, None)
        if fut is not None:
            if not fut.done():
                fut.set_result(done)
        elif self._job_calls:
            self._removed[done.job] = done


def _error_for(name: str, text: str, what: str, unit: str | None, call: str) -> SystemdError:
    detail = f"{call}: {name}: {text}"
    if name == "org.freedesktop.systemd1.NoSuchUnit":
        return SystemdError(
            f"Cannot {what}: systemd knows no unit {unit!r} ({text}). Is its unit file installed "
            "in /usr/lib/systemd/system (the image build puts it there)?",
            detail=detail,
            dbus_name=name,
        )
    if name in (
        "org.freedesktop.DBus.Error.ServiceUnknown",
        "org.freedesktop.DBus.Error.NameHasNoOwner",
    ):
        return SystemdUnavailable(
            f"Cannot {what}: systemd is not on this D-Bus. On the appliance, systemd is PID 1 and "
            "always there; on a development machine without systemd this is expected.",
            detail=detail,
            dbus_name=name,
        )
    if name in (
        "org.freedesktop.DBus.Error.AccessDenied",
        "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired",
    ):
        return SystemdError(
            f"Cannot {what}: systemd refused the request ({text}). The supervisor has to run as "
            "root (sokoul-supervisor.service does).",
            detail=detail,
            dbus_name=name,
        )
    if name == "org.freedesktop.DBus.Error.NoReply":
        return SystemdError(
            f"Cannot {what}: systemd did not reply ({text}). It may be busy; try again.",
            detail=detail,
            dbus_name=name,
        )
    return SystemdError(
        f"Cannot {what}: systemd answered {text or name}.", detail=detail, dbus_name=name
    )
