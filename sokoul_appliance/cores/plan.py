"""Which CPUs each SOKOUL slice may use, from the discovered clusters (never CPU numbers).

Roles of clusters: ``little`` (the A520s on the Orange Pi 6 Plus), ``mid``, ``big`` (the faster
A720s). Discovery gives each cluster its role; when it does not (an older discovery, another
board), the role is inferred from the cluster's ``(capacity, max_khz)`` rank: the lowest rank is
little, the highest big, anything between mid; one rank only means one kind of core.

Slices:
- background (torrent engine, library scans) on the little cores,
- heavy (transcodes) on the big cores,
- interactive (supervisor, panel, DLNA, streaming) on the rest (mid).
A role a board lacks falls back to "everything but the cores reserved for the others"
(a board without mid cores runs interactive work on the big cores too), and a board with one
kind of core (QEMU) gives every slice every CPU.

``avoid`` (from a thermal ``CpuPlacementRequest``) moves background work off those CPUs: onto
the next cooler role's cores that are not avoided (little, then mid, then big). If every CPU is
avoided, the plan stays as it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

ROLES = ("little", "mid", "big")
INTERACTIVE = "sokoul-interactive.slice"
HEAVY = "sokoul-heavy.slice"
BACKGROUND = "sokoul-background.slice"
SLICES = (INTERACTIVE, HEAVY, BACKGROUND)
SLICE_WORK = {
    INTERACTIVE: "supervisor, panel, DLNA, streaming",
    HEAVY: "transcodes",
    BACKGROUND: "torrent engine, library scans",
}
# which cluster role a slice lives on, and its fallback when the board has no such cores
SLICE_ROLE = {INTERACTIVE: "mid", HEAVY: "big", BACKGROUND: "little"}


class ClusterLike(Protocol):
    @property
    def cpus(self) -> tuple[int, ...]: ...
    @property
    def core(self) -> str: ...
    @property
    def capacity(self) -> int | None: ...
    @property
    def max_khz(self) -> int | None: ...


@dataclass(frozen=True)
class RoleGroup:
    role: str
    cpus: tuple[int, ...]
    cores: tuple[str, ...]  # core types in this role, e.g. ("cortex-a520",)


@dataclass(frozen=True)
class SlicePlan:
    unit: str
    cpus: tuple[int, ...]
    roles: tuple[str, ...]  # cluster roles the CPUs belong to

    def to_json(self) -> dict[str, Any]:
        return {"slice": self.unit, "cpus": list(self.cpus), "roles": list(self.roles)}


def _rank(cluster: ClusterLike) -> tuple[int, int]:
    cap = cluster.capacity if cluster.capacity is not None else -1
    return (cap, cluster.max_khz if cluster.max_khz is not None else -1)


def cluster_roles(clusters: Sequence[ClusterLike]) -> list[str]:
    """The role of each cluster, in order: discovery's ``role`` when it carries one."""
    given = [getattr(c, "role", None) for c in clusters]
    if clusters and all(r in ROLES for r in given):
        return [str(r) for r in given]
    ranks = sorted({_rank(c) for c in clusters})
    out = []
    for cluster in clusters:
        r = _rank(cluster)
        if len(ranks) == 1 or r == ranks[-1]:
            out.append("big")
        elif r == ranks[0]:
            out.append("little")
        else:
            out.append("mid")
    return out


def role_groups(clusters: Sequence[ClusterLike]) -> dict[str, RoleGroup]:
    groups: dict[str, tuple[set[int], set[str]]] = {}
    for cluster, role in zip(clusters, cluster_roles(clusters), strict=True):
        cpus, cores = groups.setdefault(role, (set(), set()))
        cpus.update(cluster.cpus)
        cores.add(cluster.core)
    return {
        role: RoleGroup(role, tuple(sorted(cpus)), tuple(sorted(cores)))
        for role, (cpus, cores) in sorted(groups.items(), key=lambda kv: ROLES.index(kv[0]))
    }


def _roles_of(cpus: Iterable[int], groups: dict[str, RoleGroup]) -> tuple[str, ...]:
    wanted = set(cpus)
    return tuple(role for role, g in groups.items() if wanted & set(g.cpus))


def plan_slices(
    clusters: Sequence[ClusterLike], avoid: Iterable[int] = ()
) -> tuple[SlicePlan, ...]:
    """The three slices' CPU sets (interactive, heavy, background), never empty."""
    groups = role_groups(clusters)
    every = tuple(sorted({cpu for g in groups.values() for cpu in g.cpus}))

    def cpus_of(*roles: str) -> set[int]:
        return {cpu for role in roles if role in groups for cpu in groups[role].cpus}

    if len(groups) <= 1:
        chosen = {unit: set(every) for unit in SLICES}
    else:
        little, mid, big = cpus_of("little"), cpus_of("mid"), cpus_of("big")
        rest = set(every)
        chosen = {
            BACKGROUND: little or (rest - big) or rest,
            HEAVY: big or (rest - little) or rest,
            INTERACTIVE: mid or (rest - little) or rest,
        }
    avoided = set(avoid)
    if avoided & chosen[BACKGROUND]:
        for role in ROLES:
            allowed = cpus_of(role) - avoided
            if allowed:
                chosen[BACKGROUND] = allowed
                break
    return tuple(
        SlicePlan(unit, tuple(sorted(chosen[unit])), _roles_of(chosen[unit], groups))
        for unit in SLICES
    )
