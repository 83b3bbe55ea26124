"""Pure pieces of the supervisor core: WireGuard config validation, login throttling, the event
bus, settings patches."""

from __future__ import annotations

import asyncio
import base64
import os

import pytest

from sokoul_appliance.auth.throttle import LoginThrottle
from sokoul_appliance.bus import EventBus
from sokoul_appliance.events import LogLine, SettingsChanged
from sokoul_appliance.store.settings import SettingsError, flatten_patch
from sokoul_appliance.vpn.wgconf import WireGuardConfigError, parse


def key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


GOOD = f"""# from the provider
[Interface]
PrivateKey = {key()}
Address = 10.64.0.2/32, fd00::2/128
DNS = 10.64.0.1
MTU = 1420

[Peer]
PublicKey = {key()}
PresharedKey = {key()}
AllowedIPs = 0.0.0.0/0, ::/0
Endpoint = vpn.example.net:51820
PersistentKeepalive = 25
"""


def test_wireguard_config_parses() -> None:
    cfg = parse(GOOD)
    assert cfg.addresses == ["10.64.0.2/32", "fd00::2/128"]
    assert cfg.dns == ["10.64.0.1"] and cfg.mtu == 1420
    assert len(cfg.peers) == 1 and cfg.peers[0].allowed_ips == ["0.0.0.0/0", "::/0"]
    assert cfg.peers[0].persistent_keepalive == 25
    assert "PrivateKey" not in str(cfg.summary()) and cfg.private_key not in str(cfg.summary())


def test_wireguard_config_errors_name_every_line() -> None:
    bad = """[Interface]
PrivateKey = c2hvcnQ=
Address = 10.64.0.300/32
PostUp = iptables -F
Bogus = 1
[Peer]
PublicKey = {k}
Endpoint = nohost
""".replace("{k}", key())
    with pytest.raises(WireGuardConfigError) as e:
        parse(bad)
    assert e.value.errors == [
        "line 2: PrivateKey is not a base64 32-byte key",
        "line 3: Address '10.64.0.300/32' is not an IP address/prefix",
        "line 4: PostUp runs commands as root and is not accepted; remove it (the appliance "
        "sets up routing and the kill switch itself)",
        "line 5: unknown [Interface] setting Bogus",
        "line 8: Endpoint must be host:port, got 'nohost'",
        "[Interface] has no Address (the tunnel address your provider gave)",
        "peer 1 has no AllowedIPs",
    ]


def test_wireguard_config_rejects_non_configs() -> None:
    with pytest.raises(WireGuardConfigError) as e:
        parse("just some text")
    assert "line 1: expected 'Key = Value'" in e.value.errors
    with pytest.raises(WireGuardConfigError):
        parse("x" * (65 * 1024))


def test_throttle_locks_after_five_and_doubles() -> None:
    t = LoginThrottle()
    waits = [t.failure("192.0.2.1") for _ in range(7)]
    assert waits[:4] == [None] * 4
    assert waits[4:] == [30.0, 60.0, 120.0]
    wait = t.retry_after("192.0.2.1")
    assert wait is not None and 119 < wait <= 120
    assert t.retry_after("192.0.2.2") is None  # another address is not affected
    for _ in range(20):
        t.failure("192.0.2.3")
    assert t.retry_after("192.0.2.3") == pytest.approx(900, abs=1)  # capped at 15 min
    t.success("192.0.2.1")
    assert t.retry_after("192.0.2.1") is None


async def test_bus_fans_out_by_type_and_drops_oldest_for_slow_subscribers() -> None:
    bus = EventBus()
    with bus.subscribe(LogLine, size=2) as logs, bus.subscribe() as everything:
        for i in range(3):
            bus.publish(LogLine(float(i), "INFO", "t", f"m{i}"))
        bus.publish(SettingsChanged(("a",)))
        assert logs.dropped == 1
        assert [(await logs.get()).message for _ in range(2)] == ["m1", "m2"]
        assert logs.queue.empty()
        got = [await everything.get() for _ in range(4)]
        assert isinstance(got[-1], SettingsChanged)
        assert bus.subscriber_count == 2
    assert bus.subscriber_count == 0
    bus.publish(LogLine(0.0, "INFO", "t", "nobody listens"))  # no error, no block
    await asyncio.sleep(0)


def test_settings_patch_flattens_and_names_unknown_fields() -> None:
    assert flatten_patch({"thermal": {"throttle_c": 80}, "hostname": "x"}) == {
        "thermal.throttle_c": 80,
        "system.hostname": "x",
    }
    with pytest.raises(SettingsError) as e:
        flatten_patch({"thermal": {"fan": 1}, "rm": True})
    assert e.value.fields == {"thermal.fan": "unknown setting", "rm": "unknown setting"}
    with pytest.raises(SettingsError):
        flatten_patch([1, 2])
