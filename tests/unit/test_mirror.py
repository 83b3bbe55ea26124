from __future__ import annotations

from pathlib import Path

import pytest
from sokoul_image.mirror import host_mirrors


def test_mirrors_from_deb822_and_one_line_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOKOUL_MIRROR", raising=False)
    monkeypatch.delenv("SOKOUL_SECURITY_MIRROR", raising=False)
    d = tmp_path / "etc/apt/sources.list.d"
    d.mkdir(parents=True)
    (d / "debian.sources").write_text(
        "Types: deb\nURIs: http://a.invalid/debian\nSuites: bookworm\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://a.invalid/debian-security\nSuites: bookworm-security\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    (d / "thirdparty.sources").write_text(
        "Types: deb\nURIs: http://vendor.invalid/debian\nSuites: x\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/vendor.gpg\n"
    )
    m = host_mirrors(tmp_path)
    assert (m.debian, m.security) == ("http://a.invalid/debian", "http://a.invalid/debian-security")

    monkeypatch.setenv("SOKOUL_MIRROR", "http://override.invalid/debian")
    assert host_mirrors(tmp_path).debian == "http://override.invalid/debian"


def test_one_line_sources_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOKOUL_MIRROR", raising=False)
    monkeypatch.delenv("SOKOUL_SECURITY_MIRROR", raising=False)
    (tmp_path / "etc/apt").mkdir(parents=True)
    (tmp_path / "etc/apt/sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://b.invalid/debian/ bookworm main\n"
    )
    m = host_mirrors(tmp_path)
    assert (m.debian, m.security) == ("http://b.invalid/debian", None)
