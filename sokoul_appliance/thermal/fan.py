"""Fan to full and back, through the host seam (blocking: call from a worker thread).

Which file means "full" depends on the fan discovery found:
- hwmon ``cix_fan`` (ACPI mode): ``pwmN_enable`` 1 (0 off, 1 full, 2 auto);
- the vendor cix-ec-fan kobject (DT mode): ``/sys/cix_fan/mode`` "performance", the loudest
  EC profile (the driver knows only mute / normal / performance; it rejects anything else);
- ``pwm-fan``: ``pwmN`` 255;
- any other hwmon fan with a ``pwmN``: ``pwmN_enable`` 1 (manual) then ``pwmN`` 255.
Before forcing, each file's current value is kept; ``restore`` writes them back in reverse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sokoul_appliance.board.thermal import CIX_EC_FAN, CIX_FAN_MODES, Fan
from sokoul_appliance.host import Host, HostPathError


class FanError(Exception):
    """A fan control file could not be read or written (message names the file)."""


@dataclass
class FanControl:
    name: str
    writes: tuple[tuple[str, str], ...]  # (appliance path, value meaning "full"), in order
    mode_file: str  # the file whose value says the mode
    saved: list[tuple[str, str]] = field(default_factory=list)  # values before forcing

    @property
    def forced(self) -> bool:
        return bool(self.saved)

    def read_mode(self, host: Host) -> str | None:
        """The fan's mode as the panel shows it: off / full / auto / a profile / a duty."""
        raw = _read(host, self.mode_file)
        if raw is None:
            return None
        if self.mode_file.endswith("_enable") and self.name.split("/")[0] == "cix_fan":
            return CIX_FAN_MODES.get(int(raw), raw) if raw.isdigit() else raw
        if self.mode_file.endswith("_enable"):
            return {"0": "full", "1": "manual"}.get(raw, "auto")
        if self.mode_file == f"{CIX_EC_FAN}/mode":
            return raw
        return f"pwm {raw}"

    def force_full(self, host: Host) -> None:
        if self.forced:
            return
        saved = []
        for path, _full in self.writes:
            before = _read(host, path)
            if before is None:
                raise FanError(f"{path}: missing, cannot set the fan to full")
            saved.append((path, before))
        self.saved = saved  # before writing: a half-done write is still undone by restore
        for path, value in self.writes:
            _write(host, path, value)

    def restore(self, host: Host) -> None:
        for path, value in reversed(self.saved):
            _write(host, path, value)
        self.saved = []


def _read(host: Host, path: str) -> str | None:
    try:
        text = host.read_text(path)
    except (OSError, HostPathError) as e:
        raise FanError(f"{path}: cannot be read ({e})") from e
    return None if text is None else text.strip()


def _write(host: Host, path: str, value: str) -> None:
    try:
        host.write_text(path, value + "\n")
    except (OSError, HostPathError) as e:
        raise FanError(f"{path}: cannot write {value!r} ({e})") from e


def fan_controls(host: Host, fans: Sequence[Fan]) -> list[FanControl]:
    """One control per discovered fan that the governor knows how to force."""
    out = []
    for fan in fans:
        if fan.path == CIX_EC_FAN:
            mode = f"{CIX_EC_FAN}/mode"
            out.append(FanControl(fan.name, ((mode, "performance"),), mode))
            continue
        driver, _, channel = fan.name.partition("/fan")
        ch = channel or "1"
        pwm, enable = f"{fan.path}/pwm{ch}", f"{fan.path}/pwm{ch}_enable"
        if driver == "cix_fan":
            out.append(FanControl(fan.name, ((enable, "1"),), enable))
        elif driver == "pwm-fan":
            out.append(FanControl(fan.name, ((pwm, "255"),), pwm))
        elif _exists(host, pwm):
            writes = ((enable, "1"), (pwm, "255")) if _exists(host, enable) else ((pwm, "255"),)
            out.append(FanControl(fan.name, writes, writes[0][0]))
    return out


def _exists(host: Host, path: str) -> bool:
    try:
        return host.path(path).exists()
    except HostPathError:
        return False


__all__ = ["FanControl", "FanError", "fan_controls"]
