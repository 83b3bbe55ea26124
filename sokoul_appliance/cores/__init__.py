"""The cores room: SOKOUL's systemd slices pinned to CPU clusters (``CoreGovernor``)."""

from sokoul_appliance.cores.governor import CoreGovernor, SliceChange
from sokoul_appliance.cores.plan import (
    BACKGROUND,
    HEAVY,
    INTERACTIVE,
    SLICES,
    SlicePlan,
    cluster_roles,
    plan_slices,
)

__all__ = [
    "BACKGROUND",
    "HEAVY",
    "INTERACTIVE",
    "SLICES",
    "CoreGovernor",
    "SliceChange",
    "SlicePlan",
    "cluster_roles",
    "plan_slices",
]
