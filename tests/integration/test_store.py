"""The SQLite store on disk: WAL, migrations recorded once, atomic settings, clear errors for a
database that is not one (and the file is left alone)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sokoul_appliance.bus import EventBus
from sokoul_appliance.events import SettingsChanged
from sokoul_appliance.store.database import Store, StoreError
from sokoul_appliance.store.migrations import MIGRATIONS
from sokoul_appliance.store.settings import Settings, SettingsError, flatten_patch


async def test_migrations_wal_and_reopen(tmp_path: Path) -> None:
    store = Store(tmp_path / "s" / "sokoul.db")
    await store.start()
    try:
        assert await store.scalar("PRAGMA journal_mode") == "wal"
        assert await store.scalar("PRAGMA user_version") == len(MIGRATIONS)
        tables = {r[0] for r in await store.fetchall("SELECT name FROM sqlite_master")}
        assert {"settings", "users", "sessions", "wizard_answers"} <= tables
    finally:
        await store.stop()
    assert (tmp_path / "s" / "sokoul.db").stat().st_mode & 0o077 == 0  # holds secrets
    again = Store(tmp_path / "s" / "sokoul.db")
    await again.start()  # migrations are not re-run
    await again.stop()


async def test_settings_are_atomic_and_persist(tmp_path: Path) -> None:
    bus = EventBus()
    store = Store(tmp_path / "sokoul.db")
    await store.start()
    try:
        settings = Settings(store, bus)
        await settings.load()
        with bus.subscribe(SettingsChanged) as sub:
            await settings.update({"thermal.throttle_c": 80, "system.timezone": "Asia/Tokyo"})
            assert (await sub.get()).keys == ("system.timezone", "thermal.throttle_c")
        # one bad key: nothing of the change is written
        with pytest.raises(SettingsError) as e:
            await settings.update({"thermal.critical_c": 85, "system.hostname": "-bad-"})
        assert set(e.value.fields) == {"system.hostname"}
        with pytest.raises(SettingsError) as e:
            await settings.update({"thermal.release_c": 81})  # above throttle (80)
        assert "thermal.release_c" in e.value.fields
        assert settings.get("thermal.critical_c") == 90
        # the storage rules: percent and days, range-checked; cleanup of watched media off
        assert settings.get("storage.cleanup_watched_days") == 0
        with pytest.raises(SettingsError) as e:
            await settings.update(
                {"storage.free_watermark_percent": 95, "storage.cold_after_days": -1}
            )
        assert set(e.value.fields) == {
            "storage.free_watermark_percent",
            "storage.cold_after_days",
        }
        assert "between 1 and 90" in e.value.fields["storage.free_watermark_percent"]
        await settings.update({"storage.free_watermark_percent": 20})
        assert flatten_patch({"storage": {"cleanup_watched_days": 60}}) == {
            "storage.cleanup_watched_days": 60
        }
        assert settings.public_view()["storage"] == {
            "free_watermark_percent": 20,
            "cold_after_days": 30,
            "cleanup_watched_days": 0,
        }
    finally:
        await store.stop()
    store = Store(tmp_path / "sokoul.db")
    await store.start()
    try:
        fresh = Settings(store, EventBus())
        await fresh.load()
        assert fresh.get("thermal.throttle_c") == 80
        assert fresh.get("system.timezone") == "Asia/Tokyo"
        assert fresh.get("thermal.release_c") == 70
    finally:
        await store.stop()


async def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "sokoul.db"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StoreError) as e:
        await Store(path).start()
    assert "is not a usable SQLite database" in str(e.value)
    assert "move it aside" in str(e.value)
    assert path.read_bytes() == b"this is not SQLite" * 100  # left alone for the owner


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "sokoul.db")
    await store.start()
    await store.db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 5}")
    await store.stop()
    with pytest.raises(StoreError) as e:
        await Store(tmp_path / "sokoul.db").start()
    assert "newer" in str(e.value)
