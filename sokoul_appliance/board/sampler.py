"""Live figures for `GET /api/system`: uptime, load, memory, per-cluster frequency and load,
temperatures, fans. CPU load is the busy share of /proc/stat ticks between two samples."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from sokoul_appliance.board.cpus import CPU_DIR, Cluster, discover_clusters
from sokoul_appliance.board.sysfs import SysfsReader
from sokoul_appliance.board.thermal import discover_fans, discover_zones
from sokoul_appliance.host import Host

# /proc/stat cpuN columns: user nice system idle iowait irq softirq steal guest guest_nice;
# guest time is already counted in user/nice, so the total is the first eight.
IDLE_COLUMNS = (3, 4)
COUNTED_COLUMNS = 8

CpuTicks = dict[int, tuple[int, int]]  # cpu -> (busy, total)


def parse_proc_stat(reader: SysfsReader) -> CpuTicks:
    text = reader.text("/proc/stat")
    ticks: CpuTicks = {}
    for line in (text or "").splitlines():
        fields = line.split()
        if not fields or not fields[0].startswith("cpu") or fields[0] == "cpu":
            continue
        try:
            cpu = int(fields[0][3:])
            values = [int(v) for v in fields[1 : 1 + COUNTED_COLUMNS]]
        except ValueError:
            reader.note(f"/proc/stat: malformed line {line[:60]!r}")
            continue
        if len(values) < 4:
            reader.note(f"/proc/stat: too few columns in {line[:60]!r}")
            continue
        total = sum(values)
        idle = sum(values[i] for i in IDLE_COLUMNS if i < len(values))
        ticks[cpu] = (total - idle, total)
    return ticks


def cluster_load(cpus: Sequence[int], before: CpuTicks, after: CpuTicks) -> float | None:
    """Busy percentage of ``cpus`` between two samples; None when no tick passed."""
    busy = total = 0
    for cpu in cpus:
        if cpu in before and cpu in after:
            busy += after[cpu][0] - before[cpu][0]
            total += after[cpu][1] - before[cpu][1]
    if total <= 0:
        return None
    return round(min(max(busy / total, 0.0), 1.0) * 100, 1)


def cluster_cur_khz(reader: SysfsReader, cluster: Cluster) -> int | None:
    """The cluster's current frequency: the mean of its policies' ``scaling_cur_freq`` (a
    cluster merges frequency domains that may run at different speeds); None when unknown."""
    if cluster.policies:
        paths = [f"{p}/scaling_cur_freq" for p in cluster.policies]
    else:
        paths = [f"{CPU_DIR}/cpu{cluster.cpus[0]}/cpufreq/scaling_cur_freq"]
    values = [v for p in paths if (v := reader.integer(p, optional=True)) is not None]
    return round(sum(values) / len(values)) if values else None


class SystemSampler:
    """Holds the previous /proc/stat sample; each ``sample()`` reports load since the last one."""

    def __init__(self, host: Host, clusters: Sequence[Cluster] | None = None) -> None:
        self._host = host
        self._clusters: tuple[Cluster, ...] | None = tuple(clusters) if clusters else None
        self._previous: CpuTicks | None = None
        self._lock = asyncio.Lock()

    async def sample(self) -> dict[str, Any]:
        async with self._lock:
            return await asyncio.to_thread(self._sample)

    def _sample(self) -> dict[str, Any]:
        reader = SysfsReader(self._host)
        if self._clusters is None:
            self._clusters = tuple(discover_clusters(reader))
        ticks = parse_proc_stat(reader)
        previous, self._previous = self._previous, ticks
        clusters = []
        for c in self._clusters:
            cur = self._cur_khz(reader, c)
            load = cluster_load(c.cpus, previous, ticks) if previous is not None else None
            clusters.append({**c.to_json(), "cur_khz": cur, "load_percent": load})
        return {
            "uptime_seconds": self._uptime(reader),
            "load_average": self._loadavg(reader),
            "memory": self._memory(reader),
            "clusters": clusters,
            "thermal_zones": [z.to_json() for z in discover_zones(reader)],
            "fans": [f.to_json() for f in discover_fans(reader)],
            "problems": reader.problems,
        }

    @staticmethod
    def _cur_khz(reader: SysfsReader, cluster: Cluster) -> int | None:
        return cluster_cur_khz(reader, cluster)

    @staticmethod
    def _uptime(reader: SysfsReader) -> float | None:
        text = reader.text("/proc/uptime")
        try:
            return float(text.split()[0]) if text else None
        except (ValueError, IndexError):
            reader.note(f"/proc/uptime: malformed ({(text or '')[:40]!r})")
            return None

    @staticmethod
    def _loadavg(reader: SysfsReader) -> list[float] | None:
        text = reader.text("/proc/loadavg")
        try:
            return [float(v) for v in (text or "").split()[:3]] if text else None
        except ValueError:
            reader.note(f"/proc/loadavg: malformed ({(text or '')[:40]!r})")
            return None

    @staticmethod
    def _memory(reader: SysfsReader) -> dict[str, int | None]:
        fields: dict[str, int] = {}
        for line in (reader.text("/proc/meminfo") or "").splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                scale = 1024 if parts[1:] == ["kB"] else 1
                fields[key.strip()] = int(parts[0]) * scale
        for key in ("MemTotal", "MemAvailable"):
            if key not in fields:
                reader.note(f"/proc/meminfo: no {key}")
        return {
            "total_bytes": fields.get("MemTotal"),
            "available_bytes": fields.get("MemAvailable"),
        }
