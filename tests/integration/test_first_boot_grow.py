"""First boot grows a root partition and its ext4 on a real loop device.

Online resize needs CAP_SYS_RESOURCE, which this build machine's sandbox does not grant; here the
filesystem is grown offline (same growpart, e2fsck + resize2fs), and the online path is proven by
the image tier's QEMU boot, which checks the root filesystem fills the disk."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sokoul_first_boot import FirstBoot


def sh(*argv: str | Path) -> str:
    return subprocess.run(
        [str(a) for a in argv], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def small_root(tmp_path: Path) -> Iterator[str]:
    if os.geteuid() != 0 or not Path("/dev/loop-control").exists():
        pytest.skip("needs root and loop devices")
    img = tmp_path / "disk.img"
    with img.open("wb") as f:
        f.truncate(512 << 20)
    subprocess.run(
        ["sfdisk", "-q", str(img)],
        check=True,
        text=True,
        input="label: gpt\nstart=2048, size=16384, name=esp\n"
        "start=18432, size=131072, name=sokoul-root\n",
    )
    loop = sh("losetup", "-f", "--show", img)
    try:
        sh("partx", "-a", loop)
        part = f"{loop}p2"
        sh("mkfs.ext4", "-q", "-L", "sokoul-root", part)
        yield Path(part).name
    finally:
        subprocess.run(["partx", "-d", loop], check=False, capture_output=True)
        subprocess.run(["losetup", "-d", loop], check=False)


def test_grow_partition_and_filesystem(small_root: str) -> None:
    part = small_root
    fb = FirstBoot(root=Path("/"), live=False, log=lambda m: None)
    result = fb.grow_partition(part, None)
    assert result["partition_bytes_before"] == 64 << 20
    # 512 MiB disk - 9 MiB offset - 33 sectors of backup GPT, rounded by growpart
    assert result["partition_bytes_after"] > 500 << 20
    assert result["grew"] is True
    again = fb.grow_partition(part, None)  # a re-run after a power cut changes nothing
    assert again["grew"] is False
    assert again["partition_bytes_after"] == result["partition_bytes_after"]
    blocks = sh("dumpe2fs", "-h", f"/dev/{part}")
    count = int(next(ln for ln in blocks.splitlines() if ln.startswith("Block count:")).split()[-1])
    size = int(next(ln for ln in blocks.splitlines() if ln.startswith("Block size:")).split()[-1])
    assert count * size > 490 << 20  # the filesystem now fills the grown partition
