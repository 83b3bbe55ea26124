"""The torrent engine as sokoul-torrent.service: the unit file the image ships, the drop-in the
supervisor renders (command line; the VPN namespace when a VPN is configured), and the manager
driving the unit through a systemd double that runs exactly the drop-in's ExecStart= (as systemd
would: its own process, SIGTERM on stop). Network: 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import configparser
import os
import shlex
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from sokoul_appliance.bus import EventBus
from sokoul_appliance.events import SettingsChanged
from sokoul_appliance.host import Host
from sokoul_appliance.torrent.manager import TorrentConfig, TorrentManager
from sokoul_appliance.torrent.unit import DROPIN, UNIT, dropin_text, quote_arg, write_dropin
from tests.integration.test_torrent_engine import free_port

REPO = Path(__file__).resolve().parents[2]


def unit_file() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((REPO / "systemd" / UNIT).read_text())
    return parser


@pytest.mark.unit
def test_the_image_ships_the_unit_in_the_background_slice_not_enabled() -> None:
    u = unit_file()
    assert u["Service"]["Slice"] == "sokoul-background.slice"
    assert u["Unit"]["PartOf"] == "sokoul-supervisor.service"
    assert int(u["Service"]["TimeoutStopSec"].rstrip("s")) > 15  # the engine's resume save
    assert "Install" not in u  # the supervisor starts it, nothing else
    customize = (REPO / "image/sokoul_image/customize.py").read_text()
    assert '(repo / "systemd").glob("*.service")' in customize
    from image.sokoul_image.customize import UNITS_ENABLED

    assert UNIT not in UNITS_ENABLED


@pytest.mark.unit
def test_dropin_without_and_with_a_vpn() -> None:
    argv = ["/usr/bin/python3", "-m", "sokoul_appliance.torrent.engine", "--state", "/var/x"]
    plain = dropin_text(argv, None)
    lines = plain.splitlines()
    assert lines[1:4] == [
        "[Service]",
        "ExecStart=",
        "ExecStart=/usr/bin/python3 -m sokoul_appliance.torrent.engine --state /var/x",
    ]
    assert "NetworkNamespacePath" not in plain
    vpn = dropin_text(argv, "sokoul-torrent")
    assert "NetworkNamespacePath=/run/netns/sokoul-torrent" in vpn.splitlines()
    assert (
        "BindReadOnlyPaths=/etc/netns/sokoul-torrent/resolv.conf:/etc/resolv.conf"
        in vpn.splitlines()
    )
    with pytest.raises(ValueError, match="namespace"):
        dropin_text(argv, "bad name; rm -rf /")


@pytest.mark.unit
def test_arguments_are_quoted_as_systemd_reads_them() -> None:
    assert quote_arg("/srv/media/downloads") == "/srv/media/downloads"
    assert quote_arg("My Films") == '"My Films"'
    assert quote_arg("100%") == "100%%"
    assert quote_arg('a "b" $HOME') == '"a \\"b\\" $$HOME"'


@pytest.mark.unit
def test_dropin_is_written_atomically_under_the_host_root(tmp_path: Path) -> None:
    host = Host(tmp_path)
    write_dropin(host, "[Service]\n")
    target = tmp_path / DROPIN.lstrip("/")
    assert target.read_text() == "[Service]\n"
    write_dropin(host, "[Service]\nExecStart=\n")
    assert target.read_text() == "[Service]\nExecStart=\n"
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temp file left


# ---------------------------------------------------------------- the manager, unit mode


class ApplianceHost(Host):
    """The appliance's view (``live``) of a private tree: paths stay under the test's root."""

    @property
    def live(self) -> bool:
        return True


class SystemdDouble:
    """Reload reads the drop-in; restart runs its ExecStart= as its own process; stop sends
    SIGTERM and waits, as systemd does for this unit."""

    def __init__(self, host: Host, log: Path) -> None:
        self.host = host
        self.log = log
        self.dropins: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.calls: list[str] = []

    async def reload(self) -> None:
        self.calls.append("reload")
        self.dropins.append(self.host.path(DROPIN).read_text())

    def _exec_start(self) -> list[str]:
        lines = [ln for ln in self.dropins[-1].splitlines() if ln.startswith("ExecStart=")]
        assert lines[0] == "ExecStart="  # resets the unit's own ExecStart
        return shlex.split(lines[-1].removeprefix("ExecStart=").replace("%%", "%"))

    async def restart_unit(self, name: str) -> object:
        assert name == UNIT
        self.calls.append("restart")
        await self._stop()
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self._exec_start(), cwd=REPO, stdout=out, stderr=out)
        return None

    async def stop_unit(self, name: str) -> object:
        assert name == UNIT
        self.calls.append("stop")
        await self._stop()
        return None

    async def _stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            await asyncio.to_thread(self.proc.wait, 30)
        self.proc = None


class DictSettings:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.values[key]


class Storage:
    def downloads_dir(self) -> str:
        return "/srv/media/downloads"

    async def mark_done_seeding(self, torrent: str, paths: list[str]) -> None:
        return None


@pytest.fixture
async def unit_rig(work: Path) -> AsyncIterator[Any]:
    pytest.importorskip("libtorrent")
    root = work / "root"
    (root / "srv/media/downloads").mkdir(parents=True)
    host = ApplianceHost(root)
    units = SystemdDouble(host, work / "engine.log")
    bus = EventBus()
    settings = DictSettings()
    config = TorrentConfig(
        state_dir=work / "state",
        listen_interface="127.0.0.1",  # loopback only, also in "appliance" mode
        listen_port=free_port(),
        unit=UNIT,
    )
    m = TorrentManager(host, bus, settings, CollectorRegistry(), Storage(), config, units=units)
    await m.start()
    try:
        yield m, units, bus, settings
    finally:
        await m.stop()
        await units._stop()


@pytest.mark.integration
async def test_manager_runs_the_engine_as_the_unit_and_moves_it_with_the_vpn(
    unit_rig: tuple[TorrentManager, SystemdDouble, EventBus, DictSettings], work: Path
) -> None:
    m, units, bus, settings = unit_rig
    await m.wait_ready(60)
    assert m.unit_mode and units.calls[:2] == ["reload", "restart"]
    first = units.dropins[0]
    assert "NetworkNamespacePath" not in first  # no VPN: the default namespace
    argv = units._exec_start()
    assert argv[1:3] == ["-m", "sokoul_appliance.torrent.engine"]
    assert "--exit-with-parent" not in argv  # systemd is the parent
    assert argv[argv.index("--downloads") + 1] == str(work / "root/srv/media/downloads")
    assert argv[argv.index("--socket") + 1] == str(m.socket_path)
    pid = units.proc.pid if units.proc else None
    assert (await m.engine_request("ping"))["pid"] == pid

    # a VPN is configured: the engine restarts with the torrent namespace in its drop-in
    settings.values["vpn.wireguard_conf"] = "[Interface]\n..."
    assert m.engine_netns() == "sokoul-torrent"
    bus.publish(SettingsChanged(("vpn.wireguard_conf",)))
    for _ in range(300):
        if len(units.dropins) >= 2 and m.status()[0] == "ok":
            break
        await asyncio.sleep(0.1)
    assert "NetworkNamespacePath=/run/netns/sokoul-torrent" in units.dropins[-1].splitlines()
    assert "stop" in units.calls
    assert (await m.engine_request("ping"))["pid"] != pid

    # stopping the supervisor's manager stops the unit (SIGTERM: resume data saved)
    proc = units.proc
    await m.stop()
    assert units.calls[-1] == "stop" and proc is not None and proc.returncode == 0
