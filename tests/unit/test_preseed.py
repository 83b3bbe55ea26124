from __future__ import annotations

from pathlib import Path

import pytest
from sokoul_first_boot import PreseedError, parse_preseed

from sokoul_appliance.passwords import hash_password, verify_password

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ5ZkP1a0nQm4lqgYVb0o3m4Zq0y1n2k3l4m5n6o7p8q me@laptop"


@pytest.fixture
def zoneinfo(tmp_path: Path) -> Path:
    (tmp_path / "Europe").mkdir()
    (tmp_path / "Europe/Paris").write_bytes(b"TZif2")
    return tmp_path


def test_full_preseed_parses(zoneinfo: Path) -> None:
    h = hash_password("correct horse")
    p = parse_preseed(
        f'hostname = "living-room"\ntimezone = "Europe/Paris"\n'
        f'[admin]\npassword_hash = "{h}"\n[ssh]\nauthorized_keys = ["{KEY}"]\n',
        zoneinfo,
    )
    assert (p.hostname, p.timezone, p.admin_password_hash) == ("living-room", "Europe/Paris", h)
    assert p.ssh_authorized_keys == (KEY,)
    assert verify_password("correct horse", p.admin_password_hash or "")
    assert not verify_password("wrong", p.admin_password_hash or "")


def test_empty_preseed_is_valid(zoneinfo: Path) -> None:
    p = parse_preseed("", zoneinfo)
    assert p.hostname is None and p.ssh_authorized_keys == ()


def test_every_error_is_reported_at_once(zoneinfo: Path) -> None:
    text = (
        'hostname = "Living_Room!"\ntimezone = "Mars/Olympus"\nwifi = "x"\n'
        '[admin]\npassword_hash = "hunter2"\nuser = "bob"\n'
        '[ssh]\nauthorized_keys = ["not a key"]\n'
    )
    with pytest.raises(PreseedError) as e:
        parse_preseed(text, zoneinfo)
    errors = e.value.errors
    assert len(errors) == 6, errors
    joined = "\n".join(errors)
    for needle in (
        "unknown setting 'wifi'",
        "hostname:",
        "timezone: 'Mars/Olympus'",
        "admin.password_hash",
        "admin.user",
        "ssh.authorized_keys[1]",
    ):
        assert needle in joined


def test_weak_or_malformed_scrypt_is_refused(zoneinfo: Path) -> None:
    weak = hash_password("pw", n=2**10)
    with pytest.raises(PreseedError, match="cost too low"):
        parse_preseed(f'[admin]\npassword_hash = "{weak}"\n', zoneinfo)


def test_bad_toml_and_path_like_timezone(zoneinfo: Path) -> None:
    with pytest.raises(PreseedError, match="not valid TOML"):
        parse_preseed("hostname = ", zoneinfo)
    with pytest.raises(PreseedError, match="timezone"):
        parse_preseed('timezone = "../../etc/passwd"\n', zoneinfo)


def test_hash_password_refuses_empty() -> None:
    with pytest.raises(ValueError):
        hash_password("")
    assert not verify_password("x", "scrypt$garbage")
