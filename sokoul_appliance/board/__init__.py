"""The board room: what hardware this appliance has, discovered through the host seam."""

from sokoul_appliance.board.cpus import Cluster
from sokoul_appliance.board.discovery import Discovery, discover
from sokoul_appliance.board.drives import Drive, PcieLink
from sokoul_appliance.board.nics import Nic
from sokoul_appliance.board.sampler import SystemSampler
from sokoul_appliance.board.thermal import Fan, ThermalZone

__all__ = [
    "Cluster",
    "Discovery",
    "Drive",
    "Fan",
    "Nic",
    "PcieLink",
    "SystemSampler",
    "ThermalZone",
    "discover",
]
