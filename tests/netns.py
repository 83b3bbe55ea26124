"""Network-namespace primitives for integration tests (needs root, iproute2).

Everything a test creates lives in namespaces it made itself, named with a random suffix so
parallel runs never collide; the machine's real interfaces are never touched (veth pairs are
created directly inside their namespaces with ``ip -n``). ``Lab`` is the cleanup context manager:
it stops every process it started (by PID, process group first), then deletes its namespaces,
also when the test fails.

    with Lab() as lab:
        app = lab.namespace("appliance")          # -> Netns("appliance-1a2b3c")
        tv = lab.namespace("tv")
        lab.veth(app, "stream0", tv, "eth0")
        app.add_address("stream0", "10.0.1.1/24")
        tv.add_address("eth0", "10.0.1.50/24")
        srv = lab.start(app, ["python3", "-m", "http.server", "8080"])
        tv.run("ping", "-c1", "-W1", "10.0.1.1")
        lab.stop(srv)                              # optional: Lab stops it anyway

Stable API (used by the network and VPN tests): unique_suffix, Netns (name, run, ok, popen,
add_address, link_up, addresses), create_namespace, delete_namespace, veth_pair,
start_process, stop_process, Lab (namespace, veth, start, stop, suffix, close).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

DEFAULT_TIMEOUT = 20.0


def unique_suffix(nbytes: int = 3) -> str:
    """A short random hex suffix for names that must not collide between parallel runs."""
    return secrets.token_hex(nbytes)


def _ip(*args: str, timeout: float = DEFAULT_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", *args], check=True, capture_output=True, text=True, timeout=timeout
    )


class Netns:
    """One network namespace (by name); commands run inside with ``ip netns exec``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Netns({self.name!r})"

    def argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(
        self,
        *argv: str,
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace and wait for it (raises on failure if check)."""
        return subprocess.run(
            self.argv(argv),
            check=check,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )

    def ok(self, *argv: str, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """True when the command exits 0 inside the namespace within the timeout."""
        try:
            return self.run(*argv, timeout=timeout, check=False).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def popen(
        self,
        argv: Sequence[str],
        stdout: IO[Any] | int | None = subprocess.DEVNULL,
        stderr: IO[Any] | int | None = subprocess.STDOUT,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a process inside the namespace in its own session (stop it with
        stop_process, which signals its process group by PID)."""
        return subprocess.Popen(
            self.argv(argv),
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )

    def link_up(self, ifname: str) -> None:
        _ip("-n", self.name, "link", "set", ifname, "up")

    def add_address(self, ifname: str, cidr: str, up: bool = True) -> None:
        """Add an address (e.g. "10.0.1.1/24") to an interface and bring it up."""
        _ip("-n", self.name, "addr", "add", cidr, "dev", ifname)
        if up:
            self.link_up(ifname)

    def addresses(self, ifname: str, family: str = "inet") -> list[str]:
        """The interface's addresses as "a.b.c.d/len" strings (family inet or inet6)."""
        out = _ip("-n", self.name, "-j", "addr", "show", "dev", ifname).stdout
        result: list[str] = []
        for link in json.loads(out or "[]"):
            for info in link.get("addr_info", []):
                if info.get("family") == family:
                    result.append(f"{info['local']}/{info['prefixlen']}")
        return result

    def pids(self) -> list[int]:
        """PIDs of every process still running inside the namespace."""
        try:
            out = _ip("netns", "pids", self.name).stdout
        except subprocess.CalledProcessError:
            return []
        return [int(p) for p in out.split()]


def create_namespace(name: str) -> Netns:
    """Create a namespace with loopback up."""
    _ip("netns", "add", name)
    ns = Netns(name)
    ns.link_up("lo")
    return ns


def delete_namespace(name: str) -> None:
    """Delete a namespace (its veth ends go with it); no error if it is already gone."""
    with contextlib.suppress(subprocess.CalledProcessError):
        _ip("netns", "del", name)


def veth_pair(a: Netns, a_if: str, b: Netns, b_if: str, up: bool = True) -> None:
    """A veth pair with one end in each namespace, created there directly (never in the
    machine's own namespace), both ends up unless told otherwise."""
    _ip("-n", a.name, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b.name)
    if up:
        a.link_up(a_if)
        b.link_up(b_if)


def start_process(
    ns: Netns,
    argv: Sequence[str],
    log: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start argv in the namespace (output to ``log`` when given, else discarded)."""
    if log is None:
        return ns.popen(argv, env=env, cwd=cwd)
    with log.open("ab") as out:
        return ns.popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 3.0) -> int | None:
    """SIGTERM the process group of a process we started (by its PID), SIGKILL after
    ``grace`` seconds; returns its exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(grace)
    else:
        # the leader is gone; children of its group may still run
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode


class Lab:
    """Cleanup context manager: namespaces and processes made through it are removed on exit
    (processes first, by PID; then anything still running inside our namespaces, which only
    we created; then the namespaces)."""

    def __init__(self, suffix: str | None = None) -> None:
        self.suffix = suffix or unique_suffix()
        self.namespaces: list[Netns] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def namespace(self, role: str) -> Netns:
        """Create namespace "<role>-<suffix>"."""
        ns = create_namespace(f"{role}-{self.suffix}")
        self.namespaces.append(ns)
        return ns

    def veth(self, a: Netns, a_if: str, b: Netns, b_if: str, up: bool = True) -> None:
        veth_pair(a, a_if, b, b_if, up=up)

    def start(
        self,
        ns: Netns,
        argv: Sequence[str],
        log: Path | None = None,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> subprocess.Popen[bytes]:
        proc = start_process(ns, argv, log=log, env=env, cwd=cwd)
        self.processes.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> int | None:
        code = stop_process(proc)
        if proc in self.processes:
            self.processes.remove(proc)
        return code

    def close(self) -> None:
        errors: list[BaseException] = []
        for proc in reversed(self.processes):
            try:
                stop_process(proc)
            except Exception as e:  # keep cleaning up; report at the end
                errors.append(e)
        self.processes.clear()
        for ns in reversed(self.namespaces):
            # daemons started inside (e.g. a DHCP client that forked) live only in our namespace
            for pid in ns.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 3
            while ns.pids() and time.monotonic() < deadline:
                time.sleep(0.05)
            delete_namespace(ns.name)
        self.namespaces.clear()
        if errors:
            raise errors[0]


def wait_until(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate()`` until it is truthy or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
