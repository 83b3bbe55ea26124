"""The torrent engine's network namespace (``sokoul-torrent``): its only way out is the tunnel.

Construction (the WireGuard project's "ordinary containerization" recipe, see docs/vpn.md):
the WireGuard interface is created in the appliance's own namespace, so its encrypted UDP socket
lives there and leaves by the internet port; then the interface is *moved* into this namespace,
where it gets the tunnel address and the routes for its AllowedIPs. Inside there is nothing
else but ``lo``: no veth, no default route but the tunnel. When the tunnel goes (wireguard-go
dies, the interface is deleted, it never came up), its routes go with it and a packet has no
route at all: the namespace fails closed by construction. This works for the kernel module and
for wireguard-go alike (a TUN device can change namespace; its file descriptor stays with the
wireguard-go process, which keeps its UDP socket in the namespace it was started in).

Sockets for the supervisor's own checks through the tunnel (NAT-PMP, the exit-IP probe) are
opened *inside* the namespace from a short-lived thread that joins it with ``setns``: a socket
belongs to the namespace it was created in for its whole life, so the event loop then uses it
like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ipaddress
import os
import socket
import threading
from pathlib import Path

from sokoul_appliance.host import CommandError, Host
from sokoul_appliance.vpn.runner import Runner
from sokoul_appliance.vpn.wgconf import WireGuardConfig

DEFAULT_NAME = "sokoul-torrent"
CLONE_NEWNET = 0x40000000
DEFAULT_MTU = 1420


class NamespaceError(RuntimeError):
    pass


def _setns(fd: int) -> None:
    setns = getattr(os, "setns", None)  # Python 3.12+
    if setns is not None:
        setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _socket_in(path: str, family: int, kind: int) -> socket.socket:
    """Create a socket inside the namespace at ``path`` from a thread of its own (the thread
    joins the namespace, creates the socket, and ends: no other thread changes namespace)."""
    box: list[socket.socket | BaseException] = []

    def worker() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            box.append(socket.socket(family, kind))
        except BaseException as e:  # handed to the caller below
            box.append(e)

    t = threading.Thread(target=worker, name="sokoul-netns-socket", daemon=True)
    t.start()
    t.join()
    result = box[0]
    if isinstance(result, BaseException):
        raise result
    result.setblocking(False)
    return result


def resolv_conf_text(cfg: WireGuardConfig) -> str:
    servers = [d for d in cfg.dns if _is_ip(d)]
    search = [d for d in cfg.dns if not _is_ip(d)]
    lines = ["# written by the SOKOUL supervisor: the VPN's resolvers, reached through the tunnel"]
    lines += [f"nameserver {s}" for s in servers[:3]]
    if search:
        lines.append(f"search {' '.join(search)}")
    return "\n".join(lines) + "\n"


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def routes_for(cfg: WireGuardConfig) -> list[str]:
    """Routes through the tunnel: every AllowedIPs network, most specific last (as wg-quick
    orders them), limited to the families the tunnel has an address in."""
    families = {ipaddress.ip_interface(a).version for a in cfg.addresses}
    nets = {
        ipaddress.ip_network(n)
        for p in cfg.peers
        for n in p.allowed_ips
        if ipaddress.ip_network(n).version in families
    }
    return [str(n) for n in sorted(nets, key=lambda n: (n.version, n.prefixlen, n))]


class TorrentNamespace:
    def __init__(
        self,
        host: Host,
        name: str = DEFAULT_NAME,
        resolv_dir: Path | None = None,
        runner: Runner | None = None,
    ) -> None:
        self.host = host
        self.name = name
        self.runner = runner or Runner(host)
        # ``ip netns exec`` bind-mounts /etc/netns/<name>/resolv.conf over /etc/resolv.conf
        self.resolv_dir = resolv_dir or host.path(f"/etc/netns/{name}")

    @property
    def handle(self) -> str:
        return f"/run/netns/{self.name}"

    async def exists(self) -> bool:
        return await asyncio.to_thread(os.path.exists, self.handle)

    async def ensure(self) -> None:
        """Create the namespace (loopback up) unless it exists."""
        if not await self.exists():
            await self.runner.run(None, "ip", "netns", "add", self.name)
        await self.runner.run(None, "ip", "-n", self.name, "link", "set", "lo", "up")

    async def delete(self) -> None:
        if await self.exists():
            await self.runner.run(None, "ip", "netns", "del", self.name)

    async def links(self) -> list[str]:
        result = await self.runner.run(None, "ip", "-n", self.name, "-o", "link", "show")
        return [line.split(":")[1].strip().split("@")[0] for line in result.stdout.splitlines()]

    async def adopt(self, ifname: str, cfg: WireGuardConfig, from_ns: str | None) -> None:
        """Move ``ifname`` in from ``from_ns``, give it the tunnel addresses, MTU and routes."""
        await self.runner.run(from_ns, "ip", "link", "set", ifname, "netns", self.name)
        ip = ("ip", "-n", self.name)
        for address in cfg.addresses:
            family = "-6" if ":" in address else "-4"
            await self.runner.run(None, *ip, family, "address", "add", address, "dev", ifname)
        mtu = str(cfg.mtu or DEFAULT_MTU)
        await self.runner.run(None, *ip, "link", "set", "dev", ifname, "mtu", mtu, "up")
        for net in routes_for(cfg):
            family = "-6" if ":" in net else "-4"
            target = "default" if net in ("0.0.0.0/0", "::/0") else net
            await self.runner.run(None, *ip, family, "route", "replace", target, "dev", ifname)

    async def remove_link(self, ifname: str) -> bool:
        """Delete ``ifname`` inside the namespace; False when it was not there."""
        try:
            await self.runner.run(None, "ip", "-n", self.name, "link", "del", ifname)
        except CommandError:
            return False
        return True

    async def write_resolv_conf(self, cfg: WireGuardConfig) -> Path:
        path = self.resolv_dir / "resolv.conf"
        text = resolv_conf_text(cfg)

        def write() -> None:
            self.resolv_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, path)

        await asyncio.to_thread(write)
        return path

    async def open_socket(
        self, family: int = socket.AF_INET, kind: int = socket.SOCK_DGRAM
    ) -> socket.socket:
        """A non-blocking socket that lives inside the namespace (needs CAP_SYS_ADMIN)."""
        try:
            return await asyncio.to_thread(_socket_in, self.handle, family, kind)
        except OSError as e:
            raise NamespaceError(f"cannot open a socket in namespace {self.name}: {e}") from e


def close_quietly(sock: socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()
