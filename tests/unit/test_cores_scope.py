"""The supervisor's children in their slices: systemd-run --scope only where systemd runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sokoul_appliance.cores import BACKGROUND, HEAVY
from sokoul_appliance.cores.scope import slice_prefix, systemd_booted
from sokoul_appliance.host import Host
from sokoul_appliance.library.probe import probe_file


class BootedHost(Host):
    """A host that claims to be the appliance itself, rooted in a test tree."""

    @property
    def live(self) -> bool:
        return True


def test_systemd_run_scope_only_on_a_host_booted_with_systemd(tmp_path: Path) -> None:
    live = BootedHost(tmp_path)
    assert not systemd_booted(live) and slice_prefix(live, HEAVY) == ()
    (tmp_path / "run/systemd/system").mkdir(parents=True)
    assert systemd_booted(live)
    assert slice_prefix(live, HEAVY) == (
        "systemd-run", "--scope", "--quiet", "--collect", "--slice=sokoul-heavy.slice", "--",
    )  # fmt: skip
    assert slice_prefix(live, BACKGROUND)[-2] == "--slice=sokoul-background.slice"
    # a simulated board never asks this machine's systemd, whatever its tree holds
    simulated = Host(tmp_path)
    assert not systemd_booted(simulated) and slice_prefix(simulated, BACKGROUND) == ()


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffprobe")
async def test_probe_runs_behind_the_prefix(tmp_path: Path) -> None:
    """The prefix is what starts ffprobe (on the appliance: systemd-run into the slice)."""
    import subprocess

    video = tmp_path / "a.mkv"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi",
         "-i", "testsrc=size=64x48:rate=5", "-t", "1", "-c:v", "mpeg4", str(video)],
        check=True, timeout=60,
    )  # fmt: skip
    marker = tmp_path / "argv"
    prefix = ("sh", "-c", f'echo "$@" > {marker}; exec "$@"', "sh")
    info = await probe_file(Host(Path("/")), video, prefix=prefix)
    assert info.video_codec == "mpeg4" and info.width == 64
    assert marker.read_text().startswith("nice -n 10 ffprobe ")
