"""Network acceptance in namespaces made by the test (never the machine's interfaces).

Topology: ``router`` (the home router: 192.168.50.1/24 with its own dnsmasq DHCP server) --
``appliance`` (inet0: internet port, stream0: streaming port) -- ``tv``. The NetworkManager runs
inside the appliance namespace (this file run as a script, see ``appliance_main``) with a temp
tree as host root, so the machine's /etc/netplan is never touched; udhcpc is its DHCP client
(networkd on the appliance). The script also runs the listeners: the panel (an HTTP server that
exposes the manager for the test), SSH and DLNA HTTP.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PANEL, SSH, DLNA = 8080, 22, 8200
ROLLBACK = 4.0
TOOLS = ("ip", "nft", "dnsmasq", "udhcpc", "ethtool")


# -- the appliance side (runs inside the appliance namespace) ---------------------------------


def appliance_main(root: str, state: str) -> None:
    import asyncio

    from aiohttp import web
    from prometheus_client import CollectorRegistry, generate_latest

    from sokoul_appliance.bus import EventBus
    from sokoul_appliance.host import Host
    from sokoul_appliance.network.dhcp_client import UdhcpcDhcp
    from sokoul_appliance.network.manager import NetworkChangeError, NetworkManager
    from sokoul_appliance.network.roles import Services
    from sokoul_appliance.store.database import Store
    from sokoul_appliance.store.settings import Settings

    async def main() -> None:
        host = Host(Path(root))
        bus = EventBus()
        store = Store(Path(state) / "sokoul.db")
        await store.start()
        settings = Settings(store, bus)
        await settings.load()
        await settings.update(
            {
                "network.plan": {
                    "internet_port": "inet0",
                    "streaming_port": "stream0",
                    "streaming_subnet": "10.0.1.1/24",
                }
            }
        )
        registry = CollectorRegistry()
        ports = [
            {"name": n, "mac": Path(f"/sys/class/net/{n}/address").read_text().strip(),
             "pci_path": None}
            for n in ("inet0", "stream0")
        ]  # fmt: skip
        manager = NetworkManager(
            host, bus, settings, registry, lambda: ports,
            services=Services(panel=(PANEL,), ssh=SSH, dlna_http=DLNA),
            dhcp_client=UdhcpcDhcp(host.path("/run/sokoul/network")),
            live=True, rollback_seconds=ROLLBACK, sample_interval=0.5,
        )  # fmt: skip
        await manager.start()

        async def snapshot(_: web.Request) -> web.Response:
            return web.json_response(manager.snapshot())

        async def apply(request: web.Request) -> web.Response:
            try:
                return web.json_response(await manager.apply_change(await request.json()))
            except NetworkChangeError as e:
                return web.json_response({"error": str(e), "fields": e.fields}, status=400)

        async def confirm(request: web.Request) -> web.Response:
            body = await request.json()
            return web.json_response(await manager.confirm(body["id"]))

        async def metrics(_: web.Request) -> web.Response:
            await manager.sample()
            return web.Response(body=generate_latest(registry), content_type="text/plain")

        app = web.Application()
        app.add_routes(
            [
                web.get("/snapshot", snapshot),
                web.post("/apply", apply),
                web.post("/confirm", confirm),
                web.get("/metrics", metrics),
            ]
        )
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "0.0.0.0", PANEL).start()

        async def banner(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"hello\n")
            await writer.drain()
            writer.close()

        ssh = await asyncio.start_server(banner, "0.0.0.0", SSH)
        dlna = await asyncio.start_server(banner, "0.0.0.0", DLNA)
        Path(state, "ready").write_text("ok")
        try:
            await asyncio.Event().wait()
        finally:
            ssh.close()
            dlna.close()
            await manager.stop()
            await runner.cleanup()
            await store.stop()

    asyncio.run(main())


# -- the test side ------------------------------------------------------------------------------

CONNECT = (
    "import socket,sys\n"
    "s=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=float(sys.argv[3]))\n"
    "s.close()\n"
)


def reaches(ns: Any, address: str, port: int, timeout: float = 1.5) -> bool:
    return bool(ns.ok(sys.executable, "-c", CONNECT, address, str(port), str(timeout)))


def http_json(ns: Any, url: str, body: Any = None, timeout: float = 5) -> Any:
    code = (
        "import json,sys,urllib.request\n"
        "data=None if sys.argv[2]=='null' else sys.argv[2].encode()\n"
        "r=urllib.request.Request(sys.argv[1],data=data,method='POST' if data else 'GET')\n"
        "try:\n  print(urllib.request.urlopen(r,timeout=5).read().decode())\n"
        "except urllib.error.HTTPError as e:\n  print(e.read().decode())\n"
    )
    out = ns.run(sys.executable, "-c", code, url, json.dumps(body), timeout=timeout).stdout
    return json.loads(out) if out.strip().startswith(("{", "[")) else out


def tv_lease(tv: Any, tmp: Path) -> str | None:
    script = tmp / "tv-udhcpc.sh"
    script.write_text(
        '#!/bin/sh\n[ "$1" = bound ] && ip addr add "$ip/$mask" dev "$interface" && '
        f'echo "$ip/$mask" > {tmp / "tv.lease"}\nexit 0\n'
    )
    script.chmod(0o755)
    tv.run("udhcpc", "-f", "-q", "-n", "-B", "-i", "eth0", "-s", str(script), "-t", "6", "-T",
           "1", timeout=30, check=False)  # fmt: skip
    lease = tmp / "tv.lease"
    return lease.read_text().strip() if lease.exists() else None


@pytest.fixture
def lab(tmp_path: Path) -> Any:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing tools: {missing} (apt: nftables dnsmasq-base udhcpc ethtool)")
    sys.path.insert(0, str(REPO))
    from tests.netns import Lab

    with Lab() as lab:
        yield lab


def wait_for(predicate: Any, timeout: float, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def test_network_roles_firewall_dhcp_and_rollback(lab: Any, tmp_path: Path) -> None:
    router, app, tv = lab.namespace("router"), lab.namespace("appliance"), lab.namespace("tv")
    lab.veth(router, "lan0", app, "inet0")
    lab.veth(app, "stream0", tv, "eth0")
    # veth hands over packets with partial checksums, which DHCP clients' raw sockets reject
    for ns, ifname in ((router, "lan0"), (app, "stream0")):
        ns.run("ethtool", "-K", ifname, "tx", "off")
    router.add_address("lan0", "192.168.50.1/24")
    lab.start(
        router,
        ["dnsmasq", "--conf-file=/dev/null", "--keep-in-foreground", "--port=0", "--pid-file=",
         "--interface=lan0", "--bind-interfaces", "--log-facility=-",
         "--dhcp-range=192.168.50.100,192.168.50.150,255.255.255.0,1h",
         "--dhcp-option=option:router,192.168.50.1",
         f"--dhcp-leasefile={tmp_path / 'router.leases'}"],
        log=tmp_path / "router-dnsmasq.log",
    )  # fmt: skip
    # a routing appliance: only the firewall may stop forwarding between the networks
    app.run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    root, state = tmp_path / "root", tmp_path / "state"
    (root / "etc/netplan").mkdir(parents=True)
    state.mkdir()
    log = tmp_path / "appliance.log"
    proc = lab.start(
        app,
        [sys.executable, str(Path(__file__).resolve()), str(root), str(state)],
        log=log, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
    )  # fmt: skip
    assert wait_for(lambda: (state / "ready").exists() or proc.poll() is not None, 30)
    assert proc.poll() is None, log.read_text()
    panel = f"http://127.0.0.1:{PANEL}"

    # 1. the appliance gets its internet address from the router's DHCP server
    def internet_address() -> str | None:
        addrs = [a for a in app.addresses("inet0") if a.startswith("192.168.50.")]
        return addrs[0] if addrs else None

    address = wait_for(internet_address, 30)
    assert address, f"no DHCP address on inet0: {log.read_text()[-2000:]}"
    ip = address.split("/")[0]
    assert 100 <= int(ip.rsplit(".", 1)[1]) <= 150
    assert app.addresses("stream0") == ["10.0.1.1/24"]
    snap = http_json(app, panel + "/snapshot")
    assert snap["state"] == "ok", snap
    assert snap["dhcp_client"] == "udhcpc"
    netplan = root / "etc/netplan/90-sokoul.yaml"
    assert stat.S_IMODE(netplan.stat().st_mode) == 0o600
    assert "dhcp4: true" in netplan.read_text()

    # 2. the TV gets a lease in 10.0.1.0/24 from the appliance, reaches DLNA and the panel
    lease = tv_lease(tv, tmp_path)
    assert lease and lease.startswith("10.0.1."), lease
    assert 128 <= int(lease.split("/")[0].rsplit(".", 1)[1]) <= 254
    assert reaches(tv, "10.0.1.1", DLNA)
    assert reaches(tv, "10.0.1.1", PANEL)
    # ...but not the router side, even with a route through the appliance, and not SSH
    tv.run("ip", "route", "add", "192.168.50.0/24", "via", "10.0.1.1")
    assert not reaches(tv, "192.168.50.1", 53, timeout=1)
    assert not reaches(tv, "10.0.1.1", SSH)

    # 3. from the router side: SSH and the panel yes, DLNA no (dlna.serve_lan is off)
    assert reaches(router, ip, SSH)
    assert reaches(router, ip, PANEL)
    assert not reaches(router, ip, DLNA, timeout=1)

    metrics = http_json(app, panel + "/metrics")
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in metrics.splitlines()
        if line.startswith("sokoul_")
    }
    assert values['sokoul_network_receive_bytes_total{port="internet"}'] > 0
    assert values['sokoul_network_transmit_bytes_total{port="streaming"}'] > 0
    assert values['sokoul_firewall_dropped_packets_total{chain="forward"}'] >= 1
    assert values['sokoul_firewall_dropped_packets_total{chain="input_internet"}'] >= 1
    assert values['sokoul_firewall_dropped_packets_total{chain="input_streaming"}'] >= 1

    # 4. a broken change (wrong address on the internet port), not confirmed, rolls back
    trial = http_json(
        app, panel + "/apply",
        {"network.internet_mode": "static", "network.internet_address": "192.168.99.5/24"},
    )  # fmt: skip
    started = time.monotonic()
    assert trial["timeout_seconds"] == ROLLBACK and trial["seconds_left"] > 0, trial
    assert app.addresses("inet0") == ["192.168.99.5/24"]
    assert not reaches(router, ip, PANEL, timeout=1)
    snap = http_json(app, panel + "/snapshot")
    assert snap["change"]["pending"]["id"] == trial["id"]
    assert snap["change"]["pending"]["deadline"] == trial["deadline"]

    def panel_back() -> str | None:
        now = internet_address()
        return now if now and reaches(router, now.split("/")[0], PANEL, timeout=1) else None

    back = wait_for(panel_back, ROLLBACK + 20)
    elapsed = time.monotonic() - started
    assert back, f"panel not reachable after rollback: {log.read_text()[-2000:]}"
    assert ROLLBACK - 0.5 <= elapsed < 90
    snap = http_json(app, panel + "/snapshot")
    assert snap["change"]["pending"] is None
    assert snap["change"]["last"]["result"] == "rolled_back"
    assert "192.168.99.5" not in netplan.read_text()

    # 5. a confirmed change is kept and persisted to netplan
    trial = http_json(
        app, panel + "/apply",
        {"network.internet_mode": "static", "network.internet_address": "192.168.50.20/24",
         "network.internet_gateway": "192.168.50.1"},
    )  # fmt: skip
    assert reaches(router, "192.168.50.20", PANEL)
    done = http_json(app, panel + "/confirm", {"id": trial["id"]})
    assert done["last"]["result"] == "confirmed"
    time.sleep(ROLLBACK + 1)
    assert app.addresses("inet0") == ["192.168.50.20/24"]
    text = netplan.read_text()
    assert 'addresses: ["192.168.50.20/24"]' in text and 'via: "192.168.50.1"' in text
    assert stat.S_IMODE(netplan.stat().st_mode) == 0o600
    assert proc.poll() is None


if __name__ == "__main__":
    appliance_main(sys.argv[1], sys.argv[2])
