"""systemd over D-Bus: unit properties, jobs and unit state (``SystemdClient``), CPU masks."""

from sokoul_appliance.systemd.client import (
    SYSTEM_BUS_ADDRESS,
    JobResult,
    SystemdClient,
    SystemdError,
    SystemdUnavailable,
    UnitState,
)
from sokoul_appliance.systemd.cpuset import cpus_to_mask, format_cpu_list, mask_to_cpus

__all__ = [
    "SYSTEM_BUS_ADDRESS",
    "JobResult",
    "SystemdClient",
    "SystemdError",
    "SystemdUnavailable",
    "UnitState",
    "cpus_to_mask",
    "format_cpu_list",
    "mask_to_cpus",
]
