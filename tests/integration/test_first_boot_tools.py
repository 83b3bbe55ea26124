"""First boot's identity steps with the real tools against a fixture root."""

from __future__ import annotations

import re
from pathlib import Path

from sokoul_first_boot import FirstBoot


def test_machine_id_and_ssh_host_keys_are_made(tmp_path: Path) -> None:
    (tmp_path / "etc/ssh").mkdir(parents=True)
    (tmp_path / "etc/machine-id").write_text("uninitialized\n")
    fb = FirstBoot(root=tmp_path, live=False, log=lambda m: None)
    fb.ensure_machine_id()
    mid = (tmp_path / "etc/machine-id").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{32}", mid)
    fb.ensure_ssh_host_keys()
    keys = sorted(p.name for p in (tmp_path / "etc/ssh").glob("ssh_host_*_key"))
    assert "ssh_host_ed25519_key" in keys and "ssh_host_rsa_key" in keys
    before = (tmp_path / "etc/ssh/ssh_host_ed25519_key").read_bytes()
    fb.ensure_machine_id()
    fb.ensure_ssh_host_keys()  # second run keeps what exists
    assert (tmp_path / "etc/machine-id").read_text().strip() == mid
    assert (tmp_path / "etc/ssh/ssh_host_ed25519_key").read_bytes() == before
