"""The casting test bench: the appliance and a TV in two network namespaces joined by a veth
pair, the real supervisor inside the appliance's namespace (Chromecast discovery on its veth
address only), the CASTV2 receiver double (tests/cast_receiver.py) inside the TV's.

Nothing is added to the machine's own namespace: the test (and Chromium) reach the supervisor
through ``NetnsForward``, a loopback listener whose connections are opened from a thread that
entered the appliance's namespace (setns(2) applies to the calling thread only). No mDNS ever
leaves the two namespaces.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tests.integration.supervisor_proc import SIM_ACPI
from tests.netns import Lab, Netns

REPO = Path(__file__).resolve().parents[1]
PYTHON = REPO / ".venv/bin/python"
CLONE_NEWNET = 0x40000000


def enter_netns(name: str) -> None:
    """Move the calling thread (only) into network namespace ``name``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


class NetnsForward:
    """127.0.0.1:<port> here -> 127.0.0.1:<target> inside namespace ``ns`` (TCP, both ways)."""

    def __init__(self, ns: Netns, target: int) -> None:
        self.ns = ns
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        t = threading.Thread(target=self._accept, name="netns-forward", daemon=True)
        t.start()
        self._threads.append(t)

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._pump, args=(client,), daemon=True)
            t.start()
            self._threads.append(t)

    def _pump(self, client: socket.socket) -> None:
        try:
            enter_netns(self.ns.name)
            upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        pair = {client: upstream, upstream: client}
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select(list(pair), [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    pair[s].sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        for t in self._threads:
            t.join(2)


def make_root(tmp: Path) -> tuple[Path, Path]:
    """A copied simulated board tree; returns (root, its library folder)."""
    root = tmp / "root"
    shutil.copytree(SIM_ACPI, root, symlinks=True)
    return root, root / "srv/media/library"


class CastBench:
    """Namespaces, the supervisor (in the appliance's) and receiver doubles (in the TV's)."""

    def __init__(self, lab: Lab, tmp: Path, root: Path, password_hash: str) -> None:
        self.lab = lab
        self.tmp = tmp
        self.root = root
        self.app = lab.namespace("castapp")
        self.tv = lab.namespace("casttv")
        lab.veth(self.app, "stream0", self.tv, "eth0")
        n = int(lab.suffix[:2], 16) % 200 + 20
        self.app_ip = f"10.{n}.7.1"
        self.tv_ip = f"10.{n}.7.50"
        self.app.add_address("stream0", f"{self.app_ip}/24")
        self.tv.add_address("eth0", f"{self.tv_ip}/24")
        self.port = 8080
        self.state = tmp / "state"
        self.state.mkdir()
        (self.state / "preseed.json").write_text(json.dumps({"admin_password_hash": password_hash}))
        self.log = tmp / "supervisor.log"
        self.supervisor: subprocess.Popen[bytes] | None = None
        self.forward: NetnsForward | None = None
        self.doubles: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}

    @property
    def url(self) -> str:
        assert self.forward is not None
        return f"http://127.0.0.1:{self.forward.port}"

    def start_supervisor(self) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "SOKOUL_CAST_INTERFACES": self.app_ip,
        }
        env.pop("NOTIFY_SOCKET", None)
        env.pop("WATCHDOG_USEC", None)
        self.supervisor = self.lab.start(
            self.app,
            [str(PYTHON), "-m", "sokoul_appliance", "--root", str(self.root), "--board",
             "orangepi-6-plus", "--state", str(self.state), "--listen", f":{self.port}"],
            log=self.log, env=env, cwd=REPO,
        )  # fmt: skip
        self.forward = NetnsForward(self.app, self.port)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.supervisor.poll() is not None:
                raise AssertionError(f"supervisor exited:\n{self.log_tail()}")
            with (
                contextlib.suppress(OSError, ValueError),
                urllib.request.urlopen(f"{self.url}/api/health", timeout=2) as r,
            ):
                if r.status == 200:
                    return
            time.sleep(0.2)
        raise AssertionError(f"no /api/health within 60 s:\n{self.log_tail()}")

    def start_double(self, name: str, model: str = "Chromecast") -> tuple[str, Path]:
        """A receiver double on the TV side; returns (its uuid, its report folder)."""
        uid = str(uuid.uuid4())
        report = self.tmp / f"double-{len(self.doubles)}"
        proc = self.lab.start(
            self.tv,
            [str(PYTHON), "-m", "tests.cast_receiver", "--address", self.tv_ip, "--name", name,
             "--model", model, "--uuid", uid, "--report", str(report)],
            log=self.tmp / f"double-{len(self.doubles)}.log",
            env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
        )  # fmt: skip
        self.doubles[uid] = (proc, report)
        deadline = time.monotonic() + 30
        while not any(e["event"] == "ready" for e in read_events(report)):
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (self.tmp / f"double-{len(self.doubles) - 1}.log").read_text()
                raise AssertionError(f"the receiver double did not start:\n{log}")
            time.sleep(0.1)
        return uid, report

    def kill_double(self, uid: str) -> None:
        """SIGKILL, like a TV losing power: no goodbye, no TCP close from its side."""
        proc, _ = self.doubles[uid]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait(10)

    def log_tail(self, n: int = 80) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def close(self) -> None:
        if self.forward is not None:
            self.forward.close()


def read_events(report: Path) -> list[dict[str, Any]]:
    """The receiver double's report (tests/cast_receiver.py writes one JSON object a line);
    read here without importing the double (and pychromecast) into the test process."""
    path = report / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def events_of(report: Path, kind: str) -> list[dict[str, Any]]:
    return [e for e in read_events(report) if e["event"] == kind]
