"""Network room, pure parts: config from settings, netplan and nftables rendering, rollback."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from sokoul_appliance.bus import EventBus
from sokoul_appliance.host import Host
from sokoul_appliance.network.dhcp_server import dnsmasq_argv, parse_leases
from sokoul_appliance.network.firewall import parse_counters, render_ruleset, rules_table
from sokoul_appliance.network.manager import (
    NetworkChangeError,
    NetworkManager,
    NetworkReadOnlyError,
)
from sokoul_appliance.network.netplan import render_netplan, write_atomically
from sokoul_appliance.network.roles import NetworkConfigError, Services, config_from_settings
from sokoul_appliance.network.rollback import RollbackTimer, TrialError
from sokoul_appliance.store.settings import KEYS

PORTS = [
    {"name": "enP2p1s0", "mac": "AA:BB:CC:00:00:01", "pci_path": "0002:01:00.0"},
    {"name": "enP3p1s0", "mac": "aa:bb:cc:00:00:02", "pci_path": "0003:01:00.0"},
]
PLAN = {
    "internet_port": "enP2p1s0",
    "streaming_port": "enP3p1s0",
    "streaming_subnet": "10.0.1.1/24",
}


def settings(**over: Any) -> dict[str, Any]:
    values = {k: v.default for k, v in KEYS.items()}
    values["network.plan"] = PLAN
    values.update({k.replace("__", "."): v for k, v in over.items()})
    return values


def config(**over: Any) -> Any:
    return config_from_settings(settings(**over).__getitem__, PORTS, Services(panel=(80, 443)))


def test_config_defaults_to_dhcp_and_pool_in_upper_half() -> None:
    c = config()
    assert (c.internet.name, c.internet.mac, c.streaming.pci_path) == (
        "enP2p1s0", "AA:BB:CC:00:00:01", "0003:01:00.0")  # fmt: skip
    assert c.internet_mode == "dhcp" and c.internet_address is None
    assert c.dhcp_range() == ("10.0.1.128", "10.0.1.254")


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"network__plan": None}, "the port roles are not chosen yet"),
        ({"network__plan": {**PLAN, "internet_port": "eth9"}}, "not on this board"),
        ({"network__plan": {**PLAN, "streaming_port": "enP2p1s0"}}, "two different ports"),
        ({"network__internet_mode": "static"}, "needs an address"),
        (
            {"network__internet_mode": "static", "network__internet_address": "10.0.1.9/16"},
            "overlaps the streaming network",
        ),
        (
            {
                "network__internet_mode": "static",
                "network__internet_address": "192.168.1.2/24",
                "network__internet_gateway": "192.168.2.1",
            },
            "not inside 192.168.1.0/24",
        ),  # fmt: skip
    ],
)
def test_config_errors_speak_to_the_owner(over: dict[str, Any], message: str) -> None:
    with pytest.raises(NetworkConfigError, match=message):
        config(**over)


def test_settings_keys_validate() -> None:
    assert KEYS["network.internet_address"].check("192.168.1.20/24") == "192.168.1.20/24"
    for bad in ("192.168.1.20", "192.168.1.0/24", "300.1.1.1/24", 5):
        with pytest.raises(ValueError):
            KEYS["network.internet_address"].check(bad)
    with pytest.raises(ValueError, match="DNS server 2"):
        KEYS["network.internet_dns"].check(["1.1.1.1", "nope"])
    with pytest.raises(ValueError):
        KEYS["network.internet_mode"].check("pppoe")
    assert KEYS["network.nat_streaming"].default is False


def test_netplan_dhcp_and_static() -> None:
    dhcp = render_netplan(config())
    assert "renderer: networkd" in dhcp
    assert 'macaddress: "aa:bb:cc:00:00:01"' in dhcp and "dhcp4: true" in dhcp
    assert 'addresses: ["10.0.1.1/24"]' in dhcp
    static = render_netplan(
        config(network__internet_mode="static", network__internet_address="192.168.1.20/24",
               network__internet_gateway="192.168.1.1", network__internet_dns=["1.1.1.1"])
    )  # fmt: skip
    assert static.count("dhcp4: false") == 2
    assert 'addresses: ["192.168.1.20/24"]' in static
    assert 'via: "192.168.1.1"' in static and 'addresses: ["1.1.1.1"]' in static
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        return
    doc = yaml.safe_load(static)
    eth = doc["network"]["ethernets"]
    assert eth["internet"]["routes"] == [{"to": "default", "via": "192.168.1.1"}]
    assert eth["streaming"]["match"] == {"macaddress": "aa:bb:cc:00:00:02"}


def test_write_atomically_mode_0600(tmp_path: Path) -> None:
    target = tmp_path / "etc/netplan/90-sokoul.yaml"
    write_atomically(target, "a: 1\n")
    write_atomically(target, "a: 2\n")
    assert target.read_text() == "a: 2\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["90-sokoul.yaml"]


def test_ruleset_default_and_with_lan_and_nat() -> None:
    rules = render_ruleset(config())
    assert rules.startswith("table inet sokoul {}\ndelete table inet sokoul\n")
    assert 'iifname { "enP2p1s0", "enP3p1s0" } tcp dport { 80, 443 } accept' in rules
    assert 'iifname "enP2p1s0" ip saddr { 10.0.0.0/8' in rules and "tcp dport 22 accept" in rules
    assert 'iifname "enP3p1s0" udp dport 1900 accept' in rules
    assert 'iifname "enP3p1s0" tcp dport { 8200 } accept' in rules
    assert "masquerade" not in rules and 'oifname "enP2p1s0" accept' not in rules
    assert "policy drop" in rules and rules.count("counter name") == 4
    lan = render_ruleset(config(dlna__serve_lan=True, network__nat_streaming=True))
    assert 'iifname { "enP3p1s0", "enP2p1s0" } udp dport 1900 accept' in lan
    assert 'iifname "enP3p1s0" oifname "enP2p1s0" accept' in lan
    assert 'oifname "enP2p1s0" ip saddr 10.0.1.0/24 masquerade' in lan
    table = {r.service: r for r in rules_table(config())}
    assert (table["ssh"].internet, table["ssh"].streaming) == (True, False)
    assert (table["DLNA HTTP"].internet, table["DLNA HTTP"].streaming) == (False, True)


def test_parse_counters_and_leases() -> None:
    nft = (
        '{"nftables": [{"metainfo": {}}, {"counter": {"family": "inet", "name": '
        '"drop_forward", "table": "sokoul", "packets": 7, "bytes": 420}}]}'
    )
    assert parse_counters(nft) == {"forward": 7}
    leases = "2000000000 aa:bb:cc:dd:ee:ff 10.0.1.130 samsung-tv 01:aa\n100 00:00 10.0.1.131 * *\n"
    assert parse_leases(leases, now=1000) == [
        {"mac": "aa:bb:cc:dd:ee:ff", "address": "10.0.1.130", "hostname": "samsung-tv",
         "expires": 2000000000}
    ]  # fmt: skip


def test_dnsmasq_argv_no_route_without_nat(tmp_path: Path) -> None:
    argv = dnsmasq_argv(config(), tmp_path)
    assert "--interface=enP3p1s0" in argv and "--port=0" in argv
    assert "--dhcp-range=10.0.1.128,10.0.1.254,255.255.255.0,12h" in argv
    assert "--dhcp-option=option:router" in argv
    nat = dnsmasq_argv(config(network__nat_streaming=True), tmp_path)
    assert "--dhcp-option=option:router,10.0.1.1" in nat and "--port=0" not in nat


async def test_rollback_reverts_unless_confirmed() -> None:
    timer = RollbackTimer()
    reverted: list[str] = []

    async def revert() -> None:
        reverted.append("yes")

    trial = timer.begin({"k": 1}, 0.05, revert)
    assert timer.snapshot()["pending"]["seconds_left"] <= 0.05
    with pytest.raises(TrialError):
        timer.begin({"k": 2}, 1, revert)
    await asyncio.sleep(0.15)
    assert reverted == ["yes"] and timer.last and timer.last["result"] == "rolled_back"
    assert timer.pending is None
    with pytest.raises(TrialError):
        timer.confirm(trial.id)
    kept = timer.begin({"k": 3}, 0.05, revert)
    timer.confirm(kept.id)
    await asyncio.sleep(0.1)
    assert reverted == ["yes"] and timer.last["result"] == "confirmed"


class FakeSettings:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def get(self, key: str) -> Any:
        return self.values[key]


async def test_manager_on_simulated_board_is_read_only(tmp_path: Path) -> None:
    host = Host(tmp_path)
    assert not host.live
    registry = CollectorRegistry()
    mgr = NetworkManager(host, EventBus(), FakeSettings(settings()), registry, lambda: PORTS)  # type: ignore[arg-type]
    await mgr.start()
    try:
        snap = mgr.snapshot()
        assert snap["state"] == "unavailable" and snap["applies_changes"] is False
        assert "dhcp4: true" in snap["rendered"]["netplan"]
        assert snap["rendered"]["netplan_path"] == "/etc/netplan/90-sokoul.yaml"
        assert "table inet sokoul" in snap["rendered"]["nftables"]
        assert snap["change"] == {"pending": None, "last": None}
        preview = mgr.preview({"network.internet_mode": "static",
                               "network.internet_address": "192.168.1.20/24"})  # fmt: skip
        assert 'addresses: ["192.168.1.20/24"]' in preview["netplan"]
        # swapping the port roles (the panel's form, also after a preseed): the netplan
        # follows the MACs; a bad choice names each field
        swapped = mgr.preview(
            {"network.plan": {"internet_port": "enP3p1s0", "streaming_port": "enP2p1s0"}}
        )
        roles = {p["role"]: p["name"] for p in swapped["config"]["ports"]}
        assert roles == {"internet": "enP3p1s0", "streaming": "enP2p1s0"}
        assert "10.0.1.1/24" in swapped["netplan"]
        with pytest.raises(NetworkChangeError) as bad:
            mgr.preview(
                {
                    "network.plan": {
                        "internet_port": "enP2p1s0",
                        "streaming_port": "eth9",
                        "streaming_subnet": "8.8.8.1/24",
                    }
                }
            )
        assert set(bad.value.fields) == {"streaming_port", "streaming_subnet"}
        assert "enP2p1s0, enP3p1s0" in bad.value.fields["streaming_port"]
        with pytest.raises(NetworkReadOnlyError):
            await mgr.apply_change({"network.internet_mode": "static"})
        assert not (tmp_path / "etc").exists() and not (tmp_path / "run").exists()
        assert b"sokoul_firewall_dropped_packets" in generate_latest(registry)
    finally:
        await mgr.stop()


async def test_manager_waits_for_the_wizard(tmp_path: Path) -> None:
    values = settings(network__plan=None)
    mgr = NetworkManager(Host(tmp_path), EventBus(), FakeSettings(values), None, lambda: PORTS)  # type: ignore[arg-type]
    await mgr.start()
    try:
        assert mgr.status()[0] == "waiting" and "roles are not chosen" in mgr.status()[1]
        assert mgr.snapshot()["config"] is None
    finally:
        await mgr.stop()
