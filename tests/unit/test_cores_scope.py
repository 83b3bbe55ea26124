"""The supervisor's children in their slices: systemd-run --scope only where systemd runs."""

from __future__ import annotations

from pathlib import Path

from sokoul_appliance.cores import BACKGROUND, HEAVY
from sokoul_appliance.cores.scope import SliceCommands, systemd_booted
from sokoul_appliance.host import Host


class BootedHost(Host):
    """A host that claims to be the appliance itself, rooted in a test tree."""

    @property
    def live(self) -> bool:
        return True


def test_systemd_run_scope_only_on_a_host_booted_with_systemd(tmp_path: Path) -> None:
    live = BootedHost(tmp_path)
    assert not systemd_booted(live) and SliceCommands(live).prefix(HEAVY) == ()
    (tmp_path / "run/systemd/system").mkdir(parents=True)
    assert systemd_booted(live)
    assert SliceCommands(live).prefix(HEAVY) == (
        "systemd-run", "--scope", "--quiet", "--collect", "--slice=sokoul-heavy.slice", "--",
    )  # fmt: skip
    assert SliceCommands(live).prefix(BACKGROUND)[-2] == "--slice=sokoul-background.slice"
    # a simulated board never asks this machine's systemd, whatever its tree holds
    simulated = Host(tmp_path)
    assert not systemd_booted(simulated)
    assert SliceCommands(simulated).prefix(BACKGROUND) == ()
