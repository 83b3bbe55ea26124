"""First boot's identity steps with the real tools against a fixture root."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from sokoul_first_boot import FirstBoot

REPO = Path(__file__).resolve().parents[2]


def test_machine_id_is_made_once(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir(parents=True)
    (tmp_path / "etc/machine-id").write_text("uninitialized\n")
    fb = FirstBoot(root=tmp_path, live=False, log=lambda m: None)
    fb.ensure_machine_id()
    mid = (tmp_path / "etc/machine-id").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{32}", mid)
    fb.ensure_machine_id()  # second run keeps what exists
    assert (tmp_path / "etc/machine-id").read_text().strip() == mid


def test_sshd_keygen_dropin_makes_missing_host_keys(tmp_path: Path) -> None:
    """SSH host keys come from Debian's sshd-keygen.service with the image's drop-in: its
    conditions hold whenever a key is missing (not only on the first boot), and its command,
    run twice against a fixture root, makes the keys once."""
    dropin = REPO / "overlay/etc/systemd/system/sshd-keygen.service.d/sokoul.conf"
    lines = [ln for ln in dropin.read_text().splitlines() if ln and not ln.startswith("#")]
    assert "ConditionFirstBoot=" in lines  # Debian's first-boot-only condition is reset
    for kind in ("ed25519", "ecdsa", "rsa"):
        assert f"ConditionPathExists=|!/etc/ssh/ssh_host_{kind}_key" in lines
    (tmp_path / "etc/ssh").mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-A", "-f", str(tmp_path)], check=True, capture_output=True)
    before = (tmp_path / "etc/ssh/ssh_host_ed25519_key").read_bytes()
    assert (tmp_path / "etc/ssh/ssh_host_rsa_key").exists()
    subprocess.run(["ssh-keygen", "-A", "-f", str(tmp_path)], check=True, capture_output=True)
    assert (tmp_path / "etc/ssh/ssh_host_ed25519_key").read_bytes() == before
