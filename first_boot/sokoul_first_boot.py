#!/usr/bin/python3
"""SOKOUL first boot: make a freshly flashed image this appliance's own, exactly once.

Steps (each one safe to run again, so a power cut mid-way just re-runs them next boot):
 1. grow the root partition and its ext4 filesystem to fill the disk (sfdisk + partx +
    resize2fs);
 2. make sure /etc/machine-id holds this machine's own id, committed to disk;
 3. apply ``sokoul-preseed.toml`` from the ESP when present (hostname, timezone, admin password
    hash, SSH authorized keys). The ESP is the partition labelled ``sokoul-esp`` on the root's own
    disk, found in /sys and mounted privately for the step: first boot does not wait for udev to
    announce it (seconds to a minute after the root is up on a slow machine), and a second disk
    flashed with the same image cannot be taken for it. The preseed is validated as a whole: a
    file with any error is not applied, it is renamed ``sokoul-preseed.rejected.toml`` with the
    errors beside it in ``sokoul-preseed.errors.txt``; an applied file is deleted (it holds
    secrets);
 4. set the hostname: the preseed's, else ``sokoul-XXXX`` from the first NIC's MAC (by PCI path);
 5. write ``/var/lib/sokoul/first-boot.json`` last, atomically: its presence means "done" and the
    systemd unit's ConditionPathExists stops later runs.

SSH host keys (the image ships none either) are not made here but by Debian's sshd-keygen.service
before sshd, with a drop-in from overlay/ that runs it whenever a key is missing: off this
program's path, so the supervisor, which waits for first boot, does not wait for key generation.

Standard library only (it runs before anything else of the appliance). Every file access goes
under ``--root`` and every command through one runner, so tests run it against a fixture tree.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_DIR = "var/lib/sokoul"
RECORD = f"{STATE_DIR}/first-boot.json"
PRESEED_RECORD = f"{STATE_DIR}/preseed.json"
ESP_MOUNT = "boot/efi"
ESP_PARTNAME = "sokoul-esp"
PRIVATE_ESP_MOUNT = "run/sokoul-first-boot/esp"
PRESEED_NAME = "sokoul-preseed.toml"
REJECTED_NAME = "sokoul-preseed.rejected.toml"
ERRORS_NAME = "sokoul-preseed.errors.txt"
DEFAULT_HOSTNAME_PREFIX = "sokoul"

HOSTNAME_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
SCRYPT_RE = re.compile(
    r"^scrypt\$(?P<n>\d+)\$(?P<r>\d+)\$(?P<p>\d+)\$(?P<salt>[A-Za-z0-9+/=]{16,})\$"
    r"(?P<hash>[A-Za-z0-9+/=]{43,})$"
)
SSH_KEY_RE = re.compile(
    r"^(?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|"
    r"sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)"
    r" [A-Za-z0-9+/]+={0,3}(?: [^\n]*)?$"
)
PRESEED_KEYS = {"hostname", "timezone", "admin", "ssh"}

Run = Callable[[Sequence[str]], subprocess.CompletedProcess[str]]


def run_command(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=300, check=False)


class PreseedError(Exception):
    """The preseed file has errors; ``errors`` lists each one for the person who wrote it."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors))


@dataclass(frozen=True)
class Preseed:
    hostname: str | None = None
    timezone: str | None = None
    admin_password_hash: str | None = None
    ssh_authorized_keys: tuple[str, ...] = ()


def parse_preseed(text: str, zoneinfo_dir: Path) -> Preseed:
    """Parse and validate a preseed file; raise PreseedError listing every problem found."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PreseedError([f"not valid TOML: {e}"]) from e
    errors: list[str] = []
    for key in sorted(set(data) - PRESEED_KEYS):
        errors.append(f"unknown setting '{key}' (known: {', '.join(sorted(PRESEED_KEYS))})")

    hostname = data.get("hostname")
    if hostname is not None and (not isinstance(hostname, str) or not HOSTNAME_RE.match(hostname)):
        errors.append(
            "hostname: use 1-63 lowercase letters, digits and '-', not starting or ending with '-'"
            f" (got {hostname!r})"
        )

    timezone = data.get("timezone")
    if timezone is not None:
        ok = (
            isinstance(timezone, str)
            and re.fullmatch(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*", timezone) is not None
            and (zoneinfo_dir / timezone).is_file()
        )
        if not ok:
            errors.append(f"timezone: {timezone!r} is not a known zone (example: 'Europe/Paris')")

    password_hash = None
    admin = data.get("admin", {})
    if not isinstance(admin, dict):
        errors.append("admin: must be a table ([admin])")
        admin = {}
    for key in sorted(set(admin) - {"password_hash"}):
        errors.append(f"admin.{key}: unknown setting (known: password_hash)")
    if "password_hash" in admin:
        password_hash = admin["password_hash"]
        m = SCRYPT_RE.match(password_hash) if isinstance(password_hash, str) else None
        if m is None:
            errors.append(
                "admin.password_hash: expected 'scrypt$N$r$p$salt$hash' as printed by "
                "sokoul-hash-password (never the password itself)"
            )
        else:
            n, r, p = int(m["n"]), int(m["r"]), int(m["p"])
            if n < 2**14 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16:
                errors.append(
                    "admin.password_hash: scrypt cost too low or malformed "
                    "(N must be a power of two >= 16384, 1 <= r <= 32, 1 <= p <= 16)"
                )

    keys: list[str] = []
    ssh = data.get("ssh", {})
    if not isinstance(ssh, dict):
        errors.append("ssh: must be a table ([ssh])")
        ssh = {}
    for key in sorted(set(ssh) - {"authorized_keys"}):
        errors.append(f"ssh.{key}: unknown setting (known: authorized_keys)")
    raw_keys = ssh.get("authorized_keys", [])
    if not isinstance(raw_keys, list):
        errors.append("ssh.authorized_keys: must be a list of public key lines")
        raw_keys = []
    for i, key in enumerate(raw_keys, 1):
        if not isinstance(key, str) or not SSH_KEY_RE.match(key.strip()):
            errors.append(
                f"ssh.authorized_keys[{i}]: not an OpenSSH public key line "
                "(expected e.g. 'ssh-ed25519 AAAA... you@laptop')"
            )
        else:
            keys.append(key.strip())

    if errors:
        raise PreseedError(errors)
    return Preseed(
        hostname=hostname,
        timezone=timezone,
        admin_password_hash=password_hash,
        ssh_authorized_keys=tuple(keys),
    )


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Temp file + fsync + rename + fsync of the directory: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@dataclass
class FirstBoot:
    root: Path
    run: Run = run_command
    live: bool = True  # also change the running system (hostname), not only files
    log: Callable[[str], None] = field(default=lambda msg: print(msg, flush=True))
    record: dict[str, Any] = field(default_factory=dict)

    def p(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")

    def _check(self, argv: Sequence[str], ok_codes: tuple[int, ...] = (0,)) -> str:
        proc = self.run(argv)
        if proc.returncode not in ok_codes:
            raise RuntimeError(
                f"{' '.join(argv)} failed (exit {proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-400:]}"
            )
        return proc.stdout

    # -- 1. root filesystem -------------------------------------------------------------
    def root_block_device(self) -> str:
        """Kernel name of the block device mounted at / (e.g. 'nvme0n1p2'), from mountinfo."""
        mountinfo = self.p("/proc/self/mountinfo").read_text()
        for line in mountinfo.splitlines():
            fields = line.split()
            if len(fields) > 4 and fields[4] == "/":
                majmin = fields[2]
                dev = self.p(f"/sys/dev/block/{majmin}")
                if dev.exists():
                    return dev.resolve().name
        raise RuntimeError("cannot find the block device mounted at / in /proc/self/mountinfo")

    def grow_root(self) -> dict[str, Any]:
        return self.grow_partition(self.root_block_device(), self.root)

    def grow_partition(self, part: str, mountpoint: Path | None) -> dict[str, Any]:
        """Grow partition ``part`` (kernel name) to the end of its disk, then its ext4: online
        when it is mounted at ``mountpoint`` (the root at first boot), else offline after fsck."""
        part_dir = self.p(f"/sys/class/block/{part}").resolve()
        partno_file = part_dir / "partition"
        partno = partno_file.read_text().strip() if partno_file.exists() else ""
        if not partno:
            raise RuntimeError(f"/ is on {part}, which is not a partition: cannot grow it")
        disk = part_dir.parent.name

        def size_bytes() -> int:
            return int((part_dir / "size").read_text().strip()) * 512

        before = size_bytes()
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", disk) or not partno.isdigit():
            raise RuntimeError(f"unexpected block device name {disk!r} / partition {partno!r}")
        self._grow_partition_entry(disk, partno)
        grew = size_bytes() > before
        if mountpoint is None:
            # offline resize wants a freshly checked filesystem; 1 = errors fixed, still fine
            self._check(["e2fsck", "-f", "-p", f"/dev/{part}"], ok_codes=(0, 1))
        # resize2fs is a no-op when the filesystem already fills the partition (re-run safety)
        self._check(["resize2fs", f"/dev/{part}"])
        after = size_bytes()
        result = {
            "device": f"/dev/{part}",
            "disk": f"/dev/{disk}",
            "partition_bytes_before": before,
            "partition_bytes_after": after,
            "filesystem_bytes": _fs_bytes(mountpoint) if mountpoint else None,
            "grew": grew,
        }
        self.log(f"root: /dev/{part} {before / 2**30:.2f} GiB -> {after / 2**30:.2f} GiB")
        return result

    def _grow_partition_entry(self, disk: str, partno: str) -> None:
        """Make GPT entry ``partno`` of ``disk`` end where the disk ends, then tell the kernel.

        sfdisk and partx directly, not growpart: growpart wraps the same tools in a shell script
        of some forty processes, ten seconds of an emulated CPU on every first boot. sfdisk also
        moves the backup GPT to the end of a disk bigger than the image. Run again, it writes the
        same table."""
        dev = f"/dev/{disk}"
        self._check(
            ["sh", "-c", f'echo ", +" | sfdisk --no-reread --no-tell-kernel -q -N {partno} {dev}']
        )
        # the root is in use, so the kernel cannot re-read the whole table: partx resizes just
        # this partition (BLKPG), which is what an online resize2fs then sees
        self._check(["partx", "--update", "--nr", partno, dev])

    # -- 2. machine id ------------------------------------------------------------------
    def ensure_machine_id(self) -> None:
        path = self.p("/etc/machine-id")
        current = path.read_text().strip() if path.exists() else ""
        if re.fullmatch(r"[0-9a-f]{32}", current) and not self._is_mountpoint("/etc/machine-id"):
            return
        if self._is_mountpoint("/etc/machine-id"):
            self._check(["systemd-machine-id-setup", "--commit", f"--root={self.root}"])
        else:
            path.unlink(missing_ok=True)
            self._check(["systemd-machine-id-setup", f"--root={self.root}"])
        self.log("machine-id: committed")

    def _is_mountpoint(self, rel: str) -> bool:
        mountinfo = self.p("/proc/self/mountinfo")
        if not mountinfo.exists():
            return False
        target = "/" + rel.lstrip("/")
        return any(
            len(f) > 4 and f[4] == target
            for f in (ln.split() for ln in mountinfo.read_text().splitlines())
        )

    # -- SSH host keys: not a step any more ----------------------------------------------
    # -- 3. preseed ---------------------------------------------------------------------
    def esp_partition(self) -> str | None:
        """Kernel name of the partition labelled ``sokoul-esp`` on the root's own disk (its GPT
        name is in the partition's uevent), or None."""
        disk_dir = self.p(f"/sys/class/block/{self.root_block_device()}").resolve().parent
        for child in sorted(disk_dir.iterdir()):
            uevent = child / "uevent"
            if not (child / "partition").exists() or not uevent.exists():
                continue
            fields = dict(ln.split("=", 1) for ln in uevent.read_text().splitlines() if "=" in ln)
            if fields.get("PARTNAME") == ESP_PARTNAME:
                return child.name
        return None

    @contextlib.contextmanager
    def esp(self) -> Iterator[Path | None]:
        """The ESP's folder for the preseed step: /boot/efi when something mounted it already (a
        re-run by hand) or when working on a fixture tree, else the ESP partition of the root's
        disk mounted privately for the step (the unit runs before boot-efi.mount, so the two never
        mount it at the same time). None when there is no ESP."""
        if not self.live or self._is_mountpoint("/" + ESP_MOUNT):
            yield self.p(ESP_MOUNT)
            return
        part = self.esp_partition()
        if part is None:
            self.log(f"preseed: no partition named {ESP_PARTNAME} on the root's disk")
            yield None
            return
        target = self.p(PRIVATE_ESP_MOUNT)
        target.mkdir(parents=True, exist_ok=True)
        self._check(
            ["mount", "-t", "vfat", "-o", "umask=0077,noatime", f"/dev/{part}", str(target)]
        )
        try:
            yield target
        finally:
            proc = self.run(["umount", str(target)])
            if proc.returncode != 0:
                self.log(f"preseed: umount {target} failed: {proc.stderr.strip()}")

    def apply_preseed(self, esp: Path | None = None) -> tuple[str, Preseed | None]:
        esp = self.p(ESP_MOUNT) if esp is None else esp
        src = esp / PRESEED_NAME
        if not src.is_file():
            return "absent", None
        try:
            preseed = parse_preseed(src.read_text(errors="replace"), self.p("/usr/share/zoneinfo"))
        except PreseedError as e:
            msg = "\n".join(f"- {err}" for err in e.errors)
            self.log(f"preseed: {PRESEED_NAME} rejected, nothing from it applied:\n{msg}")
            (esp / ERRORS_NAME).write_text(
                f"{PRESEED_NAME} was not applied. Fix these and put it back as {PRESEED_NAME}:\n"
                f"{msg}\n"
            )
            os.replace(src, esp / REJECTED_NAME)
            self.record["preseed_errors"] = e.errors
            return "rejected", None

        if preseed.timezone:
            localtime = self.p("/etc/localtime")
            tmp = localtime.with_name(".localtime.tmp")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(f"/usr/share/zoneinfo/{preseed.timezone}")
            os.replace(tmp, localtime)
            write_atomic(self.p("/etc/timezone"), f"{preseed.timezone}\n".encode())
        if preseed.ssh_authorized_keys:
            ssh_dir = self.p("/root/.ssh")
            ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(ssh_dir, 0o700)
            auth = ssh_dir / "authorized_keys"
            existing = auth.read_text().splitlines() if auth.exists() else []
            merged = existing + [k for k in preseed.ssh_authorized_keys if k not in existing]
            write_atomic(auth, ("\n".join(merged) + "\n").encode(), 0o600)
        if preseed.admin_password_hash:
            payload = {"admin_password_hash": preseed.admin_password_hash, "applied_at": _now()}
            write_atomic(self.p(PRESEED_RECORD), json.dumps(payload).encode(), 0o600)
        # Applied: remove the file (it holds the password hash) and any earlier errors file.
        src.unlink()
        (esp / ERRORS_NAME).unlink(missing_ok=True)
        self._sync_dir(esp)
        self.log("preseed: applied and removed from the ESP")
        return "applied", preseed

    @staticmethod
    def _sync_dir(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- 4. hostname --------------------------------------------------------------------
    def first_nic_mac(self) -> str | None:
        """MAC of the first physical NIC, ordered by PCI path (stable across firmware modes)."""
        net = self.p("/sys/class/net")
        if not net.is_dir():
            return None
        nics: list[tuple[str, str]] = []
        for iface in net.iterdir():
            device = iface / "device"
            address = iface / "address"
            if not device.exists() or not address.exists():
                continue  # lo, bridges, veth, wg: no backing device
            mac = address.read_text().strip().lower()
            if re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac) and mac != "00:00:00:00:00:00":
                nics.append((str(device.resolve()), mac))
        return sorted(nics)[0][1] if nics else None

    def default_hostname(self) -> str:
        mac = self.first_nic_mac()
        if mac:
            return f"{DEFAULT_HOSTNAME_PREFIX}-{mac.replace(':', '')[-4:]}"
        mid = self.p("/etc/machine-id")
        ident = mid.read_text().strip() if mid.exists() else ""
        return f"{DEFAULT_HOSTNAME_PREFIX}-{(ident or '0000')[:4]}"

    def set_hostname(self, name: str) -> None:
        write_atomic(self.p("/etc/hostname"), f"{name}\n".encode())
        hosts = self.p("/etc/hosts")
        lines = hosts.read_text().splitlines() if hosts.exists() else ["127.0.0.1\tlocalhost"]
        lines = [ln for ln in lines if not ln.startswith("127.0.1.1")]
        lines.insert(1 if lines else 0, f"127.0.1.1\t{name}")
        write_atomic(hosts, ("\n".join(lines) + "\n").encode())
        if self.live:
            import socket

            socket.sethostname(name)
        self.log(f"hostname: {name}")

    # -- all ----------------------------------------------------------------------------
    def run_all(self, grow: bool = True) -> dict[str, Any]:
        started = time.monotonic()
        record: dict[str, Any] = self.record
        record["root"] = self.grow_root() if grow else None
        self.ensure_machine_id()
        with self.esp() as esp:
            status, preseed = self.apply_preseed(esp) if esp else ("absent", None)
        record["preseed"] = status
        hostname = preseed.hostname if preseed and preseed.hostname else self.default_hostname()
        self.set_hostname(hostname)
        record["hostname"] = hostname
        record["completed"] = True
        record["completed_at"] = _now()
        record["seconds"] = round(time.monotonic() - started, 2)
        write_atomic(self.p(RECORD), (json.dumps(record, indent=2) + "\n").encode())
        self.log(f"first boot complete in {record['seconds']} s")
        return record


def _fs_bytes(mountpoint: Path) -> int:
    st = os.statvfs(mountpoint)
    return st.f_blocks * st.f_frsize


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="SOKOUL first boot (runs once, from its systemd unit)")
    ap.add_argument("--root", type=Path, default=Path("/"))
    ap.add_argument("--no-grow", action="store_true", help="skip growing the root filesystem")
    ap.add_argument("--force", action="store_true", help="run even if first boot already completed")
    args = ap.parse_args(argv)
    fb = FirstBoot(root=args.root, live=args.root == Path("/"))
    if fb.p(RECORD).exists() and not args.force:
        print("first boot already completed; nothing to do (use --force to run again)")
        return 0
    try:
        fb.run_all(grow=not args.no_grow)
    except (RuntimeError, OSError) as e:
        print(f"first boot failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
