"""The supervisor process as systemd runs it: READY/WATCHDOG over a real notify socket,
/api/health and /metrics over HTTP, clean exit on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read()


def test_supervisor_under_a_notify_socket(tmp_path: Path) -> None:
    notify_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.settimeout(20)
    state = tmp_path / "state"
    state.mkdir()
    (state / "first-boot.json").write_text(
        json.dumps({"completed": True, "hostname": "sokoul-1e5f"})
    )
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "NOTIFY_SOCKET": str(notify_path),
        "WATCHDOG_USEC": "1000000",  # ping every 0.5 s
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sokoul_appliance",
            "--root",
            str(REPO / "hw/orangepi-6-plus/sim/acpi"),
            "--board",
            "orangepi-6-plus",
            "--state",
            str(state),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        env=env,
    )
    try:
        # STATUS=starting <stage> for each start-up stage, then READY=1
        messages = [sock.recv(4096).decode()]
        while not any("READY=1" in m for m in messages):
            messages.append(sock.recv(4096).decode())
        statuses = [m for m in messages if m.startswith("STATUS=starting ")]
        assert [m.split("\n")[0] for m in statuses] == [
            "STATUS=starting database",
            "STATUS=starting settings",
            "STATUS=starting board discovery",
            "STATUS=starting CPU slices",
            "STATUS=starting thermal governor",
            "STATUS=starting storage",
            "STATUS=starting network",
            "STATUS=starting VPN",
            "STATUS=starting downloads",
            "STATUS=starting library",
            "STATUS=starting streaming",
            "STATUS=starting DLNA server",
            "STATUS=starting casting",
            "STATUS=starting web",
        ]
        deadline = time.monotonic() + 10
        while sum("WATCHDOG=1" in m for m in messages) < 3 and time.monotonic() < deadline:
            messages.append(sock.recv(4096).decode())
        assert sum("WATCHDOG=1" in m for m in messages) >= 3

        status, body = get(f"http://127.0.0.1:{port}/api/health")
        health = json.loads(body)
        assert status == 200 and health["status"] == "ok"
        assert health["board"] == "orangepi-6-plus"
        assert health["first_boot"] == {"completed": True, "hostname": "sokoul-1e5f"}
        assert health["setup"] == {"mode": "wizard"}
        assert health["root_filesystem"]["size_bytes"] > 0

        status, body = get(f"http://127.0.0.1:{port}/metrics")
        text = body.decode()
        assert 'sokoul_build_info{board="orangepi-6-plus",version="0.1.0"} 1.0' in text
        line = next(
            ln
            for ln in text.splitlines()
            if ln.startswith('sokoul_http_requests_total{route="/api/health"')
        )
        assert line.endswith(" 1.0")
        pings = re.search(r"^sokoul_watchdog_pings_total (\S+)$", text, re.M)
        assert pings is not None and float(pings.group(1)) >= 3

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        tail = []
        sock.settimeout(2)
        try:
            while True:
                tail.append(sock.recv(4096).decode())
        except TimeoutError:
            pass
        assert any("STOPPING=1" in m for m in tail)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()


def test_corrupt_first_boot_record_is_reported_not_fatal(tmp_path: Path) -> None:
    from sokoul_appliance.health import HealthInputs, HealthReporter
    from sokoul_appliance.host import Host

    (tmp_path / "first-boot.json").write_text("{half a record")
    report = HealthReporter(Host(tmp_path), HealthInputs("qemu-arm64", tmp_path)).report()
    assert report["status"] == "degraded"
    assert report["first_boot"] is None
    assert "first-boot.json is not valid JSON" in report["problems"][0]


def test_bad_listen_address_is_a_clear_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sokoul_appliance", "--listen", "localhost"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "--listen wants HOST:PORT" in proc.stderr


def test_board_comes_from_the_image_when_not_given(tmp_path: Path) -> None:
    """On the appliance the unit passes no --board: it is read from /etc/sokoul/board."""
    root = tmp_path / "root"
    (root / "etc/sokoul").mkdir(parents=True)
    (root / "etc/sokoul/board").write_text("qemu-arm64\n")
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sokoul_appliance",
            "--root",
            str(root),
            "--state",
            str(tmp_path / "state"),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                status, body = get(f"http://127.0.0.1:{port}/api/health")
                break
            except OSError:
                assert time.monotonic() < deadline, "supervisor did not answer"
                time.sleep(0.2)
        assert json.loads(body)["board"] == "qemu-arm64"
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
