"""A private, real ``dbus-daemon`` for tests: its own config file, its own unix socket.

``with private_bus(tmp_path) as address:`` starts ``/usr/bin/dbus-daemon --nofork`` with a
config written into ``tmp_path`` (anyone may own any name, as on a session bus, so a test can
play org.freedesktop.systemd1) and kills it by PID when the block ends, also on failure.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""
SUN_PATH_MAX = 100  # sockaddr_un.sun_path is 108 bytes; keep a margin


def dbus_daemon_binary() -> str | None:
    return shutil.which("dbus-daemon") or (
        "/usr/bin/dbus-daemon" if os.path.exists("/usr/bin/dbus-daemon") else None
    )


@contextmanager
def private_bus(directory: Path, start_timeout: float = 10.0) -> Iterator[str]:
    """Yield the D-Bus address of a fresh dbus-daemon; the daemon dies when the block ends."""
    binary = dbus_daemon_binary()
    if binary is None:
        raise RuntimeError("dbus-daemon is not installed (apt-get install dbus-daemon)")
    socket_dir = directory
    short_dir: str | None = None
    if len(str(directory / "bus")) > SUN_PATH_MAX:  # long pytest paths: a short dir in /tmp
        short_dir = tempfile.mkdtemp(prefix="sokoul-bus-")
        socket_dir = Path(short_dir)
    socket = socket_dir / "bus"
    config = directory / "bus.conf"
    config.write_text(CONFIG.format(socket=socket))
    proc = subprocess.Popen(
        [binary, f"--config-file={config}", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if not sel.select(start_timeout):
                raise RuntimeError(f"dbus-daemon printed no address within {start_timeout} s")
        address = proc.stdout.readline().strip()
        if not address:
            err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
            raise RuntimeError(f"dbus-daemon did not start: {err.strip()}")
        yield address
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        socket.unlink(missing_ok=True)
        if short_dir is not None:
            shutil.rmtree(short_dir, ignore_errors=True)
