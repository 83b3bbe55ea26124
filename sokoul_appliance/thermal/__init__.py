"""The thermal room: a governor with hysteresis over the board's thermal zones and fan."""

from sokoul_appliance.thermal.governor import ThermalGovernor
from sokoul_appliance.thermal.states import CRITICAL, NORMAL, THROTTLED, Thresholds, next_state

__all__ = ["CRITICAL", "NORMAL", "THROTTLED", "ThermalGovernor", "Thresholds", "next_state"]
