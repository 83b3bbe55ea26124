"""The host seam's command runner: a command never outlives the call that started it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from sokoul_appliance.host import CommandError, Host


def _children(name: str) -> list[int]:
    me = str(os.getpid())
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[1] == me and f"({name})" in stat:
            out.append(int(pid))
    return out


async def test_a_cancelled_command_is_ended(tmp_path: Path) -> None:
    host = Host(tmp_path)
    task = asyncio.create_task(host.run("sleep", "30", timeout=60))
    for _ in range(100):
        if _children("sleep"):
            break
        await asyncio.sleep(0.02)
    [pid] = _children("sleep")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not Path(f"/proc/{pid}").exists(), "the command outlived its cancelled caller"


async def test_a_timed_out_command_is_ended_and_failures_are_errors(tmp_path: Path) -> None:
    host = Host(tmp_path)
    with pytest.raises(TimeoutError):
        await host.run("sleep", "30", timeout=0.3)
    assert _children("sleep") == []
    with pytest.raises(CommandError) as e:
        await host.run("sh", "-c", "echo nope >&2; exit 3")
    assert e.value.result.returncode == 3 and "nope" in e.value.result.stderr
