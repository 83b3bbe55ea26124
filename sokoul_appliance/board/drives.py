"""Whole disks (NVMe, SCSI/SATA/USB, virtio), which one holds /, and how to confirm a format."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sokoul_appliance.board.sysfs import SysfsReader, matching, natural_key, pci_addresses

BLOCK = "/sys/block"
DISK_NAME = re.compile(r"nvme\d+n\d+|sd[a-z]+|vd[a-z]+|xvd[a-z]+|hd[a-z]+|mmcblk\d+")
SECTOR = 512  # /sys/block/*/size is always in 512-byte units


@dataclass(frozen=True)
class PcieLink:
    speed: str  # "16.0 GT/s PCIe"
    width: int | None

    def to_json(self) -> dict[str, Any]:
        return {"speed": self.speed, "width": self.width}


@dataclass(frozen=True)
class Drive:
    name: str
    model: str | None
    serial: str | None
    firmware_rev: str | None
    size_bytes: int | None
    pci_path: str | None
    pcie_link: PcieLink | None
    holds_system: bool

    @property
    def confirm_text(self) -> str:
        """What a person types to confirm formatting this drive: '<model> <serial>'."""
        return " ".join(p for p in (self.model, self.serial) if p) or self.name

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "serial": self.serial,
            "size_bytes": self.size_bytes,
            "confirm_text": self.confirm_text,
            "holds_system": self.holds_system,
            "firmware_rev": self.firmware_rev,
            "pci_path": self.pci_path,
            "pcie_link": self.pcie_link.to_json() if self.pcie_link else None,
        }


def root_source(reader: SysfsReader) -> str | None:
    """Kernel name of what /proc/mounts says is mounted at / ('nvme0n1p2'), if it is a /dev node."""
    text = reader.text("/proc/mounts")
    if text is None:
        return None
    source = None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[1] == "/":
            source = fields[0]  # the last mount on / is the one in effect
    if source is None:
        reader.note("/proc/mounts: nothing is mounted at /")
        return None
    if not source.startswith("/dev/") or source == "/dev/root":
        reader.note(f"/proc/mounts: / is on {source!r}, which names no drive")
        return None
    return source.removeprefix("/dev/")


def _pci_device(reader: SysfsReader, name: str, disk_path: str) -> str | None:
    """Appliance path of the PCI function behind a disk, also for NVMe multipath heads."""
    chain = pci_addresses(disk_path)
    if chain:
        return disk_path[: disk_path.index(chain[-1]) + len(chain[-1])]
    # native NVMe multipath: /sys/block/nvme0n1 -> .../nvme-subsystem/nvme-subsys0/nvme0n1,
    # whose subsystem lists its controllers as nvmeN links into the PCI tree
    for ctrl in matching(reader.listdir(f"{BLOCK}/{name}/device"), r"nvme\d+"):
        ctrl_path = reader.resolve(f"{BLOCK}/{name}/device/{ctrl}")
        if ctrl_path and (chain := pci_addresses(ctrl_path)):
            return ctrl_path[: ctrl_path.index(chain[-1]) + len(chain[-1])]
    return None


def _pcie_link(reader: SysfsReader, pci: str) -> PcieLink | None:
    speed = reader.text(f"{pci}/current_link_speed", optional=True)
    if not speed or speed.lower().startswith("unknown"):
        return None
    width = reader.integer(f"{pci}/current_link_width", optional=True)
    return PcieLink(speed, width if width else None)


def discover_drives(reader: SysfsReader) -> list[Drive]:
    root_part = root_source(reader)
    drives = []
    found_root = False
    for name in reader.listdir(BLOCK):
        if not DISK_NAME.fullmatch(name):
            continue  # loop, ram, zram, dm-, md, sr, nbd, mmcblkNbootM, hidden nvmeXcYnZ paths
        path = f"{BLOCK}/{name}"
        disk_path = reader.resolve(path)
        if disk_path is None or not reader.exists(f"{path}/device"):
            continue
        sectors = reader.integer(f"{path}/size")
        if sectors == 0:
            continue  # an empty card reader slot
        virtio = name.startswith("vd")
        model = reader.text(f"{path}/device/model", optional=virtio)
        if virtio and model is None:
            model = "Virtio Block Device"
        if name.startswith("nvme"):
            serial = reader.text(f"{path}/device/serial")
        else:
            serial = reader.text(f"{path}/serial", optional=True) or reader.text(
                f"{path}/device/serial", optional=True
            )
        firmware = reader.text(f"{path}/device/firmware_rev", optional=True) or reader.text(
            f"{path}/device/rev", optional=True
        )
        pci = _pci_device(reader, name, disk_path)
        partitions = {p for p in reader.listdir(path) if reader.exists(f"{path}/{p}/partition")}
        holds_system = root_part is not None and (root_part == name or root_part in partitions)
        found_root = found_root or holds_system
        drives.append(
            Drive(
                name=name,
                model=model or None,
                serial=serial or None,
                firmware_rev=firmware or None,
                size_bytes=None if sectors is None else sectors * SECTOR,
                pci_path=pci.rsplit("/", 1)[-1] if pci else None,
                pcie_link=_pcie_link(reader, pci) if pci else None,
                holds_system=holds_system,
            )
        )
    if root_part is not None and not found_root:
        reader.note(f"/ is on {root_part}, which is on none of the drives found")
    return sorted(drives, key=lambda d: natural_key(d.name))
