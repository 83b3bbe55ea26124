"""VpnManager: the torrent engine's WireGuard split tunnel, its kill switch, health and NAT-PMP.

Reads the config the wizard saved (``vpn.wireguard_conf``), validates it, and on the appliance
builds, in this order (each wall before the next opening): the torrent namespace, the kill
switch table in it, the namespace's resolv.conf, then the tunnel (created in the appliance's
namespace, moved into the torrent namespace, addressed and routed there). It then samples
health every ``interval`` seconds, keeps the NAT-PMP mapping, and rebuilds the tunnel when it
dies (with a growing pause) or when the saved config changes.

Against a simulated board (``host.live`` False) it is read-only: it validates and shows the
config and changes nothing. ``stop()`` takes the tunnel down but leaves the namespace and its
kill switch in place: a torrent engine still running there has no way out.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import socket
import time
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from sokoul_appliance.bus import EventBus
from sokoul_appliance.events import ManagerStateChanged, SettingsChanged, VpnPortForwarded
from sokoul_appliance.host import CommandError, Host
from sokoul_appliance.vpn.health import (
    STALE_AFTER,
    HealthError,
    PeerStatus,
    fetch_ip,
    handshake_age,
    parse_dump,
    plain_socket,
)
from sokoul_appliance.vpn.killswitch import KillSwitch, KillSwitchError
from sokoul_appliance.vpn.namespace import DEFAULT_NAME, NamespaceError, TorrentNamespace
from sokoul_appliance.vpn.natpmp import NatPmpClient, PortForwarder
from sokoul_appliance.vpn.runner import Runner
from sokoul_appliance.vpn.tunnel import Tunnel, TunnelError
from sokoul_appliance.vpn.wgconf import WireGuardConfig, WireGuardConfigError, parse

log = logging.getLogger("sokoul.vpn")

CONF_KEY = "vpn.wireguard_conf"
EXIT_IP_KEY = "vpn.exit_ip_url"  # optional setting; the constructor's value when absent
EXIT_IP_RETRY = 30.0  # seconds before a failed exit-IP check is tried again
UP, DOWN, CONNECTING, NOT_CONFIGURED = "up", "down", "connecting", "not_configured"
_STATUS = {UP: "ok", CONNECTING: "degraded", DOWN: "error", NOT_CONFIGURED: "not_configured"}


class SettingsSource(Protocol):
    def get(self, key: str) -> Any: ...


def default_gateway(cfg: WireGuardConfig) -> str | None:
    """The NAT-PMP gateway when none is given: the first host of the tunnel's IPv4 network, or
    the .1 of a /32 tunnel address (ProtonVPN: 10.2.0.2/32 -> 10.2.0.1)."""
    for a in cfg.addresses:
        iface = ipaddress.ip_interface(a)
        if iface.version != 4:
            continue
        if iface.network.prefixlen < 31:
            return str(next(iface.network.hosts()))
        base = int(iface.ip) & 0xFFFFFF00
        gw = ipaddress.IPv4Address(base + 1)
        return None if gw == iface.ip else str(gw)
    return None


class VpnManager:
    name = "vpn"
    title = "VPN"

    def __init__(
        self,
        host: Host,
        bus: EventBus,
        settings: SettingsSource,
        registry: CollectorRegistry,
        *,
        namespace: str = DEFAULT_NAME,
        ifname: str = "wg0",
        appliance_ns: str | None = None,
        resolv_dir: Path | None = None,
        exit_ip_url: str | None = None,
        exit_ip_every: float = 300.0,
        port_forwarding: bool = True,
        natpmp_gateway: str | None = None,
        natpmp_first_wait: float = 0.25,
        natpmp_tries: int = 6,
        renew_every: float = 900.0,
        interval: float = 10.0,
        retry_after: float = 15.0,
        prefer_kernel: bool = True,
    ) -> None:
        self._host = host
        self._bus = bus
        self._settings = settings
        self._runner = Runner(host)
        self._appliance_ns = appliance_ns
        self.namespace = TorrentNamespace(host, namespace, resolv_dir, self._runner)
        self.tunnel = Tunnel(
            self._runner,
            self.namespace,
            ifname=ifname,
            appliance_ns=appliance_ns,
            prefer_kernel=prefer_kernel,
        )
        self.killswitch = KillSwitch(self._runner, namespace, ifname)
        self._exit_ip_url = exit_ip_url
        self._exit_ip_every = exit_ip_every
        self._port_forwarding = port_forwarding
        self._natpmp_gateway = natpmp_gateway
        self._natpmp_first_wait = natpmp_first_wait
        self._natpmp_tries = natpmp_tries
        self._renew_every = renew_every
        self._interval = interval
        self._retry_after = retry_after

        self._task: asyncio.Task[None] | None = None
        self._follow: asyncio.Task[None] | None = None
        self._natpmp_task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._stopping = False
        self.forwarder: PortForwarder | None = None
        self.config: WireGuardConfig | None = None
        self.config_errors: list[str] = []
        self.state = NOT_CONFIGURED
        self.detail = "No WireGuard config saved."
        self.error: str | None = None
        self.since = time.time()
        self.up_since: float | None = None
        self.peers: list[PeerStatus] = []
        self.handshake_age: float | None = None
        self.exit_ip: str | None = None
        self.internet_ip: str | None = None
        self.exit_ip_error: str | None = None
        self._exit_checked = 0.0
        self.drops: dict[str, int] = {}
        self._last_drops: dict[str, int] = {}
        self._last_transfer = (0, 0)
        self.bring_ups = 0

        self._m_up = Gauge(
            "sokoul_vpn_up", "1 while the VPN tunnel has a fresh handshake", registry=registry
        )
        self._m_age = Gauge(
            "sokoul_vpn_handshake_age_seconds",
            "Seconds since the last WireGuard handshake (NaN: none yet)",
            registry=registry,
        )
        self._m_age.set(math.nan)
        self._m_drops = Counter(
            "sokoul_vpn_killswitch_dropped_packets",
            "Packets the kill switch dropped in the torrent namespace (out, dns, in)",
            ["kind"],
            registry=registry,
        )
        for kind in ("out", "dns", "in"):
            self._m_drops.labels(kind)
        self._m_bytes = Counter(
            "sokoul_vpn_transfer_bytes",
            "Bytes through the VPN tunnel (rx, tx)",
            ["direction"],
            registry=registry,
        )
        for direction in ("rx", "tx"):
            self._m_bytes.labels(direction)
        self._m_port = Gauge(
            "sokoul_vpn_forwarded_port", "The NAT-PMP forwarded port (0: none)", registry=registry
        )

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="vpn-manager")
        self._follow = asyncio.create_task(self._follow_settings(), name="vpn-settings")

    async def stop(self) -> None:
        self._stopping = True
        for task in (self._follow, self._task):
            if task is not None:
                await _cancel(task)
        self._task = self._follow = None
        await self._take_down()

    def status(self) -> tuple[str, str]:
        if not self._host.live and self.state != NOT_CONFIGURED:
            return "unavailable", self.detail
        return _STATUS[self.state], self.detail

    def snapshot(self) -> dict[str, Any]:
        """The VPN's state for the panel (JSON-serialisable, no keys)."""
        f = self.forwarder
        return {
            "state": self.state,
            "detail": self.detail,
            "since": self.since,
            "simulated": not self._host.live,
            "config": self.config.summary() if self.config else None,
            "config_errors": list(self.config_errors),
            "error": self.error,
            "namespace": self.namespace.name,
            "interface": self.tunnel.ifname,
            "implementation": self.tunnel.implementation,
            "endpoint": next((p.endpoint for p in self.peers if p.endpoint), None)
            or (self.config.peers[0].endpoint if self.config and self.config.peers else None),
            "handshake_age_s": self.handshake_age,
            "transfer": {
                "rx_bytes": sum(p.rx_bytes for p in self.peers),
                "tx_bytes": sum(p.tx_bytes for p in self.peers),
            },
            "exit_ip": self.exit_ip,
            "internet_ip": self.internet_ip,
            "exit_ip_error": self.exit_ip_error,
            "port_forwarding": None
            if f is None
            else {
                "gateway": f.client.gateway,
                "port": f.port,
                "tcp_port": f.tcp_port,
                "lifetime_s": f.granted_lifetime,
                "last_renewed": f.last_renewed,
                "renewals": f.renewals,
                "error": f.error,
            },
            "forwarded_port": f.port if f else None,
            "killswitch": {
                "dropped_out": self.drops.get("dropped_out", 0),
                "dropped_dns": self.drops.get("dropped_dns", 0),
                "dropped_in": self.drops.get("dropped_in", 0),
            },
            "killswitch_drops": self.drops.get("dropped_out", 0) + self.drops.get("dropped_dns", 0),
        }

    # -- the loop ---------------------------------------------------------------------------------
    def _set(self, state: str, detail: str) -> None:
        if (state, detail) != (self.state, self.detail):
            if state != self.state:
                self.since = time.time()
            self.state, self.detail = state, detail
            self._m_up.set(1 if state == UP else 0)
            self._bus.publish(ManagerStateChanged(self.name, state, detail))

    async def _follow_settings(self) -> None:
        with self._bus.subscribe(SettingsChanged) as sub:
            while True:
                event: SettingsChanged = await sub.get()
                if any(k.startswith("vpn.") for k in event.keys):
                    self._changed.set()

    async def _wait_change(self, timeout: float | None) -> bool:
        """Wait for a settings change (True) or the timeout (False)."""
        try:
            async with asyncio.timeout(timeout):
                await self._changed.wait()
        except TimeoutError:
            return False
        return True

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            self._changed.clear()
            cfg = self._load_config()
            if cfg is None or not self._host.live:
                await self._wait_change(None)
                continue
            try:
                await self._bring_up(cfg)
            except (TunnelError, CommandError, NamespaceError, KillSwitchError, OSError) as e:
                failures += 1
                self.error = str(e)
                pause = min(self._retry_after * 2 ** (failures - 1), 300.0)
                self._set(DOWN, f"The tunnel is down: {e} Trying again in {pause:.0f} s.")
                log.error("VPN: %s", e)
                await self._wait_change(pause)
                continue
            failures = 0
            changed = await self._watch()
            await self._take_down()
            if not changed:
                failures += 1
                self._set(DOWN, f"The tunnel went down: {self.error}. Bringing it up again.")
                await self._wait_change(min(self._retry_after * 2 ** (failures - 1), 300.0))

    def _load_config(self) -> WireGuardConfig | None:
        text = self._settings.get(CONF_KEY)
        self.config, self.config_errors = None, []
        if not text:
            self._set(NOT_CONFIGURED, "No WireGuard config saved: torrents have no VPN.")
            return None
        try:
            cfg = parse(text)
        except WireGuardConfigError as e:
            self.config_errors = list(e.errors)
            self._set(
                DOWN,
                "The saved WireGuard config is not valid, nothing was changed: "
                + "; ".join(e.errors[:3]),
            )
            return None
        self.config = cfg
        if not self._host.live:
            peer = cfg.peers[0].endpoint if cfg.peers else "?"
            self._set(
                DOWN,
                f"Simulated board (read-only): config valid (server {peer}); the tunnel is "
                "not brought up.",
            )
        return cfg

    async def _bring_up(self, cfg: WireGuardConfig) -> None:
        self._set(CONNECTING, "Bringing the tunnel up.")
        await self.namespace.ensure()
        await self.killswitch.apply()
        self._last_drops = {}
        await self.namespace.write_resolv_conf(cfg)
        await self.tunnel.up(cfg)
        self.bring_ups += 1
        self.up_since = time.time()
        self.error = None
        self._exit_checked = 0.0
        gateway = self._natpmp_gateway or default_gateway(cfg)
        if self._port_forwarding and gateway:
            client = NatPmpClient(
                self._namespace_socket_udp,
                gateway,
                first_wait=self._natpmp_first_wait,
                tries=self._natpmp_tries,
            )
            self.forwarder = PortForwarder(client, self._on_port, renew_every=self._renew_every)
            self._natpmp_task = asyncio.create_task(self.forwarder.run(), name="vpn-natpmp")

    async def _namespace_socket_udp(self) -> socket.socket:
        return await self.namespace.open_socket(socket.AF_INET, socket.SOCK_DGRAM)

    async def _on_port(self, port: int) -> None:
        self._m_port.set(port)
        try:
            await self.killswitch.set_ports((port,) if port else ())
        except (CommandError, TimeoutError) as e:
            log.error("could not open the forwarded port in the kill switch: %s", e)
        self._bus.publish(VpnPortForwarded(port))

    async def _watch(self) -> bool:
        """Sample health until the tunnel dies (False) or the settings change (True)."""
        while not self._stopping:
            alive = await self._sample()
            if not alive:
                return False
            if await self._wait_change(self._interval):
                return True
        return True

    async def _sample(self) -> bool:
        try:
            await self._read_drops()
        except (CommandError, TimeoutError, KillSwitchError) as e:
            log.warning("kill-switch counters unreadable: %s", e)
        if self.tunnel.implementation == "wireguard-go" and not self.tunnel.process_alive():
            self.error = "wireguard-go stopped"
            return False
        if not await self.tunnel.exists():
            self.error = f"{self.tunnel.ifname} disappeared from the torrent namespace"
            return False
        try:
            self.peers = parse_dump(await self.tunnel.dump())
        except (CommandError, TimeoutError, HealthError) as e:
            self.error = f"wg show failed: {e}"
            return False
        now = time.time()
        self.handshake_age = handshake_age(self.peers, now)
        self._m_age.set(math.nan if self.handshake_age is None else self.handshake_age)
        rx, tx = sum(p.rx_bytes for p in self.peers), sum(p.tx_bytes for p in self.peers)
        last_rx, last_tx = self._last_transfer
        self._m_bytes.labels("rx").inc(rx - last_rx if rx >= last_rx else rx)
        self._m_bytes.labels("tx").inc(tx - last_tx if tx >= last_tx else tx)
        self._last_transfer = (rx, tx)
        url = self._exit_url()
        fresh = self.handshake_age is not None and self.handshake_age <= STALE_AFTER
        if url and fresh and now - self._exit_checked >= self._exit_ip_every:
            self._exit_checked = now
            await self._check_exit_ip(url)
        self._evaluate(now)
        return True

    def _evaluate(self, now: float) -> None:
        age = self.handshake_age
        endpoint = next((p.endpoint for p in self.peers if p.endpoint), "the server")
        if age is None or age > STALE_AFTER:
            waited = now - (self.up_since or now)
            text = (
                f"No handshake with {endpoint} yet ({waited:.0f} s)."
                if age is None
                else f"No handshake with {endpoint} for {age:.0f} s: the server does not answer."
            )
            self._set(CONNECTING, text + " Torrents stay offline (kill switch).")
            return
        if self.exit_ip and self.internet_ip and self.exit_ip == self.internet_ip:
            self._set(
                CONNECTING,
                f"The tunnel's exit IP ({self.exit_ip}) is the internet port's own IP: the "
                "VPN server is not masking your address.",
            )
            return
        text = f"Up through {endpoint}; last handshake {age:.0f} s ago."
        if self.exit_ip:
            text += f" Exit IP {self.exit_ip}."
        if self.forwarder and self.forwarder.port:
            text += f" Forwarded port {self.forwarder.port}."
        self._set(UP, text)

    def _exit_url(self) -> str | None:
        try:
            value = self._settings.get(EXIT_IP_KEY)
        except KeyError:
            value = None
        return value if isinstance(value, str) and value else self._exit_ip_url

    async def _check_exit_ip(self, url: str) -> None:
        async def inside(family: int, kind: int) -> socket.socket:
            return await self.namespace.open_socket(family, kind)

        async def outside(family: int, kind: int) -> socket.socket:
            if self._appliance_ns is None:
                return await plain_socket(family, kind)
            return await TorrentNamespace(self._host, self._appliance_ns).open_socket(family, kind)

        problems = []
        try:
            self.exit_ip = await fetch_ip(url, inside)
        except (HealthError, OSError, TimeoutError, NamespaceError) as e:
            self.exit_ip = None
            problems.append(f"through the tunnel: {e or type(e).__name__}")
        try:
            self.internet_ip = await fetch_ip(url, outside)
        except (HealthError, OSError, TimeoutError, NamespaceError) as e:
            self.internet_ip = None
            problems.append(f"from the internet port: {e or type(e).__name__}")
        self.exit_ip_error = "; ".join(problems) or None
        if problems:  # try again sooner than the regular check
            self._exit_checked -= max(0.0, self._exit_ip_every - EXIT_IP_RETRY)

    async def _read_drops(self) -> None:
        counters = await self.killswitch.counters()
        for name, kind in (("dropped_out", "out"), ("dropped_dns", "dns"), ("dropped_in", "in")):
            now = counters.get(name, 0)
            last = self._last_drops.get(name, 0)
            self._m_drops.labels(kind).inc(now - last if now >= last else now)
        self._last_drops = counters
        self.drops = counters

    async def _take_down(self) -> None:
        task, self._natpmp_task = self._natpmp_task, None
        if task is not None:
            await _cancel(task)
        self.forwarder = None
        self._m_port.set(0)
        if self._host.live and (self.tunnel.implementation or self.tunnel.process):
            await self.tunnel.down()
        self.peers, self.handshake_age, self.up_since = [], None, None
        self._m_age.set(math.nan)
        self._m_up.set(0)


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel and await a task of ours (again if a cancellation got lost in a race)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=2.0)
    if not task.cancelled() and task.exception() is not None:
        log.error("VPN task %s failed: %s", task.get_name(), task.exception())
