"""Netplan persistence: render /etc/netplan/90-sokoul.yaml (networkd renderer) from the
fragments in ``netplan/templates`` and write it atomically with mode 0600.

The file is what the appliance boots with; the live state is applied separately (``live.py``).
A confirmed change rewrites it; a change on trial never does, so a reboot during a trial comes
back with the last confirmed configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from pathlib import Path
from string import Template

from sokoul_appliance.host import Host
from sokoul_appliance.network.roles import NetworkConfig, Port

NETPLAN_DIR = "/etc/netplan"
NETPLAN_FILE = f"{NETPLAN_DIR}/90-sokoul.yaml"
# the image's "DHCP on every wired port" default, superseded once the roles are written
DEFAULT_FILE = f"{NETPLAN_DIR}/90-sokoul-default.yaml"
TEMPLATES = Path(__file__).resolve().parents[2] / "netplan" / "templates"

MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")


class NetplanError(RuntimeError):
    pass


def _match(port: Port) -> str:
    """The netplan match line: by MAC when the port has one (survives renames), else name."""
    if port.mac and MAC_RE.match(port.mac.lower()):
        return f'macaddress: "{port.mac.lower()}"'
    if not IFNAME_RE.match(port.name):
        raise NetplanError(f"interface name {port.name!r} cannot be written to netplan")
    return f'name: "{port.name}"'


def _load(templates: Path, name: str) -> Template:
    try:
        return Template((templates / f"{name}.yaml.in").read_text())
    except FileNotFoundError:
        raise NetplanError(f"netplan template {name}.yaml.in missing in {templates}") from None


def render_netplan(config: NetworkConfig, templates: Path = TEMPLATES) -> str:
    """The YAML text for ``config`` (every value was validated when the config was built)."""
    parts = [
        _load(templates, "header").substitute(
            internet_name=config.internet.name,
            internet_pci=config.internet.pci_path or "no PCI path",
            streaming_name=config.streaming.name,
            streaming_pci=config.streaming.pci_path or "no PCI path",
        )
    ]
    if config.internet_mode == "static":
        extra = ""
        if config.internet_gateway:
            extra += "      routes:\n        - to: default\n"
            extra += f'          via: "{config.internet_gateway}"\n'
        if config.internet_dns:
            servers = ", ".join(f'"{d}"' for d in config.internet_dns)
            extra += f"      nameservers:\n        addresses: [{servers}]\n"
        parts.append(
            _load(templates, "internet-static").substitute(
                match=_match(config.internet), address=config.internet_address, extra=extra
            )
        )
    else:
        parts.append(_load(templates, "internet-dhcp").substitute(match=_match(config.internet)))
    parts.append(
        _load(templates, "streaming").substitute(
            match=_match(config.streaming), address=config.streaming_address
        )
    )
    return "".join(p if p.endswith("\n") else p + "\n" for p in parts)


def write_atomically(path: Path, text: str, mode: int = 0o600) -> None:
    """Temp file in the same folder (created with ``mode``), fsync, rename, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class NetplanWriter:
    """Writes the rendered file under the host root; on the appliance also runs
    ``netplan generate`` so networkd's files match for the next boot."""

    def __init__(self, host: Host, templates: Path = TEMPLATES, generate: bool = True) -> None:
        self._host = host
        self._templates = templates
        self._generate = generate

    @property
    def target(self) -> Path:
        return self._host.path(NETPLAN_FILE)

    def render(self, config: NetworkConfig) -> str:
        return render_netplan(config, self._templates)

    def current(self) -> str | None:
        return self._host.read_text(NETPLAN_FILE)

    async def write(self, config: NetworkConfig) -> str:
        text = self.render(config)
        await asyncio.to_thread(write_atomically, self.target, text)
        await asyncio.to_thread(self._host.path(DEFAULT_FILE).unlink, missing_ok=True)
        if self._generate and self._host.live and shutil.which("netplan"):
            await self._host.run("netplan", "generate", timeout=30)
        return text
