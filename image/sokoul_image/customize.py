"""Stage 3: turn the cached Debian base into the appliance's root filesystem (in a work folder).

Copies the overlay, the supervisor, first boot, units and netplan defaults; writes the board's
grub.cfg; builds GRUB's removable-path EFI binary inside the arm64 rootfs (qemu-user via
binfmt_misc); strips per-machine identity (machine-id, SSH host keys) so first boot makes new ones.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .profile import BoardProfile
from .runner import BuildError, Runner

# Embedded in BOOTAA64.EFI: find the root filesystem by label and hand over to its grub.cfg.
# `prefix` stays as grub-mkstandalone set it: the modules live in the EFI binary's memdisk.
EMBEDDED_GRUB_CFG = """\
insmod part_gpt
insmod ext2
search --no-floppy --label sokoul-root --set=root
configfile ($root)/boot/grub/grub.cfg
"""

UNITS_ENABLED = (
    "sokoul-first-boot.service",
    "sokoul-supervisor.service",
    "systemd-networkd.service",
    "systemd-resolved.service",
    "systemd-timesyncd.service",
    "ssh.service",
    "avahi-daemon.service",
)

# Debian units the appliance does not start, each for a reason; 10-sokoul.preset says "disable"
# for the same units, so systemd's first-boot preset pass (enable-only) leaves them off. Every
# process started while the supervisor starts slows it down (on the board a little, under QEMU
# TCG a lot: these three took 19 s of the emulated CPUs at each boot).
UNITS_DISABLED = (
    # records a successful boot for GRUB's "recordfail"; the static grub.cfg does not use it
    "grub-common.service",
    # removes e2scrub's LVM snapshots; the appliance has no LVM
    "e2scrub_reap.service",
    # NVMe over Fabrics (nvme-cli); the appliance's NVMe drives are local PCIe
    "nvmf-autoconnect.service",
    "nvmefc-boot-connections.service",
)

# What systemd-update-done writes; with it, ldconfig.service, systemd-journal-catalog-update and
# systemd-update-done itself (ConditionNeedsUpdate=) skip the first boot: the build ran ldconfig
# and built the catalog when the packages were installed.
UPDATE_DONE = """\
# This file was created by systemd-update-done. Its only
# purpose is to hold a timestamp of the time this directory
# was updated. See man:systemd-update-done.service(8).
TIMESTAMP_NSEC={nsec}
"""


@dataclass(frozen=True)
class Release:
    board: str
    version: str
    commit: str
    build_time: str
    source_date_epoch: int


def grub_cfg(profile: BoardProfile) -> str:
    cmdline = profile.cmdline
    return f"""\
# SOKOUL appliance boot menu for {profile.name} (written by the image build).
# /boot/vmlinuz and /boot/initrd.img always point at the newest kernel, the .old links at the
# previous one, so kernel updates need no regeneration of this file.
set default=0
set timeout=2
set timeout_style=menu

menuentry "SOKOUL appliance" {{
    insmod gzio
    linux /boot/vmlinuz {cmdline}
    initrd /boot/initrd.img
}}

menuentry "SOKOUL appliance (previous kernel)" {{
    insmod gzio
    linux /boot/vmlinuz.old {cmdline}
    initrd /boot/initrd.img.old
}}
"""


def _copy_tree(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> None:
    """Copy ``src`` into ``dst`` as root-owned files, skipping Python caches and any
    directory named in ``skip``."""
    for path in sorted(src.rglob("*")):
        inner = path.relative_to(src).parts
        if "__pycache__" in inner or path.suffix == ".pyc" or any(p in skip for p in inner):
            continue
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.exists():
                target.unlink()
            shutil.copy2(path, target, follow_symlinks=False)
            os.lchown(target, 0, 0)


def install_system_files(repo: Path, rootfs: Path, profile: BoardProfile) -> None:
    """What any image of this pipeline needs to boot: fstab, grub.cfg, netplan defaults, DNS."""
    etc = rootfs / "etc"
    shutil.copy2(repo / "overlay/etc/fstab", etc / "fstab")
    grub_dir = rootfs / "boot/grub"
    grub_dir.mkdir(parents=True, exist_ok=True)
    (grub_dir / "grub.cfg").write_text(grub_cfg(profile))
    (rootfs / "boot/efi").mkdir(parents=True, exist_ok=True)
    netplan = etc / "netplan"
    netplan.mkdir(parents=True, exist_ok=True)
    for yaml in sorted((repo / "netplan").glob("*.yaml")):
        shutil.copy2(yaml, netplan / yaml.name)
        (netplan / yaml.name).chmod(0o600)  # netplan refuses to trust world-readable files
    resolv = etc / "resolv.conf"
    if resolv.exists() or resolv.is_symlink():
        resolv.unlink()
    resolv.symlink_to("../run/systemd/resolve/stub-resolv.conf")


def install_appliance(repo: Path, rootfs: Path, profile: BoardProfile, release: Release) -> None:
    """Everything of the appliance's that goes into the rootfs, as plain file operations."""
    _copy_tree(repo / "overlay", rootfs)
    install_system_files(repo, rootfs, profile)
    lib = rootfs / "usr/lib/sokoul"
    _copy_tree(repo / "sokoul_appliance", lib / "python/sokoul_appliance")
    # the network manager renders netplan from these (sokoul_appliance/network/netplan.py)
    _copy_tree(repo / "netplan" / "templates", lib / "netplan/templates")
    _copy_tree(repo / "first_boot", lib / "first-boot")
    # board profiles only: the simulated boards' sysfs trees (hw/*/sim) are for dev and tests
    _copy_tree(repo / "hw", rootfs / "usr/share/sokoul/hw", skip=("sim",))
    units = rootfs / "usr/lib/systemd/system"
    unit_files = [
        *(repo / "systemd").glob("*.service"),
        *(repo / "systemd").glob("*.slice"),
        *(repo / "first_boot").glob("*.service"),
    ]
    for unit in sorted(unit_files):
        shutil.copy2(unit, units / unit.name)
    docs = rootfs / "usr/share/doc/sokoul"
    docs.mkdir(parents=True, exist_ok=True)
    shutil.copy2(repo / "README.md", docs / "README.md")
    shutil.copy2(repo / "docs/first-boot.md", docs / "first-boot.md")

    etc = rootfs / "etc"
    (etc / "sokoul").mkdir(parents=True, exist_ok=True)
    (etc / "sokoul/board").write_text(f"{profile.name}\n")
    (etc / "sokoul/release.json").write_text(
        json.dumps(release.__dict__, indent=2, sort_keys=True) + "\n"
    )

    # Per-machine identity is made at first boot, never shipped. An empty machine-id (not
    # "uninitialized"): systemd makes and writes a fresh id at the first boot all the same, but
    # does not treat the boot as a "first boot", whose preset-all pass cost 20 s under TCG before
    # the first unit started and enabled every Debian unit no preset disables (machine-id(5)).
    # The units that run are the ones this build enables. ConditionFirstBoot= units: sshd-keygen
    # (drop-in in overlay/), systemd-firstboot (masked below).
    (etc / "machine-id").write_text("")
    dbus_id = rootfs / "var/lib/dbus/machine-id"
    if dbus_id.exists() or dbus_id.is_symlink():
        dbus_id.unlink()
    dbus_id.parent.mkdir(parents=True, exist_ok=True)
    dbus_id.symlink_to("/etc/machine-id")
    for key in (etc / "ssh").glob("ssh_host_*"):
        key.unlink()


def mark_updated(rootfs: Path) -> None:
    """Write /etc/.updated and /var/.updated as systemd-update-done would, stamped with /usr's
    time: the image's /etc and /var are up to date with its /usr."""
    nsec = (rootfs / "usr").stat().st_mtime_ns
    for d in ("etc", "var"):
        stamp = rootfs / d / ".updated"
        stamp.write_text(UPDATE_DONE.format(nsec=nsec))
        os.utime(stamp, ns=(nsec, nsec))


def check_kernel_links(rootfs: Path) -> None:
    for name in ("vmlinuz", "initrd.img"):
        link = rootfs / "boot" / name
        if not link.is_symlink() or not (rootfs / "boot" / link.readlink().name).exists():
            raise BuildError(f"/boot/{name} is not a symlink to an installed kernel file")


def customize(
    repo: Path,
    base_tar: Path,
    rootfs: Path,
    profile: BoardProfile,
    release: Release,
    run: Runner,
    bare: bool = False,
) -> Path:
    """Build the appliance rootfs in ``rootfs`` (with ``bare``: only what boots plain Debian);
    returns the path of the GRUB EFI binary."""
    if rootfs.exists():
        shutil.rmtree(rootfs)
    rootfs.mkdir(parents=True)
    run.say("customize: unpacking base rootfs")
    run.run(
        [
            "tar",
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
            "-xpf",
            base_tar,
            "-C",
            rootfs,
        ],
        log="customize",
    )
    check_kernel_links(rootfs)
    systemctl: list[str] = ["systemctl", f"--root={rootfs}"]
    if bare:
        run.say("customize: bare Debian (no appliance): fstab, grub.cfg, netplan")
        install_system_files(repo, rootfs, profile)
        units = ["systemd-networkd.service", "systemd-resolved.service", "ssh.service"]
        run.run([*systemctl, "enable", *units], log="customize")
    else:
        run.say("customize: installing supervisor, first boot, units, overlay, netplan")
        install_appliance(repo, rootfs, profile, release)
        run.run([*systemctl, "enable", *UNITS_ENABLED], log="customize")
        run.run([*systemctl, "disable", *UNITS_DISABLED], log="customize")
    # systemd-firstboot would prompt on the console (locale, timezone, root password) at the
    # first boot; our first boot and the setup wizard settle those instead.
    run.run([*systemctl, "mask", "systemd-firstboot.service"], log="customize")
    if not bare:
        run.say("customize: byte-compiling the supervisor for the image's Python")
        compileall = ["chroot", str(rootfs), "python3", "-m", "compileall", "-q", "/usr/lib/sokoul"]
        run.run(compileall, log="customize")
    run.say("customize: building GRUB EFI binary (removable path, embedded search by label)")
    (rootfs / "tmp/sokoul-grub-embed.cfg").write_text(EMBEDDED_GRUB_CFG)
    run.run(
        [
            "chroot",
            rootfs,
            "grub-mkstandalone",
            "-O",
            "arm64-efi",
            "-o",
            "/tmp/BOOTAA64.EFI",
            "--modules=part_gpt ext2 search configfile",
            "boot/grub/grub.cfg=/tmp/sokoul-grub-embed.cfg",
        ],
        log="customize",
    )
    efi = rootfs.parent / "BOOTAA64.EFI"
    shutil.move(rootfs / "tmp/BOOTAA64.EFI", efi)
    (rootfs / "tmp/sokoul-grub-embed.cfg").unlink()
    mark_updated(rootfs)
    return efi
