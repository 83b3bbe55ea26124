"""Formatting a drive for a role: only on explicit confirmation, never the system drive.

The check runs against what discovery reports *at format time* (not what the wizard saw): the
typed text must equal the drive's ``confirm_text`` ("<model> <serial>"), the drive must report
a serial, must not hold the running system and must not already serve another role.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping

from sokoul_appliance.board.drives import Drive, discover_drives
from sokoul_appliance.board.sysfs import SysfsReader
from sokoul_appliance.host import CommandError, Host
from sokoul_appliance.storage.roles import FSTYPE, LABELS, TIERS

MKFS_TIMEOUT = 900.0  # mkfs.ext4 with lazy inode tables takes seconds even on large drives


class FormatRefused(Exception):
    """The drive was not formatted; the message says why and what to do."""


async def current_drives(host: Host) -> list[Drive]:
    """The drives as discovery sees them right now (sysfs reads in a worker thread)."""
    return await asyncio.to_thread(lambda: discover_drives(SysfsReader(host)))


def check_format(
    drive: Drive | None,
    name: str,
    role: str,
    confirm_text: str,
    *,
    protected_serials: Collection[str] = (),
    confirmed: Mapping[str, object] | None = None,
) -> Drive:
    """Raise FormatRefused unless formatting ``drive`` for ``role`` is allowed; return it."""
    if role not in TIERS:
        raise FormatRefused(f"{role!r} is not a role a drive can be formatted for (media or cold).")
    if drive is None:
        raise FormatRefused(
            f"There is no drive {name} now. Check that it is plugged in, then reload the "
            "Storage page and choose it again."
        )
    if drive.holds_system:
        raise FormatRefused(
            f"{drive.name} holds the running system and is never formatted. Choose another drive."
        )
    if not drive.serial:
        raise FormatRefused(
            f"{drive.name} reports no serial number, so it cannot be confirmed safely; "
            "it was not formatted."
        )
    if drive.serial in protected_serials:
        raise FormatRefused(
            f"{drive.name} ({drive.confirm_text}) already serves another role; it was not "
            "formatted. Release it from that role first."
        )
    if confirmed is not None and (
        confirmed.get("serial") != drive.serial or confirmed.get("model") != drive.model
    ):
        raise FormatRefused(
            f"{drive.name} is now {drive.confirm_text}, not the drive you confirmed "
            f"({confirmed.get('model')} {confirmed.get('serial')}); nothing was formatted. "
            "Choose the drive again on the Storage page."
        )
    if confirm_text.strip() != drive.confirm_text:
        raise FormatRefused(
            f"The confirmation does not match {drive.name}: type its model and serial exactly "
            f"as shown ({drive.confirm_text}). Nothing was formatted."
        )
    return drive


async def make_filesystem(host: Host, drive: Drive, role: str) -> str:
    """Wipe old signatures, mkfs.ext4 with the role's label; return the new filesystem UUID."""
    device = str(host.path(f"/dev/{drive.name}"))
    await host.run("wipefs", "--all", "--quiet", device, timeout=60)
    # -F once: whole-disk filesystem without a prompt; mke2fs still refuses a mounted device
    await host.run(
        "mkfs.ext4", "-F", "-q", "-m", "0", "-L", LABELS[role], device, timeout=MKFS_TIMEOUT
    )
    found = await probe_filesystem(host, drive.name)
    if found is None or found[1] != FSTYPE:
        raise FormatRefused(f"mkfs.ext4 on {drive.name} left no ext4 filesystem; see the log.")
    return found[0]


async def probe_filesystem(host: Host, name: str) -> tuple[str, str] | None:
    """(UUID, type) of the filesystem on /dev/<name>, read from the device (no blkid cache);
    None when the node is missing or carries no filesystem."""
    device = host.path(f"/dev/{name}")
    if not await asyncio.to_thread(device.exists):
        return None
    try:
        result = await host.run("blkid", "-c", "/dev/null", "-p", "-o", "export", str(device))
    except CommandError:
        return None  # exit 2: no signature found
    fields = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    if "UUID" not in fields:
        return None
    return fields["UUID"], fields.get("TYPE", "")
