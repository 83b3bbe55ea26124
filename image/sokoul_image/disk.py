"""Stage 4: the GPT disk image, assembled from partition files without loop devices or mounts.

Layout (see image/README.md for the A/B plan)::

    0        1 MiB      GPT header + partition entries
    p1  1 MiB  512 MiB  ESP, FAT32 "SOKOUL-ESP", PARTLABEL sokoul-esp: EFI/BOOT/BOOTAA64.EFI
    p2  513 MiB  ...    root, ext4 label sokoul-root, PARTLABEL sokoul-root (grown at first boot)
    end-1 MiB           backup GPT

The ESP is made with mkfs.vfat + mtools (no vfat mount needed), the root with ``mkfs.ext4 -d``
straight from the rootfs folder; both are written into the sparse image with ``dd conv=sparse``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .runner import BuildError, Runner

MIB = 1 << 20
ESP_START_MIB = 1
ESP_SIZE_MIB = 512
ROOT_START_MIB = ESP_START_MIB + ESP_SIZE_MIB
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
ROOT_ARM64_TYPE = "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"  # "Linux root (ARM-64)"


@dataclass(frozen=True)
class DiskLayout:
    root_size_mib: int

    @property
    def total_mib(self) -> int:
        return ROOT_START_MIB + self.root_size_mib + 1  # + backup GPT

    def sfdisk_script(self) -> str:
        return (
            "label: gpt\n"
            "unit: sectors\n"
            "sector-size: 512\n"
            f"start={ESP_START_MIB * 2048}, size={ESP_SIZE_MIB * 2048}, type={ESP_TYPE}, "
            'name="sokoul-esp"\n'
            f"start={ROOT_START_MIB * 2048}, size={self.root_size_mib * 2048}, "
            f'type={ROOT_ARM64_TYPE}, name="sokoul-root"\n'
        )


def tree_bytes(root: Path) -> tuple[int, int]:
    """(bytes the tree takes in 4 KiB blocks, number of inodes) without following symlinks."""
    total = 0
    inodes = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            inodes += 1
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += -(-st.st_size // 4096) * 4096
    return total, inodes


def root_size_mib(rootfs: Path, headroom_mib: int = 384) -> int:
    """A root partition that holds the tree plus ext4 overhead and room for first boot's work."""
    used, inodes = tree_bytes(rootfs)
    overhead = inodes * 256 + 64 * MIB  # inode tables + journal
    return -(-(int(used * 1.08) + overhead) // MIB) + headroom_mib


def make_esp(path: Path, efi_binary: Path, extra_files: dict[str, Path], run: Runner) -> None:
    with path.open("wb") as f:
        f.truncate(ESP_SIZE_MIB * MIB)
    run.run(["mkfs.vfat", "-F", "32", "-n", "SOKOUL-ESP", "-i", "50c0a1e5", path], log="disk")
    run.run(["mmd", "-i", path, "::/EFI", "::/EFI/BOOT"], log="disk")
    run.run(["mcopy", "-i", path, efi_binary, "::/EFI/BOOT/BOOTAA64.EFI"], log="disk")
    for name, src in sorted(extra_files.items()):
        run.run(["mcopy", "-i", path, src, f"::/{name}"], log="disk")


def make_root(path: Path, rootfs: Path, size_mib: int, source_date_epoch: int, run: Runner) -> None:
    path.unlink(missing_ok=True)
    with path.open("wb") as f:
        f.truncate(size_mib * MIB)
    run.run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            "sokoul-root",
            "-b",
            "4096",
            "-i",
            "16384",
            "-E",
            "root_owner=0:0",
            "-d",
            rootfs,
            path,
        ],
        log="disk",
        env={"E2FSPROGS_FAKE_TIME": str(source_date_epoch)},
    )
    run.run(["e2fsck", "-fn", path], log="disk")


def assemble(image: Path, esp: Path, root: Path, layout: DiskLayout, run: Runner) -> None:
    image.unlink(missing_ok=True)
    with image.open("wb") as f:
        f.truncate(layout.total_mib * MIB)
    run.run(
        ["sfdisk", "--no-reread", "--no-tell-kernel", image],
        log="disk",
        input_text=layout.sfdisk_script(),
    )
    for part, start_mib in ((esp, ESP_START_MIB), (root, ROOT_START_MIB)):
        run.run(
            [
                "dd",
                f"if={part}",
                f"of={image}",
                "bs=4M",
                f"seek={start_mib * MIB}",
                "oflag=seek_bytes",
                "conv=notrunc,sparse",
                "status=none",
            ],
            log="disk",
        )
    table = run.run(["sfdisk", "--dump", image], log="disk").stdout
    if "sokoul-esp" not in table or "sokoul-root" not in table:
        raise BuildError(f"partition table of {image} is not what was written:\n{table}")


def build_disk(
    rootfs: Path,
    efi_binary: Path,
    esp_files: dict[str, Path],
    image: Path,
    source_date_epoch: int,
    run: Runner,
) -> DiskLayout:
    work = image.parent
    size = root_size_mib(rootfs)
    run.say(f"disk: root filesystem {size} MiB (mkfs.ext4 -d), ESP {ESP_SIZE_MIB} MiB (FAT32)")
    esp = work / "esp.part"
    root = work / "root.part"
    make_esp(esp, efi_binary, esp_files, run)
    make_root(root, rootfs, size, source_date_epoch, run)
    layout = DiskLayout(root_size_mib=size)
    assemble(image, esp, root, layout, run)
    esp.unlink()
    root.unlink()
    run.say(f"disk: {image.name} {layout.total_mib} MiB, GPT")
    return layout
