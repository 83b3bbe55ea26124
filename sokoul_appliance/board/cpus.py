"""CPU clusters: CPUs of one core type and one performance level, never CPU numbers.

A cluster is every CPU with the same core type, ``cpu_capacity`` and ``cpuinfo_max_freq``: the
cpufreq policies (frequency domains, ``related_cpus``) that share all three are merged, and a
policy that mixes core types is split. The CIX P1 has five CPU PLLs, so the kernel shows five
policies, but three clusters: 4 Cortex-A520, 4 "mid" and 4 "big" Cortex-A720. CPUs no policy
covers (no cpufreq driver, e.g. QEMU TCG) are grouped the same way with no frequency. Core type
comes from ``regs/identification/midr_el1``, else ``/proc/cpuinfo``.

Each cluster gets a role by performance (capacity, then max frequency): the highest is "big",
the lowest (when there are two or more) "little", any other "mid".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sokoul_appliance.board.sysfs import SysfsReader, matching, parse_cpu_list

CPU_DIR = "/sys/devices/system/cpu"
ARM = 0x41
ARM_CORES = {
    0xD03: "cortex-a53",
    0xD05: "cortex-a55",
    0xD08: "cortex-a72",
    0xD0B: "cortex-a76",
    0xD0D: "cortex-a77",
    0xD41: "cortex-a78",
    0xD46: "cortex-a510",
    0xD47: "cortex-a710",
    0xD4D: "cortex-a715",
    0xD80: "cortex-a520",
    0xD81: "cortex-a720",
    0xD82: "cortex-x4",
}


def core_name(implementer: int, part: int) -> str:
    if implementer == ARM and part in ARM_CORES:
        return ARM_CORES[part]
    if implementer == ARM:
        return f"unknown (0x{part:03x})"
    return f"unknown (0x{implementer:02x}:0x{part:03x})"


ROLES = ("little", "mid", "big")


@dataclass(frozen=True)
class Cluster:
    cpus: tuple[int, ...]
    core: str
    capacity: int | None
    max_khz: int | None
    policies: tuple[str, ...]  # appliance paths of its cpufreq policy directories (may be none)
    role: str = "big"  # little | mid | big (see the module docstring)

    def to_json(self) -> dict[str, Any]:
        return {
            "cpus": list(self.cpus),
            "core": self.core,
            "role": self.role,
            "max_khz": self.max_khz,
            "capacity": self.capacity,
        }


def _cpuinfo_parts(reader: SysfsReader) -> dict[int, tuple[int, int]]:
    """CPU number -> (implementer, part) from /proc/cpuinfo's per-processor blocks."""
    text = reader.text("/proc/cpuinfo")
    if text is None:
        return {}
    parts: dict[int, tuple[int, int]] = {}
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip().lower()] = value.strip()
        if "processor" not in fields:
            continue
        try:
            cpu = int(fields["processor"])
            implementer = int(fields["cpu implementer"], 16)
            part = int(fields["cpu part"], 16)
        except (KeyError, ValueError):
            reader.note(
                f"/proc/cpuinfo: processor {fields.get('processor', '?')!r} has no readable "
                "CPU implementer / CPU part"
            )
            continue
        parts[cpu] = (implementer, part)
    return parts


def _core_of(reader: SysfsReader, cpu: int, cpuinfo: dict[int, tuple[int, int]]) -> str:
    midr = reader.integer(f"{CPU_DIR}/cpu{cpu}/regs/identification/midr_el1", optional=True)
    if midr is not None:
        return core_name((midr >> 24) & 0xFF, (midr >> 4) & 0xFFF)
    if cpu in cpuinfo:
        return core_name(*cpuinfo[cpu])
    reader.note(f"cpu{cpu}: core type unknown (no midr_el1 and no /proc/cpuinfo entry)")
    return "unknown"


def discover_clusters(reader: SysfsReader) -> list[Cluster]:
    cpus = sorted(int(n[3:]) for n in matching(reader.listdir(CPU_DIR), r"cpu\d+"))
    if not cpus:
        reader.note(f"{CPU_DIR}: no cpuN directories")
        return []
    cpuinfo = _cpuinfo_parts(reader)
    core = {cpu: _core_of(reader, cpu, cpuinfo) for cpu in cpus}
    capacity = {
        cpu: reader.integer(f"{CPU_DIR}/cpu{cpu}/cpu_capacity", optional=True) for cpu in cpus
    }

    # (core, capacity, max_khz) -> CPUs and the policies they came from
    groups: dict[tuple[str, int | None, int | None], tuple[list[int], list[str]]] = {}
    claimed: set[int] = set()
    policy_dir = f"{CPU_DIR}/cpufreq"
    for policy in matching(reader.listdir(policy_dir), r"policy\d+"):
        path = f"{policy_dir}/{policy}"
        related_text = reader.text(f"{path}/related_cpus")
        if related_text is None:
            continue
        related = parse_cpu_list(related_text)
        if related is None:
            reader.note(f"{path}/related_cpus: not a CPU list ({related_text[:40]!r})")
            continue
        members = [c for c in related if c in core and c not in claimed]
        if len(members) != len(related):
            reader.note(f"{path}/related_cpus: names CPUs that are unknown or in another policy")
        if not members:
            continue
        claimed.update(members)
        max_khz = reader.integer(f"{path}/cpuinfo_max_freq")
        kinds = sorted({core[c] for c in members})
        if len(kinds) > 1:
            reader.note(f"{path}: one frequency domain mixes core types {', '.join(kinds)}")
        for kind in kinds:
            group = tuple(c for c in members if core[c] == kind)
            key = (kind, _capacity(reader, group, capacity), max_khz)
            cpus_of, paths = groups.setdefault(key, ([], []))
            cpus_of.extend(group)
            paths.append(path)

    for cpu in cpus:
        if cpu not in claimed:
            groups.setdefault((core[cpu], capacity[cpu], None), ([], []))[0].append(cpu)

    found = [
        Cluster(tuple(sorted(members_of)), kind, cap, khz, tuple(paths))
        for (kind, cap, khz), (members_of, paths) in groups.items()
    ]
    return sorted(assign_roles(found), key=lambda c: c.cpus)


def cluster_labels(clusters: Sequence[Cluster]) -> list[str]:
    """Short names for logs and metric labels: the role, plus "-cpuN" (its first CPU) when
    several clusters share a role (boards with more than three performance levels)."""
    roles = [c.role for c in clusters]
    return [c.role if roles.count(c.role) == 1 else f"{c.role}-cpu{c.cpus[0]}" for c in clusters]


def performance_key(cluster: Cluster) -> tuple[int, int]:
    """Order clusters slowest first: by capacity, then by the reported max frequency."""
    return (
        -1 if cluster.capacity is None else cluster.capacity,
        -1 if cluster.max_khz is None else cluster.max_khz,
    )


def assign_roles(clusters: list[Cluster]) -> list[Cluster]:
    """little / mid / big by performance; a lone cluster is "big" (it runs everything)."""
    ranked = sorted(clusters, key=performance_key)
    out = []
    for i, c in enumerate(ranked):
        if i == len(ranked) - 1:
            role = "big"
        elif i == 0:
            role = "little"
        else:
            role = "mid"
        out.append(replace(c, role=role))
    return out


def _capacity(
    reader: SysfsReader, cpus: tuple[int, ...], capacity: dict[int, int | None]
) -> int | None:
    values = {capacity[c] for c in cpus if capacity[c] is not None}
    if len(values) > 1:
        reader.note(f"cpus {list(cpus)} share a frequency domain but differ in cpu_capacity")
    return max((v for v in values if v is not None), default=None)
