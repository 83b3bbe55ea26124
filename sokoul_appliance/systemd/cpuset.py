"""CPU sets as systemd speaks them: the ``ay`` bitmask of ``AllowedCPUs=`` on D-Bus, and the
``0-3,8`` list form of unit files and ``systemctl show``.

The bitmask is little-endian by bit: CPU n is bit ``n % 8`` of byte ``n // 8`` (systemd's
``cpu_set_to_dbus``), just long enough for the highest CPU. An empty mask means "no
restriction" to systemd, so an empty CPU set is never a plan, only a reset.
"""

from __future__ import annotations

from collections.abc import Iterable


def cpus_to_mask(cpus: Iterable[int]) -> bytes:
    """{0, 1, 2, 3} -> b'\\x0f'; {8, 9, 10, 11} -> b'\\x00\\x0f'; {} -> b''."""
    wanted = sorted(set(cpus))
    if not wanted:
        return b""
    if wanted[0] < 0:
        raise ValueError(f"CPU numbers are never negative, got {wanted[0]}")
    mask = bytearray(wanted[-1] // 8 + 1)
    for cpu in wanted:
        mask[cpu // 8] |= 1 << (cpu % 8)
    return bytes(mask)


def mask_to_cpus(mask: bytes | bytearray | Iterable[int]) -> tuple[int, ...]:
    """b'\\x00\\x0f' -> (8, 9, 10, 11): the inverse of ``cpus_to_mask`` (trailing zero bytes
    are allowed, as the kernel pads masks to its CPU count)."""
    out: list[int] = []
    for index, byte in enumerate(bytes(mask)):
        out.extend(index * 8 + bit for bit in range(8) if byte >> bit & 1)
    return tuple(out)


def format_cpu_list(cpus: Iterable[int]) -> str:
    """(0, 1, 2, 3, 8, 10, 11) -> '0-3 8 10-11' (the form ``systemctl show`` prints)."""
    wanted = sorted(set(cpus))
    ranges: list[str] = []
    start = prev = None
    for cpu in [*wanted, None]:
        if cpu is not None and prev is not None and cpu == prev + 1:
            prev = cpu
            continue
        if start is not None and prev is not None:
            ranges.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = cpu
    return " ".join(ranges)
