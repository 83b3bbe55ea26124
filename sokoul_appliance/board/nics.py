"""Physical network ports: /sys/class/net entries with a `device` link, ordered by PCI path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sokoul_appliance.board.sysfs import SysfsReader, natural_key, pci_addresses, pci_sort_key

NET = "/sys/class/net"
LINK_STATES = {
    "up": "up",
    "down": "down",
    "lowerlayerdown": "down",
    "notpresent": "down",
    "dormant": "down",
}


@dataclass(frozen=True)
class Nic:
    name: str
    mac: str | None
    pci_path: str | None  # "0002:01:00.0": the PCI function the port hangs off
    driver: str | None
    link: str  # up | down | unknown
    speed_mbps: int | None
    device_path: str  # the resolved sysfs device, e.g. /sys/devices/pci0002:00/.../0002:01:00.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mac": self.mac,
            "pci_path": self.pci_path,
            "driver": self.driver,
            "link": self.link,
            "speed_mbps": self.speed_mbps,
        }


def _sort_key(nic: Nic) -> tuple[Any, ...]:
    chain = pci_addresses(nic.device_path)
    # PCI ports first, in (domain, bus, device, function) order along their path; then the rest
    return (0 if chain else 1, [pci_sort_key(a) for a in chain], natural_key(nic.name))


def discover_nics(reader: SysfsReader) -> list[Nic]:
    nics = []
    for name in reader.listdir(NET):
        path = f"{NET}/{name}"
        device = reader.resolve(f"{path}/device")
        if device is None:
            continue  # lo, bridges, tunnels, VLANs, wg0: no device behind them
        chain = pci_addresses(device)
        driver = reader.link_name(f"{path}/device/driver")
        if driver is None:
            reader.note(f"{path}/device/driver: no driver bound to {name}")
        state = reader.text(f"{path}/operstate")
        # reading `speed` fails (EINVAL) on a port without carrier: that is "unknown", not a fault
        speed = reader.integer(f"{path}/speed", optional=True)
        nics.append(
            Nic(
                name=name,
                mac=reader.text(f"{path}/address"),
                pci_path=chain[-1] if chain else None,
                driver=driver,
                link=LINK_STATES.get(state or "", "unknown"),
                speed_mbps=speed if speed is not None and speed > 0 else None,
                device_path=device,
            )
        )
    return sorted(nics, key=_sort_key)
