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


def ssh_banner(port: int) -> bool:
    """True when an SSH server answers its banner through the forwarded port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            s.settimeout(3)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


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
) -> int:
    """Boot ``image`` in a throw-away copy (the image itself is never modified)."""
    work = Path(tempfile.mkdtemp(prefix="sokoul-boot-"))
    try:
        return _boot_in(work, image, settings, check, timeout, disk_gib, bare, preseed)
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
) -> int:
    http_port, ssh_port = free_port(), free_port()
    print(f"boot: preparing disks in {work} ({disk_gib} GiB system, 4 GiB media)", flush=True)
    files = prepare_disks(image, work, disk_gib, 4, preseed)
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
            return _check(
                proc, files, http_port, ssh_port, disk_bytes, started, timeout, bare, expect
            )
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
        if ssh_after is None and ssh_banner(ssh_port):
            ssh_after = time.monotonic() - started
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
    deadline = time.monotonic() + 60
    while ssh_after is None and time.monotonic() < deadline:
        if ssh_banner(ssh_port):
            ssh_after = time.monotonic() - started
        else:
            time.sleep(1)
    lines = f"BOOT-TO-HEALTHY-SECONDS {healthy_after:.1f}"
    if ssh_after is not None:
        lines += f"\nBOOT-TO-SSH-SECONDS {ssh_after:.1f}"
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
