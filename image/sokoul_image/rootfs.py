"""Stage 2: the Debian base rootfs, built with mmdebstrap under qemu-user and cached as a tar.

The cache key covers everything that goes into the tar (package set, suite, components, mirror,
hooks, vendor kernel). A cached tar older than ``max_age_days`` is rebuilt so images pick up
Debian's updates; ``--fresh`` always rebuilds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from .mirror import Mirrors
from .outputs import file_sha256
from .profile import BoardProfile
from .runner import BuildError, Runner

# dpkg drops these while unpacking (also for later apt installs on the appliance): documentation,
# man pages and translations nobody reads on a headless box. Copyright files stay.
DPKG_FILTERS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/lintian/*",
)

APT_OPTIONS = (
    'Acquire::Retries "5"',
    'APT::Install-Recommends "false"',
)

# Before any package is unpacked: the kernel keeps /boot/vmlinuz and /boot/initrd.img symlinks
# (and .old ones) pointing at the newest and previous kernels, so the static grub.cfg stays right
# across kernel updates; the initramfs carries the storage drivers any board needs.
SETUP_HOOKS = (
    'mkdir -p "$1/etc/initramfs-tools/conf.d"',
    "printf 'do_symlinks = yes\\nlink_in_boot = yes\\n' > \"$1/etc/kernel-img.conf\"",
    "printf 'MODULES=most\\nCOMPRESS=zstd\\n' > \"$1/etc/initramfs-tools/conf.d/sokoul.conf\"",
)


@dataclass(frozen=True)
class RootfsRequest:
    profile: BoardProfile
    mirrors: Mirrors
    cache_dir: Path
    source_date_epoch: int
    kernel_deb: Path | None = None
    max_age_days: float = 7.0
    fresh: bool = False
    bare: bool = False  # the board's bare_packages instead of its packages (benchmark baseline)


def _sources(req: RootfsRequest) -> list[str]:
    comps = " ".join(req.profile.components)
    suite = req.profile.suite
    m = req.mirrors
    if not m.debian:
        # mmdebstrap's own default archive
        return []
    lines = [f"deb {m.debian} {suite} {comps}", f"deb {m.debian} {suite}-updates {comps}"]
    if m.security:
        lines.append(f"deb {m.security} {suite}-security {comps}")
    return lines


def _packages(req: RootfsRequest) -> list[str]:
    pkgs = list(req.profile.bare_packages if req.bare else req.profile.packages)
    if req.kernel_deb is None:
        pkgs.append(req.profile.kernel_package)
    return pkgs


def cache_key(req: RootfsRequest) -> str:
    material = {
        "arch": req.profile.arch,
        "suite": req.profile.suite,
        "components": req.profile.components,
        "packages": sorted(_packages(req)),
        "sources": _sources(req),
        "dpkg": DPKG_FILTERS,
        "apt": APT_OPTIONS,
        "setup": SETUP_HOOKS,
        "vendor": sorted(req.profile.vendor_blacklist + req.profile.vendor_modprobe_options)
        if req.kernel_deb
        else [],
        "kernel_deb": file_sha256(req.kernel_deb) if req.kernel_deb else None,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def mmdebstrap_argv(req: RootfsRequest, target: Path) -> list[str]:
    argv = [
        "mmdebstrap",
        f"--arch={req.profile.arch}",
        "--variant=apt",
        "--mode=root",
        "--format=tar",
        f"--components={','.join(req.profile.components)}",
        f"--include={','.join(_packages(req))}",
    ]
    argv += [f"--aptopt={o}" for o in APT_OPTIONS]
    argv += [f"--dpkgopt={o}" for o in DPKG_FILTERS]
    argv += [f"--setup-hook={h}" for h in SETUP_HOOKS]
    if req.kernel_deb is not None:
        deb = req.kernel_deb.resolve()
        name = shlex.quote(deb.name)
        argv += [
            f"--customize-hook=copy-in {shlex.quote(str(deb))} /tmp",
            '--customize-hook=chroot "$1" env DEBIAN_FRONTEND=noninteractive '
            f"apt-get install -y --no-install-recommends /tmp/{name}",
            f'--customize-hook=rm -f "$1/tmp/{name}"',
        ]
        if req.profile.vendor_blacklist or req.profile.vendor_modprobe_options:
            lines = [f"blacklist {m}" for m in req.profile.vendor_blacklist]
            lines += list(req.profile.vendor_modprobe_options)
            body = shlex.quote("\n".join(lines) + "\n")
            conf = '"$1/etc/modprobe.d/sokoul-vendor-kernel.conf"'
            argv.append(f"--customize-hook=printf '%s' {body} > {conf}")
    argv += [req.profile.suite, str(target)]
    argv += _sources(req)
    return argv


def build_rootfs(req: RootfsRequest, run: Runner) -> Path:
    """Return the path of the base rootfs tar, building it unless a fresh cached copy exists."""
    req.cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(req)
    final = req.cache_dir / f"rootfs-{req.profile.arch}-{req.profile.suite}-{key}.tar"
    if final.exists() and not req.fresh:
        age_days = (time.time() - final.stat().st_mtime) / 86400
        if age_days <= req.max_age_days:
            run.say(f"rootfs: using cached {final.name} ({age_days:.1f} days old)")
            return final
        run.say(f"rootfs: cached {final.name} is {age_days:.1f} days old, rebuilding")
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    run.say(
        f"rootfs: mmdebstrap {req.profile.suite}/{req.profile.arch} "
        f"({len(_packages(req))} packages; about 20-30 min under qemu-user)"
    )
    try:
        run.run(
            mmdebstrap_argv(req, tmp),
            log="rootfs",
            env={"SOURCE_DATE_EPOCH": str(req.source_date_epoch), "LC_ALL": "C.UTF-8"},
        )
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if not final.exists():
        raise BuildError("mmdebstrap finished but wrote no rootfs tar")
    run.say(f"rootfs: built {final.name} ({final.stat().st_size / 2**20:.0f} MiB)")
    return final
