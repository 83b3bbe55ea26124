"""The storage manager: applies the wizard's drive plan, keeps the tiers mounted, watches them
(degraded mode), moves cold items, collects finished downloads, exports metrics.

Construct with its collaborators, then ``await start()`` / ``await stop()``::

    StorageManager(host, store, settings, bus, metrics.registry, units, StorageConfig())
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from sokoul_appliance.board.drives import Drive
from sokoul_appliance.bus import EventBus
from sokoul_appliance.events import (
    ItemPlayed,
    SettingsChanged,
    StorageDegraded,
    StorageItemMoved,
    StorageItemsRemoved,
    StorageRecovered,
)
from sokoul_appliance.host import Host
from sokoul_appliance.storage.formatting import (
    FormatRefused,
    check_format,
    current_drives,
    make_filesystem,
    probe_filesystem,
)
from sokoul_appliance.storage.gc import SeedingGC
from sokoul_appliance.storage.health import DriveHealth, StorageMetrics, read_drive_health
from sokoul_appliance.storage.migration import (
    TO_COLD,
    TO_MEDIA,
    MigrationError,
    MigrationOptions,
    MigrationResult,
    Migrator,
    tree_files,
)
from sokoul_appliance.storage.mounts import UnitControl, install_unit, probe_mount, remove_unit
from sokoul_appliance.storage.placement import (
    CATEGORIES,
    LIBRARY,
    Placement,
    StorageUnavailable,
    area_path,
    check_item,
    unit_of_path,
)
from sokoul_appliance.storage.roles import (
    COLD,
    LABELS,
    MEDIA,
    MOUNT_POINTS,
    SYSTEM,
    TIERS,
    TITLES,
    DriveRecord,
)
from sokoul_appliance.storage.tiering import ItemFacts, TieringRules, choose_cold_items
from sokoul_appliance.store.database import Store
from sokoul_appliance.store.settings import Settings
from sokoul_appliance.tasks import cancel_and_wait

log = logging.getLogger("sokoul.storage")

UNIT_TIMEOUT = 120.0

# role states
OK = "ok"
DEGRADED = "degraded"
ERROR = "error"
WAITING = "waiting"  # recorded, not mounted yet


@dataclass(frozen=True)
class StorageConfig:
    monitor_interval: float = 2.0  # health probe of each mounted tier
    gc_interval: float = 3600.0  # seeding GC (and watched cleanup when enabled)
    tiering_interval: float = 600.0  # check the media watermark
    health_interval: float = 60.0  # smart logs
    # the tiering rules and the watched-media cleanup are household choices: they live in
    # Settings (storage.free_watermark_percent, storage.cold_after_days,
    # storage.cleanup_watched_days) and are read at every evaluation
    migration: MigrationOptions = field(default_factory=MigrationOptions)
    # an item played from the cold tier comes back to the media drive (in the background,
    # while it streams from cold) when it fits there above the free-space watermark
    recall_on_play: bool = True


@dataclass
class RoleState:
    record: DriveRecord
    state: str = WAITING
    problem: str = ""
    usage: tuple[int, int] | None = None  # (size, free)
    reported_degraded: bool = False
    # a format/adopt/plan is starting its mount unit: the monitor leaves the role alone
    # (it would find nothing mounted yet, report the new drive as failing and bounce it)
    mounting: bool = False


class StorageManager:
    name = "storage"
    title = "Storage"

    def __init__(
        self,
        host: Host,
        store: Store,
        settings: Settings,
        bus: EventBus,
        registry: CollectorRegistry,
        units: UnitControl,
        config: StorageConfig | None = None,
        read_only: bool = False,
    ) -> None:
        # against a simulated board: show drives and the saved plan, never format/mount/move
        self.read_only = read_only
        self._host = host
        self._store = store
        self._settings = settings
        self._bus = bus
        self._units = units
        self.config = config or StorageConfig()
        self.metrics = StorageMetrics(registry)
        self._roles: dict[str, RoleState] = {}
        self._plan_problem = ""
        self._lock = asyncio.Lock()
        self._plan_lock = asyncio.Lock()
        self._check_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._recalling: set[str] = set()  # items being brought back after a play from cold
        # one-shot jobs (a recall after a play from cold, resuming migrations after a
        # recovery); self._tasks holds only the loops that live as long as the manager
        self._jobs: set[asyncio.Task[None]] = set()
        self._actions: deque[dict[str, Any]] = deque(maxlen=20)
        self._drives: list[Drive] = []
        self._health: dict[str, DriveHealth] = {}
        self._system_usage: tuple[int, int] | None = None
        self._gc_pending = 0
        self.placement = Placement(host, self.available)
        self.gc = SeedingGC(host, store)
        self.migrator = Migrator(host, store, self.config.migration, self._moved)
        self._checked = asyncio.Event()  # set after each monitor pass (tests wait on it)

    # ----- lifecycle -------------------------------------------------------------------------
    def _refuse_if_read_only(self) -> None:
        if self.read_only:
            raise StorageUnavailable(
                "this supervisor runs against a simulated board (read-only): no drive is "
                "formatted, mounted or written"
            )

    async def start(self) -> None:
        if self.read_only:
            self._drives = await current_drives(self._host)
            return
        for row in await self._store.fetchall(
            "SELECT role, name, model, serial, uuid, label, state FROM storage_drives"
        ):
            record = DriveRecord(**{k: row[k] for k in row.keys()})  # noqa: SIM118
            self._roles[record.role] = RoleState(record)
        for row in await self._store.fetchall(
            "SELECT ts, action, detail FROM storage_actions ORDER BY id DESC LIMIT 20"
        ):
            self._actions.appendleft(dict(row))
        self._spawn(self._monitor(), "storage-monitor")
        self._spawn(self._follow_plan(), "storage-plan")
        self._spawn(self._follow_playback(), "storage-watched")
        self._spawn(self._every(self.config.gc_interval, self.collect_garbage), "storage-gc")
        self._spawn(self._every(self.config.tiering_interval, self._tier_quietly), "storage-tier")
        self._spawn(self._every(self.config.health_interval, self.refresh_health), "storage-smart")

    async def stop(self) -> None:
        await cancel_and_wait([*self._tasks, *self._jobs])
        self._tasks.clear()

    def _job(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))  # type: ignore[arg-type]

    async def _every(self, interval: float, job: Callable[[], Awaitable[Any]]) -> None:
        await asyncio.sleep(min(interval, self.config.monitor_interval * 2))
        while True:
            try:
                await job()
            except Exception:
                log.exception("storage job %s failed", getattr(job, "__name__", job))
            await asyncio.sleep(interval)

    # ----- state -----------------------------------------------------------------------------
    def available(self, role: str) -> bool:
        if role == SYSTEM:
            return True
        rs = self._roles.get(role)
        return rs is not None and rs.state == OK

    def status(self) -> tuple[str, str]:
        if self.read_only:
            plan = self._settings.get("storage.plan") or {}
            media = plan.get("media_drive")
            saved = (
                f"plan saved (system {plan.get('system_drive')}, media {media or 'none'}"
                f"{', format confirmed' if plan.get('format_media') else ''})"
                if plan
                else "no plan saved yet"
            )
            return "unavailable", (
                f"Simulated board (read-only): {saved}; nothing is formatted or mounted."
            )
        if self._plan_problem:
            return ERROR, self._plan_problem
        errors = [rs.problem for rs in self._roles.values() if rs.state == ERROR]
        if errors:
            return ERROR, " ".join(errors)
        degraded = [rs.problem for rs in self._roles.values() if rs.state == DEGRADED]
        if degraded:
            return DEGRADED, " ".join(degraded)
        if MEDIA not in self._roles:
            return "not_configured", (
                "No media drive is set up: downloads and the library have no place yet. "
                "Choose and confirm a media drive on the Storage page."
            )
        parts = []
        for role in TIERS:
            rs = self._roles.get(role)
            if rs is None:
                continue
            if rs.state != OK:
                parts.append(f"{TITLES[role]} {rs.record.name}: {rs.state}")
                continue
            free = f", {_gib(rs.usage[1])} GiB free of {_gib(rs.usage[0])}" if rs.usage else ""
            parts.append(f"{TITLES[role]} {rs.record.name} at {rs.record.where}{free}")
        state = OK if all(rs.state == OK for rs in self._roles.values()) else WAITING
        text = "; ".join(parts)
        return state, text[:1].upper() + text[1:] + "."

    def snapshot(self) -> dict[str, Any]:
        """Everything the Storage page shows (cached: no I/O here)."""
        state, detail = self.status()
        drives: list[dict[str, Any]] = []
        by_serial = {d.serial: d for d in self._drives if d.serial}
        system = next((d for d in self._drives if d.holds_system), None)
        if system is not None:
            drives.append(
                self._drive_json(
                    SYSTEM,
                    system.name,
                    system.model,
                    system.serial,
                    "/",
                    OK,
                    "",
                    self._system_usage,
                    system.size_bytes,
                )
            )
        for role in TIERS:
            rs = self._roles.get(role)
            if rs is None:
                continue
            r = rs.record
            found = by_serial.get(r.serial or "")
            drives.append(
                self._drive_json(
                    role,
                    found.name if found else r.name,
                    r.model,
                    r.serial,
                    r.where,
                    rs.state,
                    rs.problem,
                    rs.usage,
                    found.size_bytes if found else None,
                )
            )
        current = self.migrator.current
        return {
            "state": state,
            "detail": detail,
            "drives": drives,
            "placement": {
                "downloads": area_path(MEDIA, "downloads"),
                "library": area_path(MEDIA, LIBRARY),
                "cold_library": area_path(COLD, LIBRARY) if COLD in self._roles else None,
            },
            "migrations": [current.to_json()] if current else [],
            "gc_pending": self._gc_pending,
            "rules": {
                "free_watermark": self.tiering_rules().free_watermark,
                "min_idle_days": self.tiering_rules().min_idle_days,
                "cleanup_watched_days": self.cleanup_watched_days(),
            },
            "last_actions": list(reversed(self._actions)),
        }

    def _drive_json(
        self,
        role: str,
        name: str,
        model: str | None,
        serial: str | None,
        mount: str,
        state: str,
        problem: str,
        usage: tuple[int, int] | None,
        size: int | None,
    ) -> dict[str, Any]:
        health = self._health.get(name)
        return {
            "role": role,
            "name": name,
            "model": model,
            "serial": serial,
            "mount": mount,
            "state": state,
            "problem": problem or None,
            "size_bytes": size,
            "fs_size_bytes": usage[0] if usage else None,
            "used_bytes": usage[0] - usage[1] if usage else None,
            "free_bytes": usage[1] if usage else None,
            "wear_ratio": health.wear_ratio if health else None,
            "temperature_c": health.temperature_c if health else None,
        }

    async def _act(self, action: str, detail: str) -> None:
        entry = {"ts": time.time(), "action": action, "detail": detail}
        self._actions.append(entry)
        log.info("%s: %s", action, detail)
        async with self._store.transaction() as db:
            await db.execute(
                "INSERT INTO storage_actions(ts, action, detail) VALUES (?, ?, ?)",
                (entry["ts"], action, detail),
            )

    # ----- the plan, formatting, mounting ----------------------------------------------------
    async def apply_plan(self) -> None:
        """Make the wizard's storage plan true: format (only when confirmed) or adopt the media
        drive, then mount every recorded tier. Safe to call again."""
        self._refuse_if_read_only()
        async with self._plan_lock:
            await self._apply_plan()

    async def _apply_plan(self) -> None:
        plan = self._settings.get("storage.plan") or {}
        media = plan.get("media_drive")
        self._plan_problem = ""
        if media and MEDIA not in self._roles:
            try:
                if plan.get("format_media"):
                    confirmed = plan.get("confirmed") or {}
                    text = " ".join(
                        str(v) for v in (confirmed.get("model"), confirmed.get("serial")) if v
                    )
                    await self.format_drive(media, MEDIA, text, confirmed=confirmed)
                else:
                    await self.adopt_drive(media, MEDIA)
            except FormatRefused as e:
                self._plan_problem = str(e)
                await self._act("refused", str(e))
        for role in TIERS:
            rs = self._roles.get(role)
            if rs is not None and rs.state != OK and rs.record.state == "ready":
                await self._mount(role)

    async def _protected_serials(self, drives: list[Drive], role: str) -> set[str]:
        plan = self._settings.get("storage.plan") or {}
        out = {
            d.serial
            for d in drives
            if d.serial and (d.holds_system or d.name == plan.get("system_drive"))
        }
        out |= {rs.record.serial for r, rs in self._roles.items() if r != role and rs.record.serial}
        return out

    async def format_drive(
        self, name: str, role: str, confirm_text: str, confirmed: dict[str, Any] | None = None
    ) -> DriveRecord:
        """Format ``name`` for ``role`` after checking ``confirm_text`` against discovery now;
        raise FormatRefused (nothing written) otherwise. Then mount it."""
        self._refuse_if_read_only()
        async with self._lock:
            existing = self._roles.get(role)
            if existing is not None and existing.record.state == "ready":
                raise FormatRefused(
                    f"A {TITLES[role]} is already set up ({existing.record.name}); release it "
                    "first. Nothing was formatted."
                )
            drives = await current_drives(self._host)
            self._drives = drives
            drive = next((d for d in drives if d.name == name), None)
            check_format(
                drive,
                name,
                role,
                confirm_text,
                protected_serials=await self._protected_serials(drives, role),
                confirmed=confirmed,
            )
            assert drive is not None
            record = DriveRecord(
                role, drive.name, drive.model, drive.serial, None, LABELS[role], "formatting"
            )
            await self._save(record)
            await self._act("format", f"formatting {drive.name} ({drive.confirm_text}) as {role}")
            uuid = await make_filesystem(self._host, drive, role)
            record = DriveRecord(
                role, drive.name, drive.model, drive.serial, uuid, LABELS[role], "ready"
            )
            await self._save(record)
            self._roles[role] = RoleState(record, mounting=True)
            await self._act("formatted", f"{drive.name} is the {TITLES[role]} (ext4, UUID {uuid})")
        await self._mount(role)
        return record

    async def adopt_drive(self, name: str, role: str) -> DriveRecord:
        """Use a drive's existing ext4 filesystem for ``role`` (no formatting)."""
        self._refuse_if_read_only()
        async with self._lock:
            drives = await current_drives(self._host)
            drive = next((d for d in drives if d.name == name), None)
            if drive is None or drive.holds_system:
                raise FormatRefused(f"{name} is not a drive that can serve as {TITLES[role]}.")
            found = await probe_filesystem(self._host, name)
            if found is None or found[1] != "ext4":
                raise FormatRefused(
                    f"{name} has no ext4 filesystem, so it cannot be used without formatting. "
                    "Choose 'format' and confirm its model and serial on the Storage page."
                )
            record = DriveRecord(
                role, name, drive.model, drive.serial, found[0], LABELS[role], "ready"
            )
            await self._save(record)
            self._roles[role] = RoleState(record, mounting=True)
            await self._act("adopted", f"{name} (UUID {found[0]}) is the {TITLES[role]}")
        await self._mount(role)
        return record

    async def release(self, role: str) -> None:
        """Stop using a role's drive (unmount, remove its unit); its data stays on it."""
        self._refuse_if_read_only()
        async with self._lock:
            rs = self._roles.pop(role, None)
            if rs is None:
                return
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._units.stop_unit(rs.record.unit), UNIT_TIMEOUT)
            await asyncio.to_thread(remove_unit, self._host, rs.record.unit)
            await self._units.reload()
            async with self._store.transaction() as db:
                await db.execute("DELETE FROM storage_drives WHERE role=?", (role,))
            await self._act("released", f"{rs.record.name} no longer serves as {TITLES[role]}")

    async def _save(self, r: DriveRecord) -> None:
        async with self._store.transaction() as db:
            await db.execute(
                "INSERT OR REPLACE INTO storage_drives(role, name, model, serial, uuid, label, "
                "state, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (r.role, r.name, r.model, r.serial, r.uuid, r.label, r.state, time.time()),
            )

    async def _mount(self, role: str) -> None:
        rs = self._roles[role]
        rs.mounting = True
        try:
            try:
                if await asyncio.to_thread(install_unit, self._host, rs.record):
                    await asyncio.wait_for(self._units.reload(), UNIT_TIMEOUT)
                await asyncio.wait_for(self._units.start_unit(rs.record.unit), UNIT_TIMEOUT)
            except Exception as e:  # a failed unit job, a D-Bus error, a timeout
                log.warning("starting %s failed: %s", rs.record.unit, e)
            await self._check(role, mounting=True)
        finally:
            rs.mounting = False

    # ----- monitoring, degraded mode ---------------------------------------------------------
    async def _monitor(self) -> None:
        try:
            await self.apply_plan()
            await self._resume_migrations()
        except Exception:
            log.exception("applying the storage plan failed")
        with contextlib.suppress(Exception):
            await self.refresh_health()
        while True:
            for role in list(self._roles):
                try:
                    await self._check(role)
                    rs = self._roles.get(role)
                    if rs is not None and rs.state == DEGRADED and not rs.mounting:
                        await self._try_recover(role)
                except Exception:
                    log.exception("checking the %s drive failed", role)
            self._system_usage = await self._usage("/")
            self.metrics.set_usage(SYSTEM, self._system_usage)
            self._checked.set()
            self._checked.clear()
            await asyncio.sleep(self.config.monitor_interval)

    async def _follow_plan(self) -> None:
        """The wizard (or the panel) saved a new storage plan: apply it."""
        with self._bus.subscribe(SettingsChanged) as sub:
            while True:
                event = await sub.get()
                if "storage.plan" in event.keys:
                    try:
                        await self.apply_plan()
                    except Exception:
                        log.exception("applying the new storage plan failed")

    async def _follow_playback(self) -> None:
        """An item started playing (the stream room's ItemPlayed): its tiering unit (the film's
        folder, the show, …) was watched now."""
        with self._bus.subscribe(ItemPlayed) as sub:
            while True:
                event = await sub.get()
                where = unit_of_path(event.appliance_path)
                if where is None:
                    continue
                try:
                    await self.record_watched(where[1], role=where[0])
                except Exception:
                    log.exception("recording that %s was watched failed", where[1])
                role, item = where
                if role == COLD and self.config.recall_on_play and item not in self._recalling:
                    self._recalling.add(item)
                    self._job(self._recall_played(item), "storage-recall")

    async def _recall_played(self, item: str) -> None:
        """Bring a cold item that is being watched back to the media drive, when both tiers
        are up and it fits there without going under the watermark (else it stays on cold,
        which streams it as well). The stream already open keeps reading the cold copy until
        it ends (the file is unlinked, not gone); the library follows the move and keeps the
        item's id, so the next request reads the media copy."""
        try:
            if not (self.available(MEDIA) and self.available(COLD)):
                return
            usage = await self._usage(MOUNT_POINTS[MEDIA])
            src = self._host.path(f"{MOUNT_POINTS[COLD]}/{check_item(item)}")
            size = await asyncio.to_thread(lambda: sum(n for _, n in tree_files(src)))
            if usage is None or not size:
                return
            total, free = usage
            if free - size < self.tiering_rules().free_watermark * total:
                await self._act(
                    "kept on cold storage",
                    f"{item} was played from cold storage; the media drive has no room for it "
                    "above the free-space watermark",
                )
                return
            await self.recall(item)
        except Exception as e:
            log.warning("bringing %s back after it was played failed: %s", item, e)
            await self._act("bringing back failed", f"{item}: {e}")
        finally:
            self._recalling.discard(item)

    async def wait_checked(self) -> None:
        """Wait for the end of the next monitor pass."""
        await self._checked.wait()

    async def _usage(self, where: str) -> tuple[int, int] | None:
        try:
            return await asyncio.to_thread(self._host.filesystem_usage, where)
        except OSError:
            return None

    async def _check(self, role: str, mounting: bool = False) -> None:
        async with self._check_lock:  # the monitor and a mount may check at the same time
            await self._check_unlocked(role, mounting)

    async def _check_unlocked(self, role: str, mounting: bool = False) -> None:
        rs = self._roles.get(role)
        if rs is None or rs.record.state != "ready" or (rs.mounting and not mounting):
            return
        problem = await probe_mount(self._host, rs.record.where)
        if problem is None:
            rs.usage = await self._usage(rs.record.where)
            self.metrics.set_usage(role, rs.usage)
            if rs.state != OK:
                await asyncio.to_thread(self.placement.ensure_areas, role)
                rs.state, rs.problem = OK, ""
                self.metrics.degraded.labels(role).set(0)
                if rs.reported_degraded:
                    rs.reported_degraded = False
                    self._bus.publish(StorageRecovered(role))
                    await self._act("recovered", f"the {TITLES[role]} is back at {rs.record.where}")
                    if role == MEDIA or self.available(MEDIA):
                        self._job(self._resume_migrations(), "storage-resume")
            return
        rs.usage = None
        self.metrics.set_usage(role, None)
        if rs.state == DEGRADED:
            return
        who = " ".join(p for p in (rs.record.model, rs.record.serial) if p) or rs.record.name
        rs.problem = (
            f"The {TITLES[role]} ({who}) is missing or failing: {problem}. "
            + ("Downloads are paused; " if role == MEDIA else "Moves to cold storage wait; ")
            + "nothing on the system drive is affected. Check that the drive is seated (or its "
            "cable plugged in); storage resumes by itself when it is back."
        )
        rs.state = DEGRADED
        rs.reported_degraded = True
        self.metrics.degraded.labels(role).set(1)
        self._bus.publish(StorageDegraded(role, rs.problem))
        await self._act("degraded", rs.problem)

    async def _try_recover(self, role: str) -> None:
        """The tier is gone: when a drive with its filesystem UUID is present again, restart
        the mount unit (a stale unit is stopped first) and check again."""
        rs = self._roles[role]
        drives = await current_drives(self._host)
        self._drives = drives
        names = [d.name for d in drives if rs.record.serial and d.serial == rs.record.serial]
        names += [rs.record.name] if rs.record.name not in names else []
        for name in names:
            found = await probe_filesystem(self._host, name)
            if found is not None and found[0] == rs.record.uuid:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._units.stop_unit(rs.record.unit), UNIT_TIMEOUT)
                try:
                    await asyncio.wait_for(self._units.start_unit(rs.record.unit), UNIT_TIMEOUT)
                except Exception as e:
                    log.warning("remounting the %s drive failed: %s", role, e)
                    return
                await self._check(role)
                return

    # ----- placement API for other rooms -----------------------------------------------------
    def downloads_dir(self) -> str:
        return self.placement.downloads_dir()

    def library_dir(self) -> str:
        return self.placement.library_dir()

    async def record_watched(self, item: str, when: float | None = None, role: str = MEDIA) -> None:
        """``item`` (a tiering unit, ``placement.tiering_unit``) was watched at ``when`` (now):
        least recently watched items go to cold first, and the optional cleanup counts from
        it. The stream room's ItemPlayed events land here (``_follow_playback``)."""
        check_item(item)
        async with self._store.transaction() as db:
            await db.execute(
                "INSERT INTO storage_items(item, tier, last_watched) VALUES (?, ?, ?) "
                "ON CONFLICT(item) DO UPDATE SET last_watched=excluded.last_watched, "
                "tier=excluded.tier",
                (item, role, when if when is not None else time.time()),
            )

    async def mark_done_seeding(self, torrent: str, paths: list[str]) -> None:
        await self.gc.mark_done_seeding(torrent, paths)
        self._gc_pending = await self.gc.pending()

    # ----- tiering ---------------------------------------------------------------------------
    async def _tier_quietly(self) -> None:
        if self.available(MEDIA) and self.available(COLD):
            try:
                await self.rebalance()
            except MigrationError as e:
                await self._act("migration failed", str(e))

    def tiering_rules(self) -> TieringRules:
        return TieringRules(
            free_watermark=self._settings.get("storage.free_watermark_percent") / 100,
            min_idle_days=float(self._settings.get("storage.cold_after_days")),
        )

    def cleanup_watched_days(self) -> float | None:
        """Days after the last watch before watched media is deleted; None = never (default)."""
        days = self._settings.get("storage.cleanup_watched_days")
        return float(days) if days else None

    async def rebalance(self) -> list[MigrationResult]:
        """Move the least recently watched library items to the cold tier while the media
        drive's free space is under the watermark."""
        if not (self.available(MEDIA) and self.available(COLD)):
            raise StorageUnavailable("moving items needs both the media and the cold drive")
        usage = await self._usage(MOUNT_POINTS[MEDIA])
        cold = await self._usage(MOUNT_POINTS[COLD])
        if usage is None or cold is None:
            return []
        watched = {
            row["item"]: row["last_watched"]
            for row in await self._store.fetchall("SELECT item, last_watched FROM storage_items")
        }
        facts = await asyncio.to_thread(self._library_facts, watched)
        chosen = choose_cold_items(
            facts, usage[0], usage[1], self.tiering_rules(), time.time(), cold[1]
        )
        moved, errors = await self.migrator.move_many([f.item for f in chosen], TO_COLD)
        for e in errors:
            await self._act("migration failed", str(e))
        return moved

    def _library_facts(self, watched: dict[str, float | None]) -> list[ItemFacts]:
        root = self._host.path(area_path(MEDIA, LIBRARY))

        def entries(folder: Path) -> list[str]:
            if not folder.is_dir() or folder.is_symlink():
                return []
            return [n for n in sorted(os.listdir(folder)) if not n.startswith(".")]

        out = []
        for name in entries(root):
            # the tiering units: each film / show / video folder of the library's own layout
            # (placement.tiering_unit), anything else at the top as it is
            units = (
                [(f"{LIBRARY}/{name}/{sub}", root / name / sub) for sub in entries(root / name)]
                if name in CATEGORIES and (root / name).is_dir()
                else [(f"{LIBRARY}/{name}", root / name)]
            )
            for item, path in units:
                size = sum(s for _, s in tree_files(path))
                out.append(ItemFacts(item, size, watched.get(item), path.stat().st_mtime))
        return out

    async def recall(self, item: str) -> MigrationResult:
        """Bring an item back from the cold tier to the media drive (on demand)."""
        if not (self.available(MEDIA) and self.available(COLD)):
            raise StorageUnavailable("bringing an item back needs both the media and cold drive")
        return await self.migrator.move(item, TO_MEDIA)

    async def _resume_migrations(self) -> None:
        if self.available(MEDIA) and self.available(COLD):
            await self.migrator.resume()

    def _moved(self, result: MigrationResult) -> None:
        self.metrics.migrated.labels(result.direction).inc(result.size_bytes)
        self._bus.publish(StorageItemMoved(result.item, result.direction, result.size_bytes))
        where = "cold storage" if result.direction == TO_COLD else "the media drive"
        detail = f"moved {result.item} ({result.size_bytes} bytes) to {where}"
        self._actions.append({"ts": time.time(), "action": "migrated", "detail": detail})
        log.info(detail)

    # ----- GC, cleanup, health ---------------------------------------------------------------
    async def collect_garbage(self) -> list[str]:
        """Remove downloads marked done-seeding; with cleanup_watched_days, old watched items."""
        if not self.available(MEDIA):
            return []
        removed = await self.gc.collect()
        if removed:
            self._bus.publish(StorageItemsRemoved("seeding_done", tuple(removed)))
            await self._act("gc", f"removed {len(removed)} finished download(s)")
        days = self.cleanup_watched_days()
        if days is not None:
            gone = await self.gc.cleanup_watched(days)
            if gone:
                self._bus.publish(StorageItemsRemoved("watched_cleanup", tuple(gone)))
                await self._act(
                    "cleanup", f"removed {len(gone)} item(s) watched {days:g}+ days ago"
                )
            removed += gone
        self._gc_pending = await self.gc.pending()
        return removed

    async def refresh_health(self) -> None:
        drives = await current_drives(self._host)
        self._drives = drives
        for d in drives:
            health = await read_drive_health(self._host, d.name)
            if health is None:
                self._health.pop(d.name, None)
            else:
                self._health[d.name] = health
            self.metrics.set_health(d.name, health)


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f}"
