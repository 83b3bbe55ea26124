"""Drive roles and where each role lives on the appliance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SYSTEM = "system"
MEDIA = "media"
COLD = "cold"
TIERS = (MEDIA, COLD)  # the roles the storage room formats and mounts

MOUNT_POINTS = {MEDIA: "/srv/media", COLD: "/srv/cold"}
LABELS = {MEDIA: "sokoul-media", COLD: "sokoul-cold"}
TITLES = {SYSTEM: "system drive", MEDIA: "media drive", COLD: "cold-storage drive"}
FSTYPE = "ext4"


def mount_unit_name(where: str) -> str:
    """systemd's unit name for a mount point (`systemd-escape --path --suffix=mount`):
    '/srv/media' -> 'srv-media.mount'."""
    parts = [p for p in where.strip("/").split("/") if p]
    if not parts:
        return "-.mount"
    out = []
    for part in parts:
        escaped = ""
        for i, ch in enumerate(part):
            if ch.isascii() and (ch.isalnum() or ch in ":_" or (ch == "." and i > 0)):
                escaped += ch
            else:
                escaped += "".join(f"\\x{b:02x}" for b in ch.encode())
        out.append(escaped)
    return "-".join(out) + ".mount"


@dataclass(frozen=True)
class DriveRecord:
    """A drive the storage room formatted (or adopted) for a role, as recorded in SQLite."""

    role: str
    name: str
    model: str | None
    serial: str | None
    uuid: str | None
    label: str
    state: str  # "formatting" | "ready"

    @property
    def where(self) -> str:
        return MOUNT_POINTS[self.role]

    @property
    def unit(self) -> str:
        return mount_unit_name(self.where)

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "name": self.name,
            "model": self.model,
            "serial": self.serial,
            "uuid": self.uuid,
            "label": self.label,
            "mount": self.where,
            "unit": self.unit,
        }
