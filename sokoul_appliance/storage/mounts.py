"""Mount units: written atomically under /etc/systemd/system, started through systemd.

The storage room never runs ``mount`` itself on the appliance: it writes ``srv-media.mount`` /
``srv-cold.mount`` (What= the filesystem UUID, so a drive that changes its kernel name between
boots still mounts at the same place) and asks systemd, through :class:`UnitControl`, to start
or stop them. ``nofail`` keeps a boot without the drive from hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Protocol

from sokoul_appliance.host import Host
from sokoul_appliance.storage.roles import FSTYPE, TITLES, DriveRecord

UNIT_DIR = "/etc/systemd/system"
WANTS_DIR = "/etc/systemd/system/local-fs.target.wants"
PROBE_NAME = ".sokoul-probe"
PROBE_TIMEOUT = 10.0


class UnitControl(Protocol):
    """What the storage room needs from systemd (implemented over D-Bus by the systemd room;
    tests use a double that runs mount/umount from the unit's What=/Where=)."""

    async def reload(self) -> None:
        """systemctl daemon-reload: pick up unit files written since the last reload."""

    async def start_unit(self, name: str) -> object:
        """Start the unit and return once the job finished; raise when it failed (the result,
        e.g. the systemd room's JobResult, is not used)."""

    async def stop_unit(self, name: str) -> object:
        """Stop the unit and return once the job finished; raise when it failed."""


def mount_unit_text(record: DriveRecord) -> str:
    if not record.uuid:
        raise ValueError(f"{record.role} drive has no filesystem UUID yet")
    return (
        "# Written by the SOKOUL supervisor (storage room); changes are overwritten.\n"
        "[Unit]\n"
        f"Description=SOKOUL {TITLES[record.role]} ({record.label})\n"
        "Documentation=file:/usr/share/doc/sokoul/storage.md\n"
        "\n"
        "[Mount]\n"
        f"What=/dev/disk/by-uuid/{record.uuid}\n"
        f"Where={record.where}\n"
        f"Type={FSTYPE}\n"
        "Options=defaults,noatime,nofail,x-systemd.device-timeout=10s\n"
        "TimeoutSec=120\n"
        "\n"
        "[Install]\n"
        "WantedBy=local-fs.target\n"
    )


def parse_unit(text: str) -> dict[str, str]:
    """Key=value pairs of a unit file (last one wins; sections flattened)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def write_atomic(path: Path, text: str) -> None:
    """temp file + fsync + rename + fsync of the directory: the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def install_unit(host: Host, record: DriveRecord) -> bool:
    """Write the role's mount unit and its local-fs.target.wants link; True when anything
    changed (the caller then reloads systemd). Blocking: call in a worker thread."""
    unit = host.path(f"{UNIT_DIR}/{record.unit}")
    text = mount_unit_text(record)
    changed = False
    with contextlib.suppress(FileNotFoundError):
        if unit.read_text() == text:
            text = ""
    if text:
        write_atomic(unit, text)
        changed = True
    link = host.path(f"{WANTS_DIR}/{record.unit}")
    if not link.is_symlink():
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(f".{link.name}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(f"../{record.unit}")
        os.replace(tmp, link)
        fsync_dir(link.parent)
        changed = True
    host.path(record.where).mkdir(parents=True, exist_ok=True)
    return changed


def remove_unit(host: Host, unit_name: str) -> None:
    for path in (f"{WANTS_DIR}/{unit_name}", f"{UNIT_DIR}/{unit_name}"):
        with contextlib.suppress(FileNotFoundError):
            host.path(path).unlink()


def _probe(path: Path) -> str | None:
    if not os.path.ismount(path):
        return "its filesystem is not mounted"
    probe = path / PROBE_NAME
    data = os.urandom(16)
    try:
        with open(probe, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        with open(probe, "rb") as f:
            back = f.read()
        probe.unlink()
    except OSError as e:
        return f"it fails to read or write ({e.strerror or e})"
    if back != data:
        return "it returned different bytes than were written"
    return None


async def probe_mount(host: Host, where: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None when ``where`` is a mounted filesystem that takes a small write and reads it back;
    otherwise what is wrong. The check runs in a worker thread: a hung drive cannot stall the
    event loop (the thread is abandoned after ``timeout``)."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(_probe, host.path(where)), timeout)
    except TimeoutError:
        return f"it did not answer within {timeout:.0f} s"
