"""The storage room: drive roles (system / media / cold), formatting on explicit confirmation,
mounts by UUID through systemd mount units, placement, migration between tiers, GC and
degraded mode. Entry point: :class:`StorageManager` (see docs/storage.md)."""

from sokoul_appliance.storage.formatting import FormatRefused
from sokoul_appliance.storage.manager import StorageConfig, StorageManager
from sokoul_appliance.storage.mounts import UnitControl
from sokoul_appliance.storage.placement import StorageUnavailable

__all__ = [
    "FormatRefused",
    "StorageConfig",
    "StorageManager",
    "StorageUnavailable",
    "UnitControl",
]
