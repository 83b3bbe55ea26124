"""`discover --root DIR [--json]`: what the board room sees under a host root.

python -m sokoul_appliance discover --root hw/orangepi-6-plus/sim/acpi --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sokoul_appliance.board.discovery import Discovery, discover_sync
from sokoul_appliance.host import Host


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sokoul_appliance discover",
        description="Show the CPU clusters, thermal zones, fans, network ports and drives "
        "discovered under a host root.",
    )
    p.add_argument("--root", type=Path, default=Path("/"), help="host root (default /)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def _gb(size: int | None) -> str:
    return "?" if size is None else f"{size / 1e9:.1f} GB"


def format_table(d: Discovery) -> str:
    out = [f"board: {d.board or 'unknown'}", "", "CPU clusters"]
    for c in d.clusters:
        mhz = "?" if c.max_khz is None else f"{c.max_khz // 1000} MHz"
        cpus = ",".join(map(str, c.cpus))
        out.append(
            f"  cpus {cpus:<14} {c.role:<7} {c.core:<14} max {mhz:<10} capacity {c.capacity}"
        )
    out += ["", "Thermal zones"]
    for z in d.thermal_zones:
        temp = "?" if z.temp_c is None else f"{z.temp_c:.1f} °C"
        out.append(f"  {z.name:<18} {z.type or '?':<18} {temp}")
    out += ["", "Fans"]
    for f in d.fans:
        rpm = "" if f.rpm is None else f" {f.rpm} rpm"
        profile = "" if f.profile is None else f" ({f.profile})"
        out.append(f"  {f.name:<18} {f.mode or '?'}{profile}{rpm}")
    out += ["", "Network ports (PCI order)"]
    for n in d.nics:
        speed = "" if n.speed_mbps is None else f" {n.speed_mbps} Mb/s"
        out.append(
            f"  {n.name:<12} {n.mac or '?':<18} {n.pci_path or '-':<14} "
            f"{n.driver or '?':<11} {n.link}{speed}"
        )
    out += ["", "Drives"]
    for dr in d.drives:
        system = "  [system]" if dr.holds_system else ""
        link = ""
        if dr.pcie_link is not None:
            link = f"  {dr.pcie_link.speed} x{dr.pcie_link.width or '?'}"
        out.append(
            f"  {dr.name:<9} {dr.model or '?':<26} {dr.serial or '?':<16} "
            f"{_gb(dr.size_bytes):>9}{link}{system}"
        )
    if d.problems:
        out += ["", "Problems"] + [f"  - {p}" for p in d.problems]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    """Run ``discover``; ``argv`` are its arguments (a leading "discover" is accepted too)."""
    if argv[:1] == ["discover"]:
        argv = argv[1:]
    args = _parser().parse_args(argv)
    root: Path = args.root
    if not root.is_dir():
        print(f"error: --root {root} is not a directory", file=sys.stderr)
        return 2
    found = discover_sync(Host(root))
    if args.json:
        print(json.dumps(found.to_json(), indent=2))
    else:
        print(format_table(found))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
