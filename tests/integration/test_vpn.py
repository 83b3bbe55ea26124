"""The WireGuard split tunnel in real network namespaces (root, wireguard-go, wg, nft).

With the tunnel up, a TCP connection from the torrent namespace reaches a listener on the vpn
namespace's far side with the tunnel address as its source; with the tunnel down (never up,
wireguard-go killed, the interface deleted) not one TCP, UDP, DNS or IPv6 packet from the
torrent namespace reaches the router (nft counters there), also when a mistaken route out is
added (the kill switch drops and counts it). NAT-PMP: mapped, renewed, the port published.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netns import Lab, Netns
from vpn_topology import Topology, build, send_probes

from sokoul_appliance.bus import EventBus
from sokoul_appliance.events import VpnPortForwarded
from sokoul_appliance.host import Host
from sokoul_appliance.vpn.manager import VpnManager
from sokoul_appliance.vpn.namespace import TorrentNamespace

TOOLS = ("ip", "nft", "wg", "wireguard-go")
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(
        any(shutil.which(t) is None for t in TOOLS),
        reason="needs " + ", ".join(TOOLS) + " (apt-get install --no-install-recommends "
        "wireguard-go wireguard-tools nftables)",
    ),
    pytest.mark.timeout(180),
]

NO_LEAKS = {"tcp4": 0, "udp4": 0, "dns": 0, "tcp6": 0, "udp6": 0}


class Settings:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def get(self, key: str) -> Any:
        return self.values[key]


@pytest.fixture
def topo(tmp_path: Path) -> Iterator[Topology]:
    with Lab() as lab:
        try:
            yield build(lab, tmp_path)
        finally:
            lab.close()
            # a wireguard-go killed by a test leaves its control socket: ours only, by name
            for prefix in ("wgs", "wgt"):
                Path(f"/var/run/wireguard/{prefix}{lab.suffix}.sock").unlink(missing_ok=True)


def make_manager(topo: Topology, bus: EventBus, **kw: Any) -> VpnManager:
    options: dict[str, Any] = {
        "namespace": topo.torrent_name,
        "ifname": topo.client_ifname,
        "appliance_ns": topo.appliance.name,
        "resolv_dir": topo.tmp / "netns-etc",
        "natpmp_gateway": "10.99.0.1",
        "natpmp_first_wait": 0.1,
        "natpmp_tries": 3,
        "interval": 0.3,
        "retry_after": 120.0,
        **kw,
    }
    conf = options.pop("conf", topo.client_config())
    registry = options.pop("registry", CollectorRegistry())
    return VpnManager(
        Host(Path("/")), bus, Settings({"vpn.wireguard_conf": conf}), registry, **options
    )


@pytest.fixture
async def running(topo: Topology) -> AsyncIterator[tuple[VpnManager, EventBus]]:
    bus = EventBus()
    manager = make_manager(topo, bus)
    await manager.start()
    try:
        yield manager, bus
    finally:
        await manager.stop()


async def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


async def probes(ns: Netns) -> dict[str, str]:
    return await asyncio.to_thread(send_probes, ns)


def assert_unreachable(result: dict[str, str]) -> None:
    for name, outcome in result.items():
        if name != "resolve":
            assert "Network is unreachable" in outcome, (name, outcome)
    assert result["resolve"].startswith("failed"), result


# -- tunnel up ----------------------------------------------------------------------
async def test_tunnel_carries_torrent_traffic_with_the_tunnel_address(
    topo: Topology, running: tuple[VpnManager, EventBus]
) -> None:
    manager, _ = running
    await wait_for(lambda: manager.state == "up")
    snap = manager.snapshot()
    assert snap["implementation"] == "wireguard-go"  # no kernel module here: the fallback
    assert snap["endpoint"] == "203.0.113.2:51820" and snap["handshake_age_s"] < 180

    # the torrent namespace holds lo and the tunnel, nothing else; its default route is the tunnel
    links = await TorrentNamespace(Host(Path("/")), topo.torrent_name).links()
    assert sorted(links) == sorted(["lo", topo.client_ifname])
    routes = topo.torrent.run("ip", "route", "show", "default").stdout
    assert routes.strip() == f"default dev {topo.client_ifname} scope link"
    # split tunnel: the appliance's own routes are untouched
    app_routes = topo.appliance.run("ip", "route", "show", "default").stdout
    assert "via 198.51.100.1 dev inet0" in app_routes

    log = topo.tmp / "far.log"
    topo.start_server(topo.vpn, ["tcp", "10.200.0.1", "7000", str(log)], "tcp", 7000)
    payload = os.urandom(200_000)
    topo.reset_router_counters()
    send = (
        "import socket,sys;s=socket.create_connection(('10.200.0.1',7000),timeout=10);"
        "s.sendall(sys.stdin.buffer.read());print(s.getsockname()[0]);s.close()"
    )
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", topo.torrent_name, "python3", "-c", send,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(payload), 30)
    assert proc.returncode == 0 and out.decode().strip() == "10.99.0.2"
    await wait_for(lambda: log.exists() and log.read_text().strip() != "")
    record = json.loads(log.read_text().splitlines()[0])
    assert record["peer"] == "10.99.0.2"
    import base64

    assert base64.b64decode(record["b64"]) == payload
    # on the router the 200 kB went by only as WireGuard carrier packets: no plaintext
    counts = topo.router_counters()
    assert counts["carrier"] > 100 and {k: counts[k] for k in NO_LEAKS} == NO_LEAKS


async def test_exit_ip_differs_from_the_internet_port(topo: Topology) -> None:
    topo.start_server(topo.vpn, ["whoami", "0.0.0.0", "8080"], "tcp", 8080)
    bus = EventBus()
    manager = make_manager(topo, bus, exit_ip_url="http://203.0.113.2:8080/ip")
    await manager.start()
    try:
        await wait_for(lambda: manager.exit_ip is not None and manager.state == "up")
        snap = manager.snapshot()
        assert snap["exit_ip"] == "10.99.0.2"  # seen by the far end: the tunnel address
        assert snap["internet_ip"] == "198.51.100.2"  # from the appliance's own namespace
        assert snap["exit_ip_error"] is None
        assert "Exit IP 10.99.0.2" in manager.status()[1]
    finally:
        await manager.stop()


async def test_natpmp_maps_renews_and_publishes(topo: Topology) -> None:
    log = topo.tmp / "natpmp.log"
    topo.start_server(topo.vpn, ["natpmp", "10.99.0.1", str(log)], "udp", 5351)
    bus = EventBus()
    registry = CollectorRegistry()
    manager = make_manager(topo, bus, renew_every=1.0, registry=registry)
    with bus.subscribe(VpnPortForwarded) as sub:
        await manager.start()
        try:
            event = await asyncio.wait_for(sub.get(), 30)
            assert event == VpnPortForwarded(40000)
            await wait_for(
                lambda: manager.forwarder is not None and manager.forwarder.renewals >= 2
            )
            f = manager.snapshot()["port_forwarding"]
            assert f["port"] == 40000 and f["tcp_port"] == 40000 and f["lifetime_s"] == 60
            requests = [json.loads(line) for line in log.read_text().splitlines()]
            # every request came through the tunnel, from the tunnel address
            assert {r["from"] for r in requests} == {"10.99.0.2"}
            maps = [bytes.fromhex(r["hex"]) for r in requests if len(r["hex"]) == 24]
            ops = [m[1] for m in maps]
            assert ops[:4] == [1, 2, 1, 2]  # UDP then TCP, then the renewal of both
            assert maps[2][6:8] == (40000).to_bytes(2, "big")  # renewal suggests the port
            # the kill switch lets the forwarded port in on the tunnel
            ports = topo.torrent.run(
                "nft", "list", "set", "inet", "sokoul_killswitch", "forwarded_ports"
            ).stdout
            assert "40000" in ports
            metrics = generate_latest(registry).decode()
            assert "sokoul_vpn_forwarded_port 40000.0" in metrics
            assert "sokoul_vpn_up 1.0" in metrics
        finally:
            await manager.stop()
        assert await asyncio.wait_for(sub.get(), 5) == VpnPortForwarded(0)


# -- tunnel down: nothing reaches the router -----------------------------------------------------
async def test_never_up_leaks_nothing(topo: Topology) -> None:
    ns = TorrentNamespace(Host(Path("/")), topo.torrent_name)
    await ns.ensure()
    topo.reset_router_counters()
    result = await probes(topo.torrent)
    assert_unreachable(result)
    assert topo.leaks() == NO_LEAKS


async def test_killed_wireguard_go_leaks_nothing(
    topo: Topology, running: tuple[VpnManager, EventBus]
) -> None:
    manager, _ = running
    await wait_for(lambda: manager.state == "up")
    assert manager.tunnel.process is not None
    os.kill(manager.tunnel.process.pid, signal.SIGKILL)
    await wait_for(lambda: manager.state == "down")
    assert "wireguard-go stopped" in manager.detail
    topo.reset_router_counters()
    result = await probes(topo.torrent)
    assert_unreachable(result)
    assert topo.leaks() == NO_LEAKS and topo.router_counters()["carrier"] == 0


async def test_deleted_interface_leaks_nothing(
    topo: Topology, running: tuple[VpnManager, EventBus]
) -> None:
    manager, _ = running
    await wait_for(lambda: manager.state == "up")
    topo.torrent.run("ip", "link", "del", topo.client_ifname)
    await wait_for(lambda: manager.state == "down")
    topo.reset_router_counters()
    result = await probes(topo.torrent)
    assert_unreachable(result)
    assert topo.leaks() == NO_LEAKS


async def test_silent_server_leaks_nothing_but_handshakes(topo: Topology) -> None:
    """The tunnel interface is there but the server never answers (wrong port): traffic goes
    into the tunnel and stays there; only WireGuard handshake attempts leave."""
    bus = EventBus()
    manager = make_manager(topo, bus, conf=topo.client_config("203.0.113.2:51999"))
    await manager.start()
    try:
        await wait_for(lambda: manager.tunnel.implementation is not None)
        await asyncio.sleep(0.5)
        topo.reset_router_counters()
        result = await probes(topo.torrent)
        assert result["udp4"] == "sent"  # into the tunnel, which holds it
        assert topo.leaks() == NO_LEAKS and topo.router_counters()["carrier"] > 0
        assert manager.state == "connecting" and "No handshake" in manager.detail
    finally:
        await manager.stop()


async def test_kill_switch_drops_a_mistaken_route_out(
    topo: Topology, running: tuple[VpnManager, EventBus]
) -> None:
    """Second wall: with the tunnel down and a veth + default routes added to the torrent
    namespace by mistake, nftables drops every packet (IPv4, IPv6, DNS) and counts it."""
    manager, _ = running
    await wait_for(lambda: manager.state == "up")
    topo.torrent.run("ip", "link", "del", topo.client_ifname)
    await wait_for(lambda: manager.state == "down")
    topo.add_leak_path()
    topo.reset_router_counters()
    before = dict(manager.drops)
    result = await probes(topo.torrent)
    assert "Operation not permitted" in result["udp4"], result
    assert "Operation not permitted" in result["udp6"], result
    assert topo.leaks() == NO_LEAKS
    counters = await manager.killswitch.counters()
    assert counters["dropped_dns"] - before.get("dropped_dns", 0) >= 6  # 3 UDP v4, 3 v6 DNS
    assert counters["dropped_out"] - before.get("dropped_out", 0) >= 12
    await manager._read_drops()
    assert manager.snapshot()["killswitch_drops"] >= 18
