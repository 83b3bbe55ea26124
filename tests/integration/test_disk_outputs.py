"""Disk assembly and published outputs with the real tools (sfdisk, mkfs, mtools, bmaptool, zstd),
on a small rootfs folder: the same code path as the image build, minus mmdebstrap."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from sokoul_image.disk import ESP_SIZE_MIB, ROOT_START_MIB, build_disk
from sokoul_image.outputs import OutputNames, publish
from sokoul_image.runner import BuildError, Runner


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sh(*argv: str | Path) -> str:
    return subprocess.run([str(a) for a in argv], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def small_rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "boot/grub").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "boot/grub/grub.cfg").write_text("menuentry x {}\n")
    (root / "etc/hostname").write_text("sokoul\n")
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/blob").write_bytes(bytes(range(256)) * 4096)  # 1 MiB of data
    return root


def test_disk_image_and_outputs(tmp_path: Path, small_rootfs: Path, repo: Path) -> None:
    run = Runner(tmp_path / "logs")
    efi = tmp_path / "BOOTAA64.EFI"
    efi.write_bytes(b"MZ" + b"\0" * 4094)
    work = tmp_path / "work"
    work.mkdir()
    raw = work / "sokoul-test-1.img"
    example = repo / "first_boot/sokoul-preseed.example.toml"
    layout = build_disk(small_rootfs, efi, {"sokoul-preseed.example.toml": example}, raw, 1, run)

    assert raw.stat().st_size == layout.total_mib << 20
    table = json.loads(sh("sfdisk", "--json", raw))["partitiontable"]
    assert table["label"] == "gpt"
    esp, root = table["partitions"]
    assert (esp["start"], esp["size"], esp["name"]) == (2048, ESP_SIZE_MIB * 2048, "sokoul-esp")
    assert esp["type"] == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    assert (root["start"], root["name"]) == (ROOT_START_MIB * 2048, "sokoul-root")

    esp_at = f"{raw}@@{1 << 20}"
    listing = sh("mdir", "-i", esp_at, "-b", "-/", "::/")
    assert "::/EFI/BOOT/BOOTAA64.EFI" in listing and "::/sokoul-preseed.example.toml" in listing
    assert sh("mtype", "-i", esp_at, "::/EFI/BOOT/BOOTAA64.EFI").encode("latin-1")[:2] == b"MZ"
    assert "SOKOUL-ESP" in sh("minfo", "-i", esp_at, "::")

    part = tmp_path / "root.ext4"
    sh("dd", f"if={raw}", f"of={part}", "bs=1M", f"skip={ROOT_START_MIB}", "status=none")
    assert "Filesystem volume name:   sokoul-root" in sh("dumpe2fs", "-h", part)
    assert sh("debugfs", "-R", "cat /etc/hostname", part) == "sokoul\n"

    names = OutputNames(tmp_path / "out", "sokoul-test-1")
    names.out_dir.mkdir()
    raw_sha = sha(raw)
    publish(raw, names, {"board": "test", "packages": {"x": "1"}}, run, zstd_level=3)
    assert sorted(p.name for p in names.out_dir.iterdir()) == sorted(p.name for p in names.all())
    check = subprocess.run(
        ["sha256sum", "-c", names.sha256.name], cwd=names.out_dir, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    manifest = json.loads(names.manifest.read_text())
    assert manifest["image"]["raw_sha256"] == raw_sha
    assert manifest["image"]["sha256"] == sha(names.image)
    assert manifest["packages"] == {"x": "1"}

    flashed = tmp_path / "flashed.img"
    sh("bmaptool", "copy", "--bmap", names.bmap, names.image, flashed)
    assert sha(flashed) == raw_sha


def test_failed_publish_leaves_no_final_names(tmp_path: Path) -> None:
    run = Runner(tmp_path / "logs")
    names = OutputNames(tmp_path / "out", "sokoul-test-2")
    names.out_dir.mkdir()
    with pytest.raises(BuildError):
        publish(tmp_path / "missing.img", names, {}, run, zstd_level=3)
    assert not any(p.exists() for p in names.all())
