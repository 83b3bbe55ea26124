"""First boot against a fixture root: NIC ordering, hostname, preseed apply/reject, record."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from sokoul_first_boot import ERRORS_NAME, PRESEED_NAME, REJECTED_NAME, FirstBoot

from sokoul_appliance.passwords import hash_password

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ5ZkP1a0nQm4lqgYVb0o3m4Zq0y1n2k3l4m5n6o7p8q me@laptop"


def add_nic(root: Path, name: str, pci: str, mac: str) -> None:
    dev = root / "sys/devices" / pci / name
    dev.mkdir(parents=True)
    net = root / "sys/class/net" / name
    net.mkdir(parents=True)
    (net / "device").symlink_to(dev)
    (net / "address").write_text(mac + "\n")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tsokoul\n")
    (tmp_path / "usr/share/zoneinfo/Europe").mkdir(parents=True)
    (tmp_path / "usr/share/zoneinfo/Europe/Paris").write_bytes(b"TZif2")
    (tmp_path / "boot/efi").mkdir(parents=True)
    lo = tmp_path / "sys/class/net/lo"
    lo.mkdir(parents=True)
    (lo / "address").write_text("00:00:00:00:00:00\n")
    # Listed in the "wrong" order on purpose: the port on the lower PCI path wins.
    add_nic(tmp_path, "enP2p1s0", "pci0002:00/0002:00:00.0/0002:01:00.0", "aa:bb:cc:dd:22:22")
    add_nic(tmp_path, "enP1p1s0", "pci0001:00/0001:00:00.0/0001:01:00.0", "aa:bb:cc:dd:1e:5f")
    return tmp_path


def no_commands(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    raise AssertionError(f"unexpected command {argv}")


def test_hostname_from_first_nic_by_pci_path(root: Path) -> None:
    fb = FirstBoot(root=root, run=no_commands, live=False, log=lambda m: None)
    assert fb.first_nic_mac() == "aa:bb:cc:dd:1e:5f"
    assert fb.default_hostname() == "sokoul-1e5f"
    fb.set_hostname("sokoul-1e5f")
    assert (root / "etc/hostname").read_text() == "sokoul-1e5f\n"
    hosts = (root / "etc/hosts").read_text().splitlines()
    assert "127.0.1.1\tsokoul-1e5f" in hosts and "127.0.1.1\tsokoul" not in hosts


def test_valid_preseed_is_applied_then_deleted(root: Path) -> None:
    h = hash_password("pw-for-test")
    (root / "boot/efi" / PRESEED_NAME).write_text(
        f'hostname = "den"\ntimezone = "Europe/Paris"\n[admin]\npassword_hash = "{h}"\n'
        f'[ssh]\nauthorized_keys = ["{KEY}"]\n'
    )
    fb = FirstBoot(root=root, run=no_commands, live=False, log=lambda m: None)
    status, preseed = fb.apply_preseed()
    assert status == "applied" and preseed is not None and preseed.hostname == "den"
    assert not (root / "boot/efi" / PRESEED_NAME).exists()
    assert os.readlink(root / "etc/localtime") == "/usr/share/zoneinfo/Europe/Paris"
    assert (root / "etc/timezone").read_text() == "Europe/Paris\n"
    auth = root / "root/.ssh/authorized_keys"
    assert auth.read_text() == KEY + "\n" and auth.stat().st_mode & 0o777 == 0o600
    record = root / "var/lib/sokoul/preseed.json"
    assert json.loads(record.read_text())["admin_password_hash"] == h
    assert record.stat().st_mode & 0o777 == 0o600


def test_invalid_preseed_applies_nothing_and_explains(root: Path) -> None:
    (root / "boot/efi" / PRESEED_NAME).write_text('hostname = "-bad-"\ntimezone = "Europe/Paris"\n')
    fb = FirstBoot(root=root, run=no_commands, live=False, log=lambda m: None)
    status, preseed = fb.apply_preseed()
    assert (status, preseed) == ("rejected", None)
    assert not (root / "etc/localtime").exists()  # the valid part was not applied either
    assert (root / "boot/efi" / REJECTED_NAME).exists()
    assert "hostname:" in (root / "boot/efi" / ERRORS_NAME).read_text()
    assert fb.record["preseed_errors"] and not (root / "var/lib/sokoul/preseed.json").exists()


def test_run_all_writes_the_record_last_and_is_rerunnable(root: Path) -> None:
    calls: list[list[str]] = []

    def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        calls.append(list(argv))
        return subprocess.CompletedProcess(list(argv), 0, "", "")

    (root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (root / "etc/ssh").mkdir()
    for _ in range(2):  # a second run (after a power cut) does the same, harmlessly
        fb = FirstBoot(root=root, run=run, live=False, log=lambda m: None)
        record = fb.run_all(grow=False)
    assert record["completed"] is True and record["hostname"] == "sokoul-1e5f"
    assert record["preseed"] == "absent"
    saved = json.loads((root / "var/lib/sokoul/first-boot.json").read_text())
    assert saved["hostname"] == "sokoul-1e5f"
    assert calls == [["ssh-keygen", "-A", "-f", str(root)]] * 2
