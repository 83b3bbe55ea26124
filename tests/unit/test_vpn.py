"""The vpn room's pure parts: config validation and stripping, the kill-switch ruleset, NAT-PMP
packets and renewal, wg dump parsing; the manager changes nothing for a bad config or on a
simulated board (no command runs)."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from sokoul_appliance.bus import EventBus
from sokoul_appliance.events import VpnPortForwarded
from sokoul_appliance.host import CommandResult, Host
from sokoul_appliance.vpn.health import handshake_age, ip_in_body, parse_dump
from sokoul_appliance.vpn.killswitch import (
    parse_counters,
    render_ports_update,
    render_ruleset,
)
from sokoul_appliance.vpn.manager import VpnManager, default_gateway
from sokoul_appliance.vpn.namespace import resolv_conf_text, routes_for
from sokoul_appliance.vpn.natpmp import (
    Mapping,
    NatPmpClient,
    NatPmpError,
    PortForwarder,
    decode_external_address,
    decode_map_response,
    encode_external_address_request,
    encode_map_request,
)
from sokoul_appliance.vpn.wgconf import WireGuardConfigError, parse, setconf_text


def key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


PRIV, PUB, PSK = key(), key(), key()
GOOD = f"""[Interface]
PrivateKey = {PRIV}
Address = 10.2.0.2/32, fd00::2/128
DNS = 10.2.0.1, vpn.lan
MTU = 1380
ListenPort = 51000

[Peer]
PublicKey = {PUB}
PresharedKey = {PSK}
AllowedIPs = 0.0.0.0/0, ::/0
Endpoint = [2001:db8::7]:51820
"""


# -- config ---------------------------------------------------------------------------------------
def test_setconf_strips_wg_quick_fields() -> None:
    text = setconf_text(parse(GOOD))
    assert text == (
        f"[Interface]\nPrivateKey = {PRIV}\nListenPort = 51000\n\n[Peer]\nPublicKey = {PUB}\n"
        f"PresharedKey = {PSK}\nAllowedIPs = 0.0.0.0/0, ::/0\nEndpoint = [2001:db8::7]:51820\n"
        "PersistentKeepalive = 25\n"
    )
    for field in ("Address", "DNS", "MTU", "Table", "FwMark"):
        assert field not in text


def test_keepalive_from_config_is_kept() -> None:
    cfg = parse(GOOD.replace("Endpoint =", "PersistentKeepalive = 10\nEndpoint ="))
    assert "PersistentKeepalive = 10\n" in setconf_text(cfg)


MALFORMED = {
    "missing key": (
        GOOD.replace(f"PrivateKey = {PRIV}\n", ""),
        ["[Interface] has no PrivateKey"],
    ),
    "bad base64": (
        GOOD.replace(f"PublicKey = {PUB}", "PublicKey = not*base64*at*all"),
        ["line 9: PublicKey is not a base64 32-byte key"],
    ),
    "short key": (
        GOOD.replace(f"PrivateKey = {PRIV}", "PrivateKey = c2hvcnQ="),
        ["line 2: PrivateKey is not a base64 32-byte key"],
    ),
    "bad endpoint": (
        GOOD.replace("[2001:db8::7]:51820", "vpn.example.net:99999"),
        ["line 12: Endpoint must be host:port, got 'vpn.example.net:99999'"],
    ),
    "endpoint without brackets": (
        GOOD.replace("[2001:db8::7]:51820", "2001:db8::7:51820"),
        [
            "line 12: Endpoint '2001:db8::7:51820' has an IPv6 address: write it in brackets, "
            "e.g. [2001:db8::1]:51820"
        ],
    ),
    "bad AllowedIPs": (
        GOOD.replace("0.0.0.0/0, ::/0", "0.0.0.0/0, 10.0.0.0/33"),
        ["line 11: AllowedIPs '10.0.0.0/33' is not an IP network"],
    ),
    "AllowedIPs word": (
        GOOD.replace("0.0.0.0/0, ::/0", "everything"),
        ["line 11: AllowedIPs 'everything' is not an IP network", "peer 1 has no AllowedIPs"],
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_configs_name_the_field(case: str) -> None:
    text, errors = MALFORMED[case]
    with pytest.raises(WireGuardConfigError) as e:
        parse(text)
    assert e.value.errors == errors


class RecordingHost(Host):
    """A live host (root "/") whose commands are recorded and refused: nothing may run."""

    def __init__(self, root: Path = Path("/")) -> None:
        super().__init__(root)
        self.calls: list[tuple[str, ...]] = []

    async def run(self, *argv: str, timeout: float = 30.0) -> CommandResult:
        self.calls.append(argv)
        raise AssertionError(f"no command may run here: {argv}")


class FakeSettings:
    def __init__(self, conf: str | None) -> None:
        self.values: dict[str, Any] = {"vpn.wireguard_conf": conf}

    def get(self, key: str) -> Any:
        return self.values[key]


async def run_manager(host: Host, conf: str | None, tmp_path: Path) -> VpnManager:
    manager = VpnManager(
        host,
        EventBus(),
        FakeSettings(conf),
        CollectorRegistry(),
        namespace="sokoul-unit-never",
        resolv_dir=tmp_path / "netns",
    )
    await manager.start()
    await asyncio.sleep(0.05)
    await manager.stop()
    return manager


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_malformed_config_changes_nothing(case: str, tmp_path: Path) -> None:
    host = RecordingHost()
    manager = await run_manager(host, MALFORMED[case][0], tmp_path)
    assert host.calls == []
    assert not (tmp_path / "netns").exists()
    snap = manager.snapshot()
    assert snap["state"] == "down" and snap["config_errors"] == MALFORMED[case][1]
    assert snap["config"] is None
    state, detail = manager.status()
    assert state == "error" and MALFORMED[case][1][0] in detail


async def test_simulated_board_is_read_only(tmp_path: Path) -> None:
    host = RecordingHost(tmp_path)
    assert not host.live
    manager = await run_manager(host, GOOD, tmp_path)
    assert host.calls == []
    snap = manager.snapshot()
    assert snap["state"] == "down" and snap["simulated"] is True
    assert snap["config"]["addresses"] == ["10.2.0.2/32", "fd00::2/128"]
    assert snap["endpoint"] == "[2001:db8::7]:51820"
    assert PRIV not in str(snap) and PSK not in str(snap)
    assert manager.status()[0] == "unavailable"


async def test_not_configured(tmp_path: Path) -> None:
    host = RecordingHost()
    manager = await run_manager(host, None, tmp_path)
    assert host.calls == [] and manager.snapshot()["state"] == "not_configured"
    assert manager.status()[0] == "not_configured"


# -- namespace and kill switch ---------------------------------------------------------------------
def test_routes_and_resolv_conf() -> None:
    cfg = parse(GOOD)
    assert routes_for(cfg) == ["0.0.0.0/0", "::/0"]
    v4only = parse(GOOD.replace(", fd00::2/128", ""))
    assert routes_for(v4only) == ["0.0.0.0/0"]  # no IPv6 address: no IPv6 route at all
    assert resolv_conf_text(cfg).splitlines()[1:] == ["nameserver 10.2.0.1", "search vpn.lan"]
    assert default_gateway(cfg) == "10.2.0.1"
    assert default_gateway(parse(GOOD.replace("10.2.0.2/32", "10.8.0.7/24"))) == "10.8.0.1"


def test_ruleset_drops_everything_but_the_tunnel() -> None:
    text = render_ruleset("wgx1", ports=(6881, 6881))
    assert text.startswith("table inet sokoul_killswitch\ndelete table inet sokoul_killswitch\n")
    assert text.count("policy drop;") == 3
    assert 'oifname "wgx1" accept' in text and 'oifname "lo" accept' in text
    assert 'udp dport 53 counter name "dropped_dns" drop' in text
    assert "elements = { 6881 }" in text
    assert "ip daddr" not in text  # no hole for any address: the UDP socket lives outside
    with pytest.raises(ValueError):
        render_ruleset('wg0" accept; #')
    assert render_ports_update(()) == "flush set inet sokoul_killswitch forwarded_ports\n"
    assert render_ports_update((51413,)).endswith("forwarded_ports { 51413 }\n")


def test_parse_counters() -> None:
    text = (
        '{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"counter": {"family": "inet", '
        '"name": "dropped_out", "table": "sokoul_killswitch", "handle": 4, "packets": 7, '
        '"bytes": 420}}, {"counter": {"name": "dropped_dns", "packets": 2, "bytes": 1}}]}'
    )
    assert parse_counters(text) == {"dropped_out": 7, "dropped_dns": 2}


# -- health ---------------------------------------------------------------------------------------
def test_wg_dump() -> None:
    dump = (
        f"{PRIV}\t{PUB}\t51000\toff\n"
        f"{PUB}\t(none)\t192.0.2.7:51820\t0.0.0.0/0,::/0\t1700000000\t1200\t3400\t25\n"
    )
    peers = parse_dump(dump)
    assert peers[0].endpoint == "192.0.2.7:51820" and peers[0].rx_bytes == 1200
    assert handshake_age(peers, 1700000042.0) == 42.0
    never = parse_dump(dump.replace("1700000000", "0"))
    assert handshake_age(never, 1700000042.0) is None


def test_ip_in_body() -> None:
    assert ip_in_body("203.0.113.9\n") == "203.0.113.9"
    assert ip_in_body('{"ip":"2001:db8::5"}') == "2001:db8::5"
    assert ip_in_body("<html>no</html>") is None


# -- NAT-PMP --------------------------------------------------------------------------------------
def test_natpmp_packets() -> None:
    assert encode_external_address_request() == b"\x00\x00"
    assert encode_map_request("tcp", 0, 51413, 3600) == bytes.fromhex(
        "0002 0000 0000 c8d5 00000e10"
    )
    answer = struct.pack("!BBHIHHI", 0, 129, 0, 99, 0, 40000, 60)
    assert decode_map_response(answer, "udp") == Mapping("udp", 0, 40000, 60, 99)
    with pytest.raises(NatPmpError, match="expected 2"):
        decode_map_response(answer, "tcp")
    refused = struct.pack("!BBHIHHI", 0, 130, 2, 99, 0, 0, 0)
    with pytest.raises(NatPmpError, match="not authorized"):
        decode_map_response(refused, "tcp")
    ext = struct.pack("!BBHI4s", 0, 128, 0, 5, bytes([198, 51, 100, 4]))
    assert decode_external_address(ext) == ("198.51.100.4", 5)
    with pytest.raises(NatPmpError, match="too short"):
        decode_external_address(b"\x00\x80\x00\x00")


class Gateway(asyncio.DatagramProtocol):
    """A NAT-PMP gateway double on loopback: hands out 40000, then 40001 after ``rotate``."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.port = 40000
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.requests.append(data)
        if data[1] == 0:
            self.transport.sendto(
                struct.pack("!BBHI4s", 0, 128, 0, 1, bytes([198, 51, 100, 4])), addr
            )
            return
        _, op, _, internal, _, lifetime = struct.unpack("!BBHHHI", data)
        self.transport.sendto(
            struct.pack("!BBHIHHI", 0, 128 + op, 0, 1, internal, self.port, min(lifetime, 60)),
            addr,
        )


async def plain_udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    return s


async def test_forwarder_maps_renews_and_publishes() -> None:
    loop = asyncio.get_running_loop()
    transport, gw = await loop.create_datagram_endpoint(Gateway, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    seen: list[int] = []

    async def on_port(p: int) -> None:
        seen.append(p)

    try:
        client = NatPmpClient(plain_udp, "127.0.0.1", first_wait=0.05, tries=3, port=port)
        fw = PortForwarder(client, on_port, renew_every=900, lifetime=3600)
        assert await fw.refresh() == 30.0  # granted 60 s: renew at half of it
        assert (fw.port, fw.tcp_port, fw.external_ip, fw.renewals) == (
            40000,
            40000,
            "198.51.100.4",
            0,
        )
        assert await fw.refresh() == 30.0
        assert fw.renewals == 1 and seen == [40000]  # same port: no second event
        udp_renewal = gw.requests[3]
        assert struct.unpack("!BBHHHI", udp_renewal) == (0, 1, 0, 0, 40000, 3600)
        gw.port = 40001
        await fw.refresh()
        assert seen == [40000, 40001]
    finally:
        transport.close()


async def test_natpmp_silence_is_a_clear_error() -> None:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    try:
        client = NatPmpClient(
            plain_udp, "127.0.0.1", first_wait=0.02, tries=2, port=sink.getsockname()[1]
        )
        with pytest.raises(NatPmpError, match="may not offer port forwarding"):
            await client.map_port("udp", 0, 0, 60)
    finally:
        sink.close()


async def test_forwarder_publishes_port_zero_when_stopped() -> None:
    bus = EventBus()
    with bus.subscribe(VpnPortForwarded) as sub:

        class OneShot:
            gateway = "x"

            async def map_port(self, protocol: str, i: int, e: int, lifetime: int) -> Mapping:
                return Mapping(protocol, i, 50000, lifetime, 1)

            async def external_address(self) -> str:
                raise NatPmpError("no")

        async def on_port(p: int) -> None:
            bus.publish(VpnPortForwarded(p))

        fw = PortForwarder(OneShot(), on_port)  # type: ignore[arg-type]
        task = asyncio.create_task(fw.run())
        assert await asyncio.wait_for(sub.get(), 2) == VpnPortForwarded(50000)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.wait_for(sub.get(), 2) == VpnPortForwarded(0)
