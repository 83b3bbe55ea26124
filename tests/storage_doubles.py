"""Test doubles for the storage room.

``MountingUnitControl`` stands in for systemd (no PID-1 systemd on the test machines): it reads
the mount unit the storage room wrote under <root>/etc/systemd/system, finds the block device
whose filesystem UUID matches What=/dev/disk/by-uuid/<UUID> among the nodes in <root>/dev
(there is no udev here, so no /dev/disk/by-uuid), and runs the real ``mount``/``umount`` on the
host path of Where=. It records every call.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess

from sokoul_appliance.host import CommandError, Host
from sokoul_appliance.storage.mounts import UNIT_DIR, parse_unit


class UnitFailed(Exception):
    pass


class MountingUnitControl:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.calls: list[tuple[str, str]] = []
        self.fail_start = False
        self.start_delay = 0.0  # a slow device job (systemd waits for the device to appear)

    async def reload(self) -> None:
        self.calls.append(("reload", ""))

    def _unit(self, name: str) -> dict[str, str]:
        text = self.host.read_text(f"{UNIT_DIR}/{name}")
        if text is None:
            raise UnitFailed(f"Unit {name} not found.")
        return parse_unit(text)

    async def _device_for(self, what: str) -> str:
        uuid = what.removeprefix("/dev/disk/by-uuid/")
        dev_dir = self.host.path("/dev")
        for name in sorted(os.listdir(dev_dir)):
            node = dev_dir / name
            if not stat.S_ISBLK(node.stat().st_mode):
                continue
            try:
                r = await self.host.run(
                    "blkid", "-c", "/dev/null", "-p", "-s", "UUID", "-o", "value", str(node)
                )
            except CommandError:
                continue
            if r.stdout.strip() == uuid:
                return str(node)
        raise UnitFailed(f"{what}: no such device (the job timed out waiting for it)")

    async def start_unit(self, name: str) -> None:
        self.calls.append(("start", name))
        if self.fail_start:
            raise UnitFailed(f"{name}: start refused by the test")
        await asyncio.sleep(self.start_delay)
        unit = self._unit(name)
        where = str(self.host.path(unit["Where"]))
        if os.path.ismount(where):
            return  # active already
        device = await self._device_for(unit["What"])
        opts = [o for o in unit.get("Options", "").split(",") if o in ("noatime", "defaults")]
        os.makedirs(where, exist_ok=True)
        await self.host.run(
            "mount",
            "-t",
            unit.get("Type", "auto"),
            "-o",
            ",".join(opts or ["defaults"]),
            device,
            where,
        )

    async def stop_unit(self, name: str) -> None:
        self.calls.append(("stop", name))
        unit = self._unit(name)
        where = str(self.host.path(unit["Where"]))
        if os.path.ismount(where):
            await self.host.run("umount", where)


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


async def wait_for(predicate: object, timeout: float = 15.0, step: float = 0.05) -> None:
    assert callable(predicate)
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")
        await asyncio.sleep(step)


class LoopDisk:
    """A sparse file behind a real loop device, shown to the host seam as /dev/<name> (a block
    node with the loop's major:minor inside the fake root) and /sys/block/<name> (size, model,
    serial), the way the kernel and udev would show an NVMe or USB drive."""

    def __init__(
        self,
        root: os.PathLike[str],
        work: os.PathLike[str],
        name: str,
        size_mb: int,
        model: str,
        serial: str,
    ) -> None:
        self.root = os.fspath(root)
        self.name = name
        self.image = os.path.join(os.fspath(work), f"{name}.img")
        self.model = model
        self.serial = serial
        self.devices: list[str] = []  # every loop device we attached, for cleanup
        self.device: str | None = None
        with open(self.image, "wb") as f:
            f.truncate(size_mb << 20)
        sysdir = os.path.join(self.root, "sys/block", name)
        os.makedirs(os.path.join(sysdir, "device"), exist_ok=True)
        with open(os.path.join(sysdir, "size"), "w") as f:
            f.write(f"{(size_mb << 20) // 512}\n")
        for field, value in (("model", model), ("serial", serial)):
            with open(os.path.join(sysdir, "device", field), "w") as f:
                f.write(value + "\n")
        os.makedirs(os.path.join(self.root, "dev"), exist_ok=True)
        self.attach()

    @property
    def node(self) -> str:
        return os.path.join(self.root, "dev", self.name)

    @property
    def confirm_text(self) -> str:
        return f"{self.model} {self.serial}"

    def attach(self) -> None:
        self.device = run("losetup", "-f", "--show", self.image)
        self.devices.append(self.device)
        st = os.stat(self.device)
        if os.path.lexists(self.node):
            os.unlink(self.node)
        os.mknod(self.node, 0o600 | stat.S_IFBLK, st.st_rdev)

    def detach(self) -> None:
        if os.path.lexists(self.node):
            os.unlink(self.node)
        if self.device is not None:
            subprocess.run(["losetup", "-d", self.device], check=True)
            self.device = None

    def cleanup(self) -> None:
        """Detach exactly the loop devices this disk attached (still bound to its image)."""
        for dev in self.devices:
            back = subprocess.run(
                ["losetup", "-n", "-O", "BACK-FILE", dev], capture_output=True, text=True
            ).stdout.strip()
            if back == self.image or back.startswith(self.image + " "):
                subprocess.run(["losetup", "-d", dev], check=False)
        self.devices.clear()

    def sha256(self) -> str:
        import hashlib

        h = hashlib.sha256()
        with open(self.image, "rb") as f:
            while block := f.read(4 << 20):
                h.update(block)
        return h.hexdigest()


def unmount_all_under(root: os.PathLike[str]) -> None:
    """Lazily unmount every mount below ``root`` (deepest first), also after a failed test."""
    prefix = os.path.realpath(os.fspath(root)) + "/"
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    for point in sorted({p for p in points if p.startswith(prefix)}, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)
