"""Storage room: pure rules (unit names, unit files, format checks, smart logs, tiering, GC
paths, item paths)."""

from __future__ import annotations

import json

import pytest
from prometheus_client import CollectorRegistry

from sokoul_appliance.board.drives import Drive
from sokoul_appliance.storage.formatting import FormatRefused, check_format
from sokoul_appliance.storage.gc import check_download_path
from sokoul_appliance.storage.health import DriveHealth, StorageMetrics, parse_smart_log
from sokoul_appliance.storage.mounts import mount_unit_text, parse_unit
from sokoul_appliance.storage.placement import Placement, StorageUnavailable, check_item
from sokoul_appliance.storage.roles import DriveRecord, mount_unit_name
from sokoul_appliance.storage.tiering import ItemFacts, TieringRules, choose_cold_items


def drive(name: str = "nvme1n1", serial: str | None = "WD1", system: bool = False) -> Drive:
    return Drive(name, "WD Blue", serial, None, 1 << 40, None, None, system)


def test_mount_unit_names_follow_systemd_escaping() -> None:
    assert mount_unit_name("/srv/media") == "srv-media.mount"
    assert mount_unit_name("/srv/cold") == "srv-cold.mount"
    assert mount_unit_name("/") == "-.mount"
    assert mount_unit_name("/srv/my-disk") == "srv-my\\x2ddisk.mount"


def test_mount_unit_mounts_by_uuid_with_nofail() -> None:
    record = DriveRecord("media", "nvme1n1", "WD", "WD1", "1234-abcd", "sokoul-media", "ready")
    unit = parse_unit(mount_unit_text(record))
    assert unit["What"] == "/dev/disk/by-uuid/1234-abcd"
    assert unit["Where"] == "/srv/media"
    assert unit["Type"] == "ext4"
    assert "nofail" in unit["Options"].split(",")
    assert unit["WantedBy"] == "local-fs.target"
    assert record.unit == "srv-media.mount"
    with pytest.raises(ValueError):
        mount_unit_text(DriveRecord("cold", "sda", None, "S", None, "sokoul-cold", "formatting"))


def test_format_check_accepts_only_the_exact_model_and_serial() -> None:
    d = drive()
    assert check_format(d, d.name, "media", "WD Blue WD1") is d
    assert check_format(d, d.name, "media", "  WD Blue WD1 \n") is d
    for text in ("", "WD Blue", "wd blue wd1", "WD Blue WD2", "nvme1n1"):
        with pytest.raises(FormatRefused, match="does not match"):
            check_format(d, d.name, "media", text)


@pytest.mark.parametrize(
    ("d", "role", "protected", "confirmed", "message"),
    [
        (drive(system=True), "media", (), None, "running system"),
        (None, "media", (), None, "no drive nvme1n1"),
        (drive(serial=None), "media", (), None, "no serial"),
        (drive(), "system", (), None, "not a role"),
        (drive(), "cold", ("WD1",), None, "another role"),
        (drive(), "media", (), {"model": "WD Blue", "serial": "OTHER"}, "not the drive you"),
    ],
)
def test_format_check_refusals(
    d: Drive | None,
    role: str,
    protected: tuple[str, ...],
    confirmed: dict[str, str] | None,
    message: str,
) -> None:
    with pytest.raises(FormatRefused, match=message):
        check_format(
            d, "nvme1n1", role, "WD Blue WD1", protected_serials=protected, confirmed=confirmed
        )


def test_smart_log_variants() -> None:
    old = parse_smart_log(json.dumps({"temperature": 318, "percent_used": 3}))
    assert old == DriveHealth(0.03, 44.9)
    new = parse_smart_log(json.dumps({"temperature": "45 °C (318 K)", "percentage_used": "7%"}))
    assert new == DriveHealth(0.07, 45.0)
    assert parse_smart_log(json.dumps({"critical_warning": 0})) == DriveHealth(None, None)
    assert parse_smart_log("[]") == DriveHealth(None, None)


def test_absent_health_exports_no_sample() -> None:
    registry = CollectorRegistry()
    m = StorageMetrics(registry)
    m.set_health("nvme0n1", DriveHealth(0.02, 41.0))
    assert registry.get_sample_value("sokoul_drive_wear_ratio", {"drive": "nvme0n1"}) == 0.02
    m.set_health("nvme0n1", None)
    assert registry.get_sample_value("sokoul_drive_wear_ratio", {"drive": "nvme0n1"}) is None
    assert registry.get_sample_value("sokoul_drive_temperature_celsius", {"drive": "x"}) is None
    m.set_usage("media", (100, 40))
    assert registry.get_sample_value("sokoul_storage_used_bytes", {"role": "media"}) == 60
    m.set_usage("media", None)
    assert registry.get_sample_value("sokoul_storage_free_bytes", {"role": "media"}) is None


def facts(n: int, watched: float | None, size: int = 10, added: float = 0.0) -> ItemFacts:
    return ItemFacts(f"library/{n}", size, watched, added)


def test_tiering_moves_oldest_watched_until_the_watermark() -> None:
    items = [facts(1, 500.0), facts(2, 100.0), facts(3, None, added=50.0), facts(4, 900.0)]
    rules = TieringRules(free_watermark=0.15, min_idle_days=0)
    # 100 bytes, 0 free: want 15 → two items of 10, oldest use first (3 never watched, added 50)
    chosen = choose_cold_items(items, 100, 0, rules, now=1000.0, cold_free_bytes=1000)
    assert [c.item for c in chosen] == ["library/3", "library/2"]
    assert choose_cold_items(items, 100, 15, rules, now=1000.0, cold_free_bytes=1000) == []
    # recently used items stay; the cold tier's free space bounds the move
    idle = TieringRules(free_watermark=0.5, min_idle_days=600 / 86400)
    chosen = choose_cold_items(items, 100, 0, idle, now=1000.0, cold_free_bytes=1000)
    assert [c.item for c in chosen] == ["library/3", "library/2"]  # 1 (500) and 4 are recent
    chosen = choose_cold_items(items, 100, 0, rules, now=1000.0, cold_free_bytes=15)
    assert [c.item for c in chosen] == ["library/3"]


def test_gc_only_removes_inside_downloads() -> None:
    assert check_download_path("/srv/media/downloads/x/y.mkv") == "/srv/media/downloads/x/y.mkv"
    for bad in (
        "/srv/media/downloads",
        "/srv/media/library/x",
        "/srv/media/downloads/../x",
        "downloads/x",
        "/etc/passwd",
    ):
        with pytest.raises(ValueError):
            check_download_path(bad)


def test_item_paths_stay_in_their_area() -> None:
    assert str(check_item("library/Film (2020)")) == "library/Film (2020)"
    for bad in ("library", "/srv/media/library/x", "library/../x", "cache/x", "x"):
        with pytest.raises(ValueError):
            check_item(bad)


def test_tiering_units_follow_the_library_layout() -> None:
    from sokoul_appliance.storage.placement import tiering_unit, unit_of_path

    film = "library/Movies/Heat (1995)"
    assert tiering_unit(f"{film}/Heat (1995).mkv") == film
    assert tiering_unit(f"{film}/Subs/en.srt") == film
    assert tiering_unit(film) == film
    assert tiering_unit("library/Shows/Severance/Season 02/e.mkv") == "library/Shows/Severance"
    assert tiering_unit("library/Videos/Talk/talk.mp4") == "library/Videos/Talk"
    assert tiering_unit("library/Movies/loose.mkv") == "library/Movies/loose.mkv"
    assert tiering_unit("library/clip.mkv") == "library/clip.mkv"
    assert tiering_unit("library/item-3/f.bin") == "library/item-3"
    for none in ("library/Movies", "library", "downloads/x/y.mkv", "library/../etc/x"):
        assert tiering_unit(none) is None, none
    assert unit_of_path(f"/srv/cold/{film}/Heat (1995).mkv") == ("cold", film)
    assert unit_of_path(f"/srv/media/{film}/Heat (1995).mkv") == ("media", film)
    assert unit_of_path("/srv/mediax/library/x.mkv") is None
    assert unit_of_path("/var/lib/sokoul/x.mkv") is None


def test_placement_refuses_an_unavailable_tier(tmp_path: object) -> None:
    from pathlib import Path

    from sokoul_appliance.host import Host

    up = {"media": False}
    placement = Placement(Host(Path(str(tmp_path))), lambda role: up.get(role, False))
    with pytest.raises(StorageUnavailable, match="media drive is not available"):
        placement.downloads_dir()
    up["media"] = True
    assert placement.downloads_dir() == "/srv/media/downloads"
    assert placement.library_dir() == "/srv/media/library"
