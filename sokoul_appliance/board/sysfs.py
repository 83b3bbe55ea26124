"""Tolerant reads of sysfs/procfs through the host seam, for the board room's worker threads.

Every method is synchronous (callers run it in ``asyncio.to_thread``) and never raises for a
missing, unreadable or malformed file: it returns None / an empty list and, unless the file is
optional, records a sentence in ``problems`` naming the appliance path and what was wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sokoul_appliance.host import Host, HostPathError

PCI_ADDRESS = re.compile(r"^([0-9a-f]{4,8}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$")


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key putting 'thermal_zone2' before 'thermal_zone10' and 'nvme2n1' before 'nvme10n1'."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part
    )


def parse_cpu_list(text: str) -> list[int] | None:
    """'0-3,8 9' -> [0, 1, 2, 3, 8, 9]; None when malformed."""
    cpus: set[int] = set()
    for item in re.split(r"[\s,]+", text.strip()):
        if not item:
            continue
        low, sep, high = item.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            return None
        first, last = int(low), int(high) if sep else int(low)
        if last < first:
            return None
        cpus.update(range(first, last + 1))
    return sorted(cpus)


def pci_addresses(path: str) -> list[str]:
    """The PCI addresses along a sysfs device path, root port first."""
    return [part for part in path.split("/") if PCI_ADDRESS.match(part)]


def pci_sort_key(address: str) -> tuple[int, int, int, int]:
    m = PCI_ADDRESS.match(address)
    if m is None:
        return (1 << 32, 0, 0, 0)
    domain, bus, dev, fn = m.groups()
    return (int(domain, 16), int(bus, 16), int(dev, 16), int(fn))


class SysfsReader:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.problems: list[str] = []

    def note(self, problem: str) -> None:
        self.problems.append(problem)

    def text(self, path: str, *, optional: bool = False) -> str | None:
        """The file's contents without surrounding whitespace, or None."""
        try:
            raw = self.host.read_text(path)
        except HostPathError as e:
            self.note(f"{path}: {e}")
            return None
        except OSError as e:
            if not optional:
                self.note(f"{path}: cannot be read ({e.strerror or e})")
            return None
        if raw is None:
            if not optional:
                self.note(f"{path}: missing")
            return None
        return raw.strip()

    def integer(self, path: str, *, optional: bool = False) -> int | None:
        value = self.text(path, optional=optional)
        if value is None:
            return None
        try:
            return int(value, 0) if value.lower().startswith("0x") else int(value)
        except ValueError:
            self.note(f"{path}: not a whole number ({value[:40]!r})")
            return None

    def listdir(self, path: str) -> list[str]:
        """Entry names in a directory, naturally sorted; [] when it does not exist."""
        try:
            real = self.host.path(path)
            return sorted((p.name for p in real.iterdir()), key=natural_key)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except HostPathError as e:
            self.note(f"{path}: {e}")
            return []
        except OSError as e:
            self.note(f"{path}: cannot be listed ({e.strerror or e})")
            return []

    def exists(self, path: str) -> bool:
        try:
            return self.host.path(path).exists()
        except HostPathError as e:
            self.note(f"{path}: {e}")
            return False

    def resolve(self, path: str) -> str | None:
        """The appliance path ``path`` leads to after following symlinks, None when absent."""
        try:
            real = self.host.path(path)
        except HostPathError as e:
            self.note(f"{path}: {e}")
            return None
        if not real.exists():
            return None
        rel = real.relative_to(self.host.root)
        return "/" + str(rel) if str(rel) != "." else "/"

    def link_name(self, path: str) -> str | None:
        """Last component of a symlink's target (a driver's name from `.../driver`)."""
        resolved = self.resolve(path)
        return resolved.rsplit("/", 1)[-1] if resolved else None


def matching(names: Iterable[str], pattern: str) -> list[str]:
    rx = re.compile(pattern)
    return [n for n in names if rx.fullmatch(n)]
