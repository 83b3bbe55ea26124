"""The governor's state machine, pure: temperatures in, states and actions out.

normal --(>= throttle_c)--> throttled --(>= critical_c)--> critical
normal --(>= critical_c)--> critical                      (a jump skips nothing: see actions)
throttled --(<= release_c)--> normal
critical --(< critical_c - hysteresis)--> throttled, or --(<= release_c)--> normal

The gaps (release_c below throttle_c, and critical_c minus a hysteresis below critical_c) are
what keeps a temperature hovering at a threshold from flapping the state.
"""

from __future__ import annotations

from dataclasses import dataclass

NORMAL = "normal"
THROTTLED = "throttled"
CRITICAL = "critical"
STATES = (NORMAL, THROTTLED, CRITICAL)
STATE_VALUE = {NORMAL: 0, THROTTLED: 1, CRITICAL: 2}

CRITICAL_HYSTERESIS_C = 5.0

# action names (also the `action` label of sokoul_thermal_actions_total: a fixed set)
TORRENT_LIMIT = "torrent_limit"
TORRENT_RESTORE = "torrent_restore"
PLACEMENT = "placement"
PLACEMENT_RESTORE = "placement_restore"
PAUSE_HEAVY = "pause_heavy"
RESUME_HEAVY = "resume_heavy"
FAN_FULL = "fan_full"
FAN_RESTORE = "fan_restore"
ACTIONS = (
    TORRENT_LIMIT,
    TORRENT_RESTORE,
    PLACEMENT,
    PLACEMENT_RESTORE,
    PAUSE_HEAVY,
    RESUME_HEAVY,
    FAN_FULL,
    FAN_RESTORE,
)


@dataclass(frozen=True)
class Thresholds:
    throttle_c: float = 75
    release_c: float = 70
    critical_c: float = 90
    critical_hysteresis_c: float = CRITICAL_HYSTERESIS_C

    @property
    def critical_release_c(self) -> float:
        """Leave critical only below this (critical_c minus the hysteresis)."""
        return self.critical_c - self.critical_hysteresis_c

    def to_json(self) -> dict[str, float]:
        return {
            "throttle_c": self.throttle_c,
            "release_c": self.release_c,
            "critical_c": self.critical_c,
            "critical_release_c": self.critical_release_c,
        }


def next_state(state: str, temp_c: float, t: Thresholds) -> str:
    """The state after reading ``temp_c`` (the hottest zone) in ``state``."""
    if temp_c >= t.critical_c:
        return CRITICAL
    if state == CRITICAL:
        if temp_c <= t.release_c:
            return NORMAL
        return THROTTLED if temp_c < t.critical_release_c else CRITICAL
    if state == THROTTLED:
        return NORMAL if temp_c <= t.release_c else THROTTLED
    return THROTTLED if temp_c >= t.throttle_c else NORMAL


def transition_actions(old: str, new: str, fan_forced: bool = False) -> tuple[str, ...]:
    """What to do when the state goes from ``old`` to ``new`` (in this order); ``fan_forced``:
    the governor holds the fan at full (from an earlier critical).

    Throttling (entered from normal, also on a jump straight to critical) lowers torrent rates
    and moves background work off the hot cluster; critical adds pausing heavy work and the fan
    at full. Leaving critical resumes heavy work at once (it is what people notice), but the fan
    stays at full until the release temperature, so resumed work does not climb straight back.
    Back to normal restores everything still in force.
    """
    if old == new:
        return ()
    actions: list[str] = []
    if old == NORMAL:  # to throttled or critical
        actions += [TORRENT_LIMIT, PLACEMENT]
    if new == CRITICAL:
        actions.append(PAUSE_HEAVY)
        if not fan_forced:
            actions.append(FAN_FULL)
    if old == CRITICAL:
        actions.append(RESUME_HEAVY)
    if new == NORMAL:
        actions += [TORRENT_RESTORE, PLACEMENT_RESTORE]
        if fan_forced or old == CRITICAL:
            actions.append(FAN_RESTORE)
    return tuple(actions)
