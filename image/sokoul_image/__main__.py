"""`python -m sokoul_image image|boot ...`, called by build.sh once the host is set up."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from .customize import Release, customize
from .disk import ESP_SIZE_MIB, ESP_START_MIB, ROOT_START_MIB, build_disk
from .mirror import host_mirrors
from .outputs import OutputNames, installed_packages, publish
from .profile import ProfileError, QemuSettings, load_profile
from .qemu import boot
from .rootfs import RootfsRequest, build_rootfs
from .runner import BuildError, Runner

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BOARD = "orangepi-6-plus"
DEFAULT_CACHE = Path(os.environ.get("SOKOUL_CACHE_DIR", "/var/cache/sokoul-build"))


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def project_version() -> str:
    with (REPO / "pyproject.toml").open("rb") as f:
        base = str(tomllib.load(f)["project"]["version"])
    sha = _git("rev-parse", "--short=8", "HEAD")
    if sha is None:
        return base
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return f"{base}-g{sha}" + ("-dirty" if dirty else "")


def source_date_epoch() -> int:
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env and env.isdigit():
        return int(env)
    ct = _git("log", "-1", "--format=%ct")
    return int(ct) if ct and ct.isdigit() else int(time.time())


def cmd_image(args: argparse.Namespace) -> int:
    hw = REPO / "hw"
    profile = load_profile(hw, args.board)
    if args.kernel_deb is not None and not args.kernel_deb.is_file():
        raise ProfileError(f"--kernel-deb {args.kernel_deb}: no such file")
    out_dir: Path = args.out.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    version = args.version or project_version()
    sde = source_date_epoch()
    if args.bare and not profile.bare_packages:
        raise ProfileError(f"board {profile.name} has no bare_packages for --bare")
    flavour = "-bare" if args.bare else ""
    names = OutputNames(out_dir, f"sokoul-{profile.name}{flavour}-{version}")
    work = out_dir / f".work-{profile.name}-{os.getpid()}"
    work.mkdir()
    run = Runner(out_dir / "logs" / profile.name)
    run.say(f"image: board {profile.name}, version {version}, work folder {work}")
    try:
        base = build_rootfs(
            RootfsRequest(
                profile=profile,
                mirrors=host_mirrors(),
                cache_dir=args.cache_dir,
                source_date_epoch=sde,
                kernel_deb=args.kernel_deb,
                max_age_days=args.max_cache_age_days,
                fresh=args.fresh,
                bare=args.bare,
            ),
            run,
        )
        build_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        release = Release(
            profile.name, version, _git("rev-parse", "HEAD") or "unknown", build_time, sde
        )
        rootfs = work / "rootfs"
        efi = customize(REPO, base, rootfs, profile, release, run, bare=args.bare)
        packages = installed_packages(rootfs)
        kernel = packages.get(profile.kernel_package) if args.kernel_deb is None else None
        raw = work / f"{names.stem}.img"
        esp_files = {
            "sokoul-preseed.example.toml": REPO / "first_boot/sokoul-preseed.example.toml",
            "sokoul-hash-password.py": REPO / "sokoul_appliance/passwords.py",
        }
        layout = build_disk(rootfs, efi, esp_files, raw, sde, run)
        shutil.rmtree(rootfs)
        manifest = {
            "board": profile.name,
            "bare": args.bare,
            "version": version,
            "git_commit": release.commit,
            "build_time": build_time,
            "source_date_epoch": sde,
            "suite": profile.suite,
            "arch": profile.arch,
            "kernel": {"package": profile.kernel_package, "version": kernel}
            if args.kernel_deb is None
            else {"deb": args.kernel_deb.name},
            "cmdline": profile.cmdline,
            "base_rootfs": base.name,
            "partitions": [
                {
                    "name": "sokoul-esp",
                    "fs": "vfat",
                    "start_mib": ESP_START_MIB,
                    "size_mib": ESP_SIZE_MIB,
                },
                {
                    "name": "sokoul-root",
                    "fs": "ext4",
                    "start_mib": ROOT_START_MIB,
                    "size_mib": layout.root_size_mib,
                    "grows_at_first_boot": True,
                },
            ],
            "packages": packages,
        }
        publish(raw, names, manifest, run, zstd_level=args.zstd_level)
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    run.say("image: done")
    for path in names.all():
        print(f"  {path}")
    return 0


def _newest_qemu_image(out_dir: Path) -> Path:
    images = sorted(out_dir.glob("sokoul-qemu-arm64-*.img.zst"), key=lambda p: p.stat().st_mtime)
    if not images:
        raise ProfileError(
            f"no QEMU image in {out_dir}: build one with ./build.sh image --board qemu-arm64"
        )
    return images[-1]


def cmd_boot(args: argparse.Namespace) -> int:
    image: Path = args.image or _newest_qemu_image(REPO / "out")
    if not image.is_file():
        raise ProfileError(f"{image}: no such image")
    profile = load_profile(REPO / "hw", "qemu-arm64")
    settings = profile.qemu or QemuSettings()
    if args.preseed is not None and not args.preseed.is_file():
        raise ProfileError(f"--preseed {args.preseed}: no such file")
    if args.ssh_key is not None and not args.ssh_key.is_file():
        raise ProfileError(f"--ssh-key {args.ssh_key}: no such file")
    if args.keep_running and not args.check:
        raise ProfileError("--keep-running goes with --check (without it the VM runs anyway)")
    return boot(
        image,
        settings,
        check=args.check,
        timeout=args.timeout,
        disk_gib=args.disk_gib,
        bare=args.bare,
        preseed=args.preseed,
        ssh_key=args.ssh_key,
        keep_running=args.keep_running,
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="build.sh", description="SOKOUL appliance image builder")
    sub = p.add_subparsers(dest="command", required=True)
    img = sub.add_parser("image", help="build a flashable image")
    img.add_argument(
        "--board", default=DEFAULT_BOARD, help=f"board profile from hw/ (default {DEFAULT_BOARD})"
    )
    img.add_argument("--out", type=Path, default=REPO / "out", help="output folder (default out/)")
    img.add_argument(
        "--kernel-deb", type=Path, help="install this vendor/Sky1 kernel .deb instead of Debian's"
    )
    img.add_argument("--version", help="version in the output names (default: pyproject + git)")
    img.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE,
        help=f"where base rootfs tars are cached (default {DEFAULT_CACHE})",
    )
    img.add_argument(
        "--max-cache-age-days",
        type=float,
        default=7.0,
        help="rebuild a cached base rootfs older than this (default 7)",
    )
    img.add_argument("--fresh", action="store_true", help="rebuild the base rootfs")
    img.add_argument("--zstd-level", type=int, default=19)
    img.add_argument(
        "--bare",
        action="store_true",
        help="plain Debian from the same pipeline, without the appliance (benchmarks)",
    )
    img.add_argument("--keep-work", action="store_true", help="keep the work folder for debugging")
    bt = sub.add_parser("boot", help="boot an image in QEMU")
    bt.add_argument(
        "image",
        nargs="?",
        type=Path,
        help="image (.img.zst or .img; default: newest qemu-arm64 image in out/)",
    )
    bt.add_argument(
        "--check",
        action="store_true",
        help="boot headless, wait for /api/health with first boot done, power off",
    )
    bt.add_argument("--timeout", type=float, default=900, help="seconds to wait (--check)")
    bt.add_argument(
        "--preseed",
        type=Path,
        help="put this file on the ESP as sokoul-preseed.toml before the first boot",
    )
    bt.add_argument(
        "--bare",
        action="store_true",
        help="the image is a --bare build: with --check, wait for SSH, not the panel",
    )
    bt.add_argument("--disk-gib", type=int, default=6, help="system drive size in GiB")
    bt.add_argument(
        "--ssh-key",
        type=Path,
        help="public key file root may log in with (written into the throw-away copy's root "
        "filesystem; for looking inside a boot without a preseed)",
    )
    bt.add_argument(
        "--keep-running",
        action="store_true",
        help="with --check: leave the VM running after the check (Ctrl-C/SIGTERM powers it off)",
    )
    return p


def _terminated(signum: int, frame: object) -> None:
    # unwind through the stages' cleanup (work folder, temporary outputs) like Ctrl-C does
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    try:
        if args.command == "image":
            return cmd_image(args)
        return cmd_boot(args)
    except ProfileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BuildError as e:
        print(f"error: build failed: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
