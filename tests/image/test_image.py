"""The image tier: build both boards with the real pipeline (mmdebstrap under qemu-user; the
base rootfs is built once and shared), check the four outputs, flash with bmaptool, and boot
the QEMU image to a healthy supervisor with first boot done.

Slow: about 30 min cold on 2 cores (most of it emulated package configuration)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sokoul_image.outputs import file_sha256

REPO = Path(__file__).resolve().parents[2]
BOARDS = ("qemu-arm64", "orangepi-6-plus")
# The release level (19) for the QEMU image, whose size is checked against the 350 MB target;
# a faster level for the second board keeps CI in its time budget (same rootfs, same bytes).
ZSTD_LEVEL = {"qemu-arm64": "19", "orangepi-6-plus": "12"}


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.fail("the image tier needs root (mmdebstrap --mode=root, chroot, binfmt_misc)")
    yield tmp_path_factory.mktemp("image-out")


@pytest.fixture(scope="module")
def built(out_dir: Path) -> dict[str, Path]:
    """Build each board once for this module; returns board -> manifest path."""
    manifests = {}
    for board in BOARDS:
        print(f"\n--- building {board} ---", flush=True)
        argv = [
            str(REPO / "build.sh"),
            "image",
            "--board",
            board,
            "--out",
            str(out_dir),
            "--zstd-level",
            ZSTD_LEVEL[board],
        ]
        proc = subprocess.run(argv, timeout=3600)
        assert proc.returncode == 0, f"./build.sh image --board {board} failed"
        found = sorted(out_dir.glob(f"sokoul-{board}-*.manifest.json"))
        assert len(found) == 1, found
        manifests[board] = found[0]
    return manifests


@pytest.mark.parametrize("board", BOARDS)
def test_four_outputs_and_checksums(built: dict[str, Path], out_dir: Path, board: str) -> None:
    manifest_path = built[board]
    stem = manifest_path.name.removesuffix(".manifest.json")
    for suffix in (".img.zst", ".sha256", ".bmap", ".manifest.json"):
        assert (out_dir / f"{stem}{suffix}").is_file(), suffix
    assert not list(out_dir.glob(".work-*")), "work folder left behind"
    assert not list(out_dir.glob("*.partial")), "temporary output left behind"
    check = subprocess.run(
        ["sha256sum", "-c", f"{stem}.sha256"], cwd=out_dir, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr

    m = json.loads(manifest_path.read_text())
    assert m["board"] == board and m["arch"] == "arm64" and m["suite"] == "trixie"
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", m["git_commit"])
    pk = m["packages"]
    assert len(pk) > 300
    for name in (
        "systemd",
        "udev",
        "openssh-server",
        "iproute2",
        "nftables",
        "netplan.io",
        "wireguard-tools",
        "avahi-daemon",
        "ffmpeg",
        "python3",
        "linux-image-arm64",
        "python3-libtorrent",
        "grub-efi-arm64-bin",
    ):
        assert name in pk, name
    assert pk["python3-aiohttp"].startswith("3.11.16")  # what the host venv tests run
    assert pk["python3-prometheus-client"].startswith("0.21.1")
    if ZSTD_LEVEL[board] == "19":
        assert m["image"]["compressed_bytes"] <= 350 * 10**6, "compressed image over 350 MB"
    assert m["image"]["sha256"] == file_sha256(out_dir / f"{stem}.img.zst")
    root = m["partitions"][1]
    assert root["name"] == "sokoul-root" and root["size_mib"] > 800


def test_both_boards_share_one_package_set(built: dict[str, Path]) -> None:
    a, b = (json.loads(built[board].read_text()) for board in BOARDS)
    assert a["packages"] == b["packages"]
    assert a["base_rootfs"] == b["base_rootfs"]
    assert "console=ttyAMA0,115200" in a["cmdline"] and "pcie_aspm=off" in b["cmdline"]


def test_bmaptool_copy_reproduces_the_image(
    built: dict[str, Path], out_dir: Path, tmp_path: Path
) -> None:
    stem = built["orangepi-6-plus"].name.removesuffix(".manifest.json")
    image = out_dir / f"{stem}.img.zst"
    flashed = tmp_path / "flashed.img"
    subprocess.run(
        ["bmaptool", "copy", "--bmap", str(out_dir / f"{stem}.bmap"), str(image), str(flashed)],
        check=True,
        capture_output=True,
    )
    m = json.loads(built["orangepi-6-plus"].read_text())
    assert flashed.stat().st_size == m["image"]["raw_bytes"]
    assert file_sha256(flashed) == m["image"]["raw_sha256"]
    # the ESP holds GRUB at the removable path and the preseed example
    listing = subprocess.run(
        ["mdir", "-i", f"{flashed}@@{1 << 20}", "-b", "-/", "::/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "::/EFI/BOOT/BOOTAA64.EFI" in listing
    assert "::/sokoul-preseed.example.toml" in listing


def test_qemu_image_boots_to_healthy(built: dict[str, Path], out_dir: Path, tmp_path: Path) -> None:
    """First boot with a preseed on the ESP, as a person would drop it there after flashing:
    the check waits for /api/health reporting first boot done, root grown to the 6 GiB disk,
    the preseed's hostname and setup mode 'preseeded', then powers off and finds the preseed
    deleted from the ESP."""
    sys.path.insert(0, str(REPO))
    from sokoul_appliance.passwords import hash_password

    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    pub = key.with_suffix(".pub").read_text().strip()
    preseed = tmp_path / "sokoul-preseed.toml"
    preseed.write_text(
        f'hostname = "den-tv"\ntimezone = "Europe/Paris"\n'
        f'[admin]\npassword_hash = "{hash_password("image-test")}"\n'
        f'[ssh]\nauthorized_keys = ["{pub}"]\n'
    )
    stem = built["qemu-arm64"].name.removesuffix(".manifest.json")
    image = out_dir / f"{stem}.img.zst"
    proc = subprocess.run(
        [str(REPO / "build.sh"), "boot", str(image), "--check", "--preseed", str(preseed)],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    sys.stdout.write(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    m = re.search(r"^BOOT-TO-HEALTHY-SECONDS (\d+\.\d)$", proc.stdout, re.M)
    assert m is not None and 0 < float(m.group(1)) < 1200
    assert "powered off (ACPI shutdown)" in proc.stdout
    assert "preseed applied and removed from the ESP" in proc.stdout
    assert "boot: hostname den-tv," in proc.stdout
    # the rooms that can act on a QEMU virt machine did: the database, the panel, and the CPU
    # slices set through the guest's real systemd over D-Bus (2 CPUs: every slice gets 0-1)
    for name in ("web", "store", "board", "cores", "wizard"):
        assert re.search(rf"^boot: manager {name}: ok — ", proc.stdout, re.M), name
    assert re.search(r"^boot: manager cores: ok — CPUs: interactive 0-1", proc.stdout, re.M)
