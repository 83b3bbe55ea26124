"""What `/api/health` reports: version, board, uptime, first-boot outcome, root filesystem."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sokoul_appliance import __version__
from sokoul_appliance.host import Host


@dataclass(frozen=True)
class HealthInputs:
    board: str
    state_dir: Path  # the supervisor's own state directory (/var/lib/sokoul on the appliance)


class HealthReporter:
    def __init__(self, host: Host, inputs: HealthInputs) -> None:
        self._host = host
        self._inputs = inputs
        self._started = host.monotonic()

    @staticmethod
    def _json_file(path: Path) -> tuple[dict[str, Any] | None, str | None]:
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None, None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            return None, f"{path} is not valid JSON ({e.msg})"
        if not isinstance(data, dict):
            return None, f"{path} does not hold a JSON object"
        return data, None

    def report(self) -> dict[str, Any]:
        problems: list[str] = []
        state = self._inputs.state_dir
        first_boot, err = self._json_file(state / "first-boot.json")
        if err:
            problems.append(err)
        preseed, err = self._json_file(state / "preseed.json")
        if err:
            problems.append(err)
        size, free = self._host.filesystem_usage("/")
        return {
            "status": "degraded" if problems else "ok",
            "problems": problems,
            "version": __version__,
            "board": self._inputs.board,
            "uptime_seconds": round(self._host.monotonic() - self._started, 3),
            "first_boot": first_boot,
            "setup": {"mode": "preseeded" if preseed else "wizard"},
            "root_filesystem": {"size_bytes": size, "free_bytes": free},
        }
