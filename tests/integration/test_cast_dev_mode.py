"""The hard rule for a supervisor on this machine's own network (./build.sh dev, the other
tests): no Chromecast discovery, so no mDNS socket and no multicast from it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.supervisor_proc import SupervisorProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def udp_ports_of(pid: int) -> set[int]:
    out = subprocess.run(
        ["ss", "-u", "-a", "-n", "-p", "-H"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    ports = set()
    for line in out.splitlines():
        if f"pid={pid}," in line:
            local = line.split()[3]
            ports.add(int(local.rsplit(":", 1)[1]))
    return ports


def test_a_simulated_board_sends_no_mdns(tmp_path: Path) -> None:
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is not installed")
    # the probe sees UDP sockets by owner (a control: one of this test's own)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        assert probe.getsockname()[1] in udp_ports_of(os.getpid())
    sv = SupervisorProcess(tmp_path / "state")
    try:
        sv.start()
        assert sv.proc is not None
        health = sv.health()
        (cast,) = [m for m in health["managers"] if m["name"] == "cast"]
        assert cast["state"] == "not_configured"
        assert "off on a simulated board" in cast["detail"]
        time.sleep(1.0)  # anything that would start late has had its chance
        assert 5353 not in udp_ports_of(sv.proc.pid)
        with urllib.request.urlopen(sv.url + "/metrics", timeout=5) as r:
            metrics = r.read().decode()
        assert "sokoul_cast_devices_discovered 0.0" in metrics
        assert health["simulated"] is True
    finally:
        sv.stop()
