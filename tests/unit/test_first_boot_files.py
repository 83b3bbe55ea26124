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
    for _ in range(2):  # a second run (after a power cut) does the same, harmlessly
        fb = FirstBoot(root=root, run=run, live=False, log=lambda m: None)
        record = fb.run_all(grow=False)
    assert record["completed"] is True and record["hostname"] == "sokoul-1e5f"
    assert record["preseed"] == "absent"
    saved = json.loads((root / "var/lib/sokoul/first-boot.json").read_text())
    assert saved["hostname"] == "sokoul-1e5f"
    assert calls == []  # machine id in place, no growing asked: nothing to run


def add_disk(root: Path, disk: str, parts: dict[int, str]) -> None:
    """A disk under /sys/devices with GPT partitions named as given (PARTNAME in the uevent)."""
    dev = root / "sys/devices/pci0000:00/0000:00:02.0/nvme" / disk
    (root / "sys/class/block").mkdir(parents=True, exist_ok=True)
    (root / "sys/dev/block").mkdir(parents=True, exist_ok=True)
    for n, name in parts.items():
        part = dev / f"{disk}p{n}"
        part.mkdir(parents=True)
        (part / "partition").write_text(f"{n}\n")
        (part / "size").write_text("2097152\n")
        (part / "uevent").write_text(
            f"MAJOR=259\nMINOR={n}\nDEVNAME={part.name}\nDEVTYPE=partition\n"
            f"PARTN={n}\nPARTNAME={name}\n"
        )
        (root / "sys/class/block" / part.name).symlink_to(part)
    (dev / "size").write_text("12582912\n")


def test_esp_is_found_on_the_roots_own_disk(root: Path) -> None:
    # a second disk flashed with the same image also has a "sokoul-esp": it must not be taken
    add_disk(root, "nvme0n1", {1: "sokoul-esp", 2: "sokoul-root"})
    add_disk(root, "nvme1n1", {1: "sokoul-esp", 2: "sokoul-root"})
    root_part = root / "sys/devices/pci0000:00/0000:00:02.0/nvme/nvme1n1/nvme1n1p2"
    (root / "sys/dev/block/259:2").symlink_to(root_part)
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/mountinfo").write_text(
        "26 1 259:2 / / rw,noatime shared:1 - ext4 /dev/nvme1n1p2 rw\n"
    )
    fb = FirstBoot(root=root, run=no_commands, live=False, log=lambda m: None)
    assert fb.root_block_device() == "nvme1n1p2"
    assert fb.esp_partition() == "nvme1n1p1"


def test_partition_grows_with_sfdisk_and_partx(root: Path, tmp_path: Path) -> None:
    add_disk(root, "nvme0n1", {1: "sokoul-esp", 2: "sokoul-root"})
    calls: list[list[str]] = []

    def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        calls.append(list(argv))
        if argv[0] == "partx":  # the kernel now sees the grown partition
            (root / "sys/class/block/nvme0n1p2/size").write_text("12000000\n")
        return subprocess.CompletedProcess(list(argv), 0, "", "")

    fb = FirstBoot(root=root, run=run, live=False, log=lambda m: None)
    result = fb.grow_partition("nvme0n1p2", tmp_path)
    assert result["grew"] is True and result["partition_bytes_after"] == 12000000 * 512
    assert calls == [
        ["sh", "-c", 'echo ", +" | sfdisk --no-reread --no-tell-kernel -q -N 2 /dev/nvme0n1'],
        ["partx", "--update", "--nr", "2", "/dev/nvme0n1"],
        ["resize2fs", "/dev/nvme0n1p2"],
    ]


def test_first_boot_unit_waits_only_for_what_it_needs() -> None:
    """It must not hold up sysinit.target (everything waited for it) nor wait for the ESP's
    mount unit (udev announces the ESP late in a slow boot); it stays before what uses it."""

    text = (
        Path(__file__).resolve().parents[2] / "first_boot/sokoul-first-boot.service"
    ).read_text()
    after: list[str] = []
    before: list[str] = []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "After":
            after += value.split()
        elif key == "Before":
            before += value.split()
    assert "sysinit.target" not in before and "basic.target" not in before
    assert not any(u.endswith(".mount") or u.endswith(".device") for u in after)
    for unit_name in (
        "network-pre.target",
        "systemd-networkd.service",
        "ssh.service",
        "avahi-daemon.service",
        "sokoul-supervisor.service",
        "boot-efi.mount",
    ):
        assert unit_name in before, unit_name
    assert "DefaultDependencies=no" in text


def test_sshd_keygen_dropin_runs_whenever_a_host_key_is_missing() -> None:
    """SSH host keys come from Debian's sshd-keygen.service, before sshd and off first boot's
    path; the image's drop-in resets Debian's first-boot-only condition, so a power cut during
    the first boot cannot leave sshd without keys."""
    repo = Path(__file__).resolve().parents[2]
    dropin = repo / "overlay/etc/systemd/system/sshd-keygen.service.d/sokoul.conf"
    lines = [ln for ln in dropin.read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "[Unit]" and "ConditionFirstBoot=" in lines
    for kind in ("ed25519", "ecdsa", "rsa"):
        assert f"ConditionPathExists=|!/etc/ssh/ssh_host_{kind}_key" in lines


def test_image_ships_an_empty_machine_id_and_marks_etc_var_updated(tmp_path: Path) -> None:
    """Empty machine-id: a fresh id at first boot without systemd's first-boot preset pass;
    .updated stamps at /usr's time: no ldconfig or catalog rebuild at first boot."""
    from sokoul_image.customize import mark_updated

    for d in ("usr", "etc", "var"):
        (tmp_path / d).mkdir()
    os.utime(tmp_path / "usr", ns=(1_795_000_000_000_000_000, 1_795_000_000_000_000_000))
    mark_updated(tmp_path)
    for d in ("etc", "var"):
        stamp = tmp_path / d / ".updated"
        assert "TIMESTAMP_NSEC=1795000000000000000" in stamp.read_text()
        assert stamp.stat().st_mtime_ns == 1_795_000_000_000_000_000
    source = (Path(__file__).resolve().parents[2] / "image/sokoul_image/customize.py").read_text()
    assert '(etc / "machine-id").write_text("")' in source
