"""What `/api/health` reports: version, board, uptime, first-boot outcome, setup mode, every
manager's state, root filesystem."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sokoul_appliance import __version__
from sokoul_appliance.host import Host


@dataclass(frozen=True)
class HealthInputs:
    board: str
    state_dir: Path  # the supervisor's own state directory (/var/lib/sokoul on the appliance)


def read_json_file(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(object, None), (None, None) when absent, or (None, problem) when unreadable."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, None
    except OSError as e:
        return None, f"{path}: {e.strerror}"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        return None, f"{path} is not valid JSON ({e.msg})"
    if not isinstance(data, dict):
        return None, f"{path} does not hold a JSON object"
    return data, None


ManagerStates = Callable[[], list[dict[str, str]]]


class HealthReporter:
    def __init__(self, host: Host, inputs: HealthInputs) -> None:
        self._host = host
        self._inputs = inputs
        self._started = host.monotonic()
        self._managers: ManagerStates = list
        self._setup_mode: Callable[[], str] = lambda: "wizard"
        self._dlna: Callable[[], dict[str, Any]] | None = None
        self.first_boot, problem = read_json_file(inputs.state_dir / "first-boot.json")
        self._problems = [problem] if problem else []

    def attach(self, managers: ManagerStates, setup_mode: Callable[[], str]) -> None:
        self._managers = managers
        self._setup_mode = setup_mode

    def attach_dlna(self, source: Callable[[], dict[str, Any]]) -> None:
        """The MediaServer's device description URL(s) for the report."""
        self._dlna = source

    def root_usage(self) -> tuple[int, int]:
        return self._host.filesystem_usage("/")

    def report(self) -> dict[str, Any]:
        managers = self._managers()
        failing = [m["name"] for m in managers if m["state"] == "error"]
        problems = self._problems + [f"{name} reports an error" for name in failing]
        size, free = self.root_usage()
        return {
            "status": "degraded" if problems else "ok",
            "problems": problems,
            "version": __version__,
            "board": self._inputs.board,
            "simulated": not self._host.live,
            "uptime_seconds": round(self._host.monotonic() - self._started, 3),
            "first_boot": self.first_boot,
            "setup": {"mode": self._setup_mode()},
            "managers": managers,
            "dlna": self._dlna() if self._dlna is not None else None,
            "root_filesystem": {"size_bytes": size, "free_bytes": free},
        }
