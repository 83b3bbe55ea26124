"""`./build.sh boot`: run an image in qemu-system-aarch64 (virt + AAVMF UEFI), or check it.

The VM gets two virtio NICs on QEMU user networking with ``restrict=on`` (the guest reaches
nothing; only the forwards on 127.0.0.1 reach it) and two emulated NVMe drives: the image as the
system drive and a blank media drive.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .profile import QemuSettings

AAVMF_CODE = Path("/usr/share/AAVMF/AAVMF_CODE.fd")
AAVMF_VARS = Path("/usr/share/AAVMF/AAVMF_VARS.fd")
GUEST_HTTP_PORT = 80
NIC_MACS = ("52:54:00:5a:00:01", "52:54:00:5a:00:02")


class BootCheckFailed(Exception):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class VmFiles:
    system_disk: Path
    media_disk: Path
    vars_fd: Path
    serial_log: Path
    qmp_socket: Path


ESP_OFFSET = 1 << 20  # p1 starts at 1 MiB (disk.py)


def esp_files(disk: Path) -> list[str]:
    """Names in the ESP's root folder of a disk image (read with mtools, no mount)."""
    out = subprocess.run(
        ["mdir", "-i", f"{disk}@@{ESP_OFFSET}", "-b", "::/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.rsplit("/", 1)[-1] for line in out.splitlines() if line.strip()]


def prepare_disks(
    image: Path, work: Path, disk_gib: int, media_gib: int, preseed: Path | None = None
) -> VmFiles:
    """Decompress (or copy) the image into ``work``, give it ``disk_gib`` GiB of disk and,
    when asked, put a preseed file on its ESP as a person would before the first boot."""
    work.mkdir(parents=True, exist_ok=True)
    system = work / "system.img"
    if image.name.endswith(".zst"):
        subprocess.run(["zstd", "-d", "-q", "-f", str(image), "-o", str(system)], check=True)
    else:
        subprocess.run(["cp", "--sparse=always", str(image), str(system)], check=True)
    if system.stat().st_size < disk_gib << 30:
        os.truncate(system, disk_gib << 30)
    if preseed is not None:
        subprocess.run(
            [
                "mcopy",
                "-o",
                "-i",
                f"{system}@@{ESP_OFFSET}",
                str(preseed),
                "::/sokoul-preseed.toml",
            ],
            check=True,
        )
    media = work / "media.img"
    with media.open("wb") as f:
        f.truncate(media_gib << 30)
    vars_fd = work / "AAVMF_VARS.fd"
    shutil.copyfile(AAVMF_VARS, vars_fd)
    return VmFiles(system, media, vars_fd, work / "serial.log", work / "qmp.sock")


def partition_offset(disk: Path, name: str) -> int:
    """Byte offset of the GPT partition labelled ``name`` in a disk image (sfdisk, no loop)."""
    table = json.loads(
        subprocess.run(
            ["sfdisk", "--json", str(disk)], capture_output=True, text=True, check=True
        ).stdout
    )["partitiontable"]
    sector = int(table.get("sectorsize", 512))
    for part in table["partitions"]:
        if part.get("name") == name:
            return int(part["start"]) * sector
    raise BootCheckFailed(f"{disk}: no partition named {name}")


def install_root_ssh_key(disk: Path, public_key: Path) -> None:
    """Debugging aid: let ``public_key`` log in as root on the throw-away copy without a preseed
    (written into the root filesystem with debugfs: no loop device, no mount)."""
    offset = partition_offset(disk, "sokoul-root")
    script = (
        "mkdir /root/.ssh\n"
        f"write {public_key} /root/.ssh/authorized_keys\n"
        "sif /root/.ssh mode 040700\n"
        "sif /root/.ssh/authorized_keys mode 0100600\n"
    )
    subprocess.run(
        ["debugfs", "-w", "-f", "-", f"{disk}?offset={offset}"],
        input=script,
        capture_output=True,
        text=True,
        check=True,
    )
    listing = subprocess.run(
        ["debugfs", "-R", "stat /root/.ssh/authorized_keys", f"{disk}?offset={offset}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Mode:  0600" not in listing:
        raise BootCheckFailed(f"could not install {public_key} into the root filesystem")


def qemu_argv(
    files: VmFiles, settings: QemuSettings, http_port: int, ssh_port: int, interactive: bool
) -> list[str]:
    argv = [
        "qemu-system-aarch64",
        "-M",
        settings.machine,
        "-cpu",
        settings.cpu,
        "-smp",
        str(settings.smp),
        "-m",
        str(settings.memory_mib),
        "-accel",
        "tcg,thread=multi",
        "-drive",
        f"if=pflash,format=raw,readonly=on,file={AAVMF_CODE}",
        "-drive",
        f"if=pflash,format=raw,file={files.vars_fd}",
        "-device",
        "virtio-rng-pci",
        "-qmp",
        f"unix:{files.qmp_socket},server=on,wait=off",
    ]
    drives = [files.system_disk, files.media_disk][: settings.nvme_drives]
    for i, disk in enumerate(drives):
        argv += [
            "-drive",
            f"file={disk},if=none,format=raw,id=nvme{i},discard=unmap",
            "-device",
            f"nvme,serial=SOKOUL-NVME{i},drive=nvme{i}" + (",bootindex=0" if i == 0 else ""),
        ]
    for i in range(settings.nics):
        # each NIC on its own subnet: two NICs in one 10.0.2.0/24 would send replies out of the
        # wrong one (the guest's DHCP gives both the same address)
        netdev = f"user,id=net{i},restrict=on,net=10.0.{2 + i}.0/24"
        if i == 0:
            netdev += (
                f",hostfwd=tcp:127.0.0.1:{http_port}-:{GUEST_HTTP_PORT}"
                f",hostfwd=tcp:127.0.0.1:{ssh_port}-:22"
            )
        argv += [
            "-netdev",
            netdev,
            "-device",
            f"virtio-net-pci,netdev=net{i},mac={NIC_MACS[i]},romfile=",
        ]
    if interactive:
        argv += ["-nographic"]
    else:
        argv += ["-display", "none", "-serial", f"file:{files.serial_log}", "-monitor", "none"]
    return argv


def _qmp(sock_path: Path, command: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(sock_path))
        f = s.makefile("rw")
        f.readline()  # greeting
        for cmd in ("qmp_capabilities", command):
            f.write(json.dumps({"execute": cmd}) + "\n")
            f.flush()
            while True:
                reply = json.loads(f.readline())
                if "return" in reply or "error" in reply:
                    break


def fetch_health(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5) as r:
            data = json.loads(r.read())
            return data if isinstance(data, dict) else None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
        return None


def ssh_probe(port: int, wait: float) -> str:
    """One look at the SSH port through the forward: "banner" (an SSH server answered), "closed"
    (QEMU's forward accepted, then closed: nothing listens in the guest yet) or "silent" (no
    answer within ``wait`` seconds)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            s.settimeout(wait)
            data = s.recv(64)
    except TimeoutError:
        return "silent"
    except OSError:
        return "closed"
    if data.startswith(b"SSH-"):
        return "banner"
    return "closed" if not data else "silent"


class SshWatch:
    """Measures power-on to SSH banner in a thread, beside the health polling.

    Under TCG sshd needs seconds to start a session process before it sends its banner. A probe
    that hangs up after 3 s and reconnects makes the guest start one session after another, each
    running to its end: a storm that slowed the very boot being measured (20 sessions in 25 s were
    seen). So once a probe stays silent (sshd is most likely there and busy) the next ones wait up
    to ``patient`` seconds on their one connection."""

    def __init__(self, port: int, started: float, patient: float = 30) -> None:
        self.port = port
        self.started = started
        self.patient = patient
        self.answered_after: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ssh-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        wait = 3.0
        while not self._stop.is_set():
            result = ssh_probe(self.port, wait)
            if result == "banner":
                self.answered_after = time.monotonic() - self.started
                return
            if result == "silent":
                wait = self.patient
            else:
                self._stop.wait(1)

    def wait(self, seconds: float) -> float | None:
        self._thread.join(seconds)
        return self.answered_after

    def stop(self) -> None:
        self._stop.set()


@dataclass(frozen=True)
class Expectations:
    hostname: str
    preseeded: bool


def judge_health(health: dict[str, Any], disk_bytes: int, expect: Expectations) -> list[str]:
    """What is still missing for a healthy first boot (empty list: all good)."""
    missing = []
    if health.get("status") != "ok":
        missing.append(f"status is {health.get('status')!r}: {health.get('problems')}")
    fb = health.get("first_boot") or {}
    if not fb.get("completed"):
        missing.append("first boot not completed")
    root = fb.get("root") or {}
    if not root.get("partition_bytes_after", 0) > root.get("partition_bytes_before", 0):
        missing.append(f"root partition did not grow: {root}")
    fs = (health.get("root_filesystem") or {}).get("size_bytes", 0)
    if fs < 0.85 * (disk_bytes - (513 << 20)):
        missing.append(f"root filesystem is {fs} bytes on a {disk_bytes}-byte disk")
    if fb.get("completed") and fb.get("hostname") != expect.hostname:
        missing.append(f"hostname {fb.get('hostname')!r}, expected {expect.hostname!r}")
    if expect.preseeded:
        if fb.get("completed") and fb.get("preseed") != "applied":
            missing.append(f"preseed {fb.get('preseed')!r}: {fb.get('preseed_errors')}")
        if health.get("setup", {}).get("mode") != "preseeded":
            missing.append("setup mode is not 'preseeded'")
    return missing


def expected_hostname() -> str:
    return "sokoul-" + NIC_MACS[0].replace(":", "")[-4:]


def boot(
    image: Path,
    settings: QemuSettings,
    *,
    check: bool,
    timeout: float,
    disk_gib: int,
    bare: bool = False,
    preseed: Path | None = None,
    ssh_key: Path | None = None,
    keep_running: bool = False,
) -> int:
    """Boot ``image`` in a throw-away copy (the image itself is never modified).

    ``ssh_key``: a public key root may log in with (put into the copy's root filesystem, for
    looking inside a boot without a preseed); ``keep_running``: with ``check``, leave the VM up
    after the check (SIGINT/SIGTERM to this process powers it off)."""
    work = Path(tempfile.mkdtemp(prefix="sokoul-boot-"))
    try:
        return _boot_in(
            work, image, settings, check, timeout, disk_gib, bare, preseed, ssh_key, keep_running
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _boot_in(
    work: Path,
    image: Path,
    settings: QemuSettings,
    check: bool,
    timeout: float,
    disk_gib: int,
    bare: bool,
    preseed: Path | None,
    ssh_key: Path | None,
    keep_running: bool,
) -> int:
    http_port, ssh_port = free_port(), free_port()
    print(f"boot: preparing disks in {work} ({disk_gib} GiB system, 4 GiB media)", flush=True)
    files = prepare_disks(image, work, disk_gib, 4, preseed)
    if ssh_key is not None:
        install_root_ssh_key(files.system_disk, ssh_key)
        print(f"boot: {ssh_key} may log in as root (written into the copy's root)", flush=True)
    expect = Expectations(hostname=expected_hostname(), preseeded=False)
    if preseed is not None:
        data = tomllib.loads(preseed.read_text())
        expect = Expectations(hostname=data.get("hostname", expect.hostname), preseeded=True)
    disk_bytes = files.system_disk.stat().st_size
    argv = qemu_argv(files, settings, http_port, ssh_port, interactive=not check)
    print(
        f"boot: panel on http://127.0.0.1:{http_port}/  ssh -p {ssh_port} root@127.0.0.1",
        flush=True,
    )
    if not check:
        return subprocess.call(argv)
    started = time.monotonic()
    with (work / "qemu.stderr").open("w+") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, text=True)
        try:
            code = _check(
                proc,
                files,
                http_port,
                ssh_port,
                disk_bytes,
                started,
                timeout,
                bare,
                expect,
                power_off=not keep_running,
            )
            if keep_running and code == 0 and proc.poll() is None:
                print(
                    f"boot: VM kept running: ssh -p {ssh_port} root@127.0.0.1; "
                    f"power off: kill {os.getpid()}",
                    flush=True,
                )
                # also when started in the background, where SIGINT arrives ignored
                signal.signal(signal.SIGINT, signal.default_int_handler)
                try:
                    proc.wait()
                except (KeyboardInterrupt, SystemExit):
                    code = _power_off(proc, files, "")
            return code
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _serial_tail(files: VmFiles, lines: int = 60) -> str:
    try:
        text = files.serial_log.read_text(errors="replace")
    except FileNotFoundError:
        return "(no serial output)"
    return "\n".join(text.splitlines()[-lines:])


def _check(
    proc: subprocess.Popen[str],
    files: VmFiles,
    http_port: int,
    ssh_port: int,
    disk_bytes: int,
    started: float,
    timeout: float,
    bare: bool,
    expect: Expectations,
    power_off: bool = True,
) -> int:
    ssh = SshWatch(ssh_port, started)
    try:
        return _watch(
            proc, files, http_port, ssh, disk_bytes, started, timeout, bare, expect, power_off
        )
    finally:
        ssh.stop()


def _watch(
    proc: subprocess.Popen[str],
    files: VmFiles,
    http_port: int,
    ssh: SshWatch,
    disk_bytes: int,
    started: float,
    timeout: float,
    bare: bool,
    expect: Expectations,
    power_off: bool,
) -> int:
    last_report = 0.0
    missing: list[str] = ["no SSH banner yet" if bare else "no answer on /api/health yet"]
    health: dict[str, Any] | None = None
    ssh_after: float | None = None
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            err = (files.serial_log.parent / "qemu.stderr").read_text(errors="replace")
            print(
                f"boot: FAIL: QEMU exited ({proc.returncode}) {err.strip()}\n"
                f"--- serial ---\n{_serial_tail(files)}",
                flush=True,
            )
            return 1
        if ssh_after is None and ssh.answered_after is not None:
            ssh_after = ssh.answered_after
            print(f"boot: SSH answers after {ssh_after:.1f} s", flush=True)
            if bare:
                missing = []
                break
        health = None if bare else fetch_health(http_port)
        if health is not None:
            missing = judge_health(health, disk_bytes, expect)
            if not missing:
                break
        now = time.monotonic() - started
        if now - last_report >= 30:
            last_report = now
            print(f"boot: {now:5.0f} s, waiting: {'; '.join(missing)}", flush=True)
        time.sleep(1)
    else:
        print(
            f"boot: FAIL: not healthy after {timeout:.0f} s: {'; '.join(missing)}\n"
            f"--- serial (last lines) ---\n{_serial_tail(files)}",
            flush=True,
        )
        return 1
    if bare:
        # a bare Debian may ignore the ACPI power button: the figure counts, QEMU is stopped
        print(f"BOOT-TO-SSH-SECONDS {ssh_after:.1f}", flush=True)
        if power_off:
            _power_off(proc, files, "")
        return 0
    healthy_after = time.monotonic() - started
    assert health is not None
    fb = health["first_boot"]
    print(
        f"boot: healthy after {healthy_after:.1f} s (power-on to /api/health with first boot done)"
    )
    print(
        f"boot: hostname {fb.get('hostname')}, root {fb['root']['partition_bytes_before'] >> 20}"
        f" MiB -> {fb['root']['partition_bytes_after'] >> 20} MiB, "
        f"filesystem {health['root_filesystem']['size_bytes'] >> 20} MiB",
        flush=True,
    )
    for manager in health.get("managers") or []:  # each room's own verdict on this machine
        print(f"boot: manager {manager.get('name')}: {manager.get('state')} — "
              f"{manager.get('detail')}", flush=True)  # fmt: skip
    ssh_after = ssh.wait(60)
    lines = f"BOOT-TO-HEALTHY-SECONDS {healthy_after:.1f}"
    if ssh_after is not None:
        lines += f"\nBOOT-TO-SSH-SECONDS {ssh_after:.1f}"
    if not power_off:
        print(lines, flush=True)
        return 0
    code = _power_off(proc, files, lines)
    if code == 0 and expect.preseeded:
        left = esp_files(files.system_disk)
        if "sokoul-preseed.toml" in left:
            print(f"boot: FAIL: the applied preseed is still on the ESP: {left}")
            return 1
        print("boot: preseed applied and removed from the ESP", flush=True)
    return code


def _power_off(proc: subprocess.Popen[str], files: VmFiles, result_lines: str) -> int:
    t0 = time.monotonic()
    try:
        _qmp(files.qmp_socket, "system_powerdown")
        proc.wait(120)
        print(f"boot: powered off (ACPI shutdown) in {time.monotonic() - t0:.1f} s", flush=True)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"boot: FAIL: the guest did not power off cleanly ({e})\n{_serial_tail(files, 30)}")
        return 1
    if result_lines:
        print(result_lines, flush=True)
    return 0
