from __future__ import annotations

from pathlib import Path

import pytest
from sokoul_image.mirror import Mirrors
from sokoul_image.profile import ProfileError, list_boards, load_profile
from sokoul_image.rootfs import RootfsRequest, cache_key, mmdebstrap_argv


def test_boards_in_hw(repo: Path) -> None:
    assert list_boards(repo / "hw") == ["orangepi-6-plus", "qemu-arm64"]


def test_orangepi_profile_has_the_appliance_package_set(repo: Path) -> None:
    p = load_profile(repo / "hw", "orangepi-6-plus")
    assert (p.arch, p.suite, p.kernel_package) == ("arm64", "trixie", "linux-image-arm64")
    for pkg in (
        "systemd-sysv",
        "udev",
        "openssh-server",
        "iproute2",
        "nftables",
        "netplan.io",
        "wireguard-tools",
        "avahi-daemon",
        "ffmpeg",
        "python3",
        "python3-aiohttp",
        "python3-libtorrent",
        "grub-efi-arm64-bin",
        "cloud-guest-utils",
    ):
        assert pkg in p.packages
    assert "root=LABEL=sokoul-root" in p.cmdline.split()
    assert p.vendor_blacklist == ("r8169",)


def test_qemu_board_shares_the_orangepi_rootfs(repo: Path) -> None:
    opi = load_profile(repo / "hw", "orangepi-6-plus")
    vm = load_profile(repo / "hw", "qemu-arm64")
    assert vm.packages == opi.packages and vm.components == opi.components
    assert "console=ttyAMA0,115200" in vm.cmdline.split()
    assert vm.qemu is not None and vm.qemu.nics == 2 and vm.qemu.nvme_drives == 2
    mirrors = Mirrors("http://mirror.invalid/debian", None)
    keys = {
        cache_key(
            RootfsRequest(profile=p, mirrors=mirrors, cache_dir=Path("/c"), source_date_epoch=1)
        )
        for p in (opi, vm)
    }
    assert len(keys) == 1  # one cached base tar serves both boards


def test_unknown_board_lists_the_boards(repo: Path) -> None:
    with pytest.raises(ProfileError) as e:
        load_profile(repo / "hw", "raspberry-pi-5")
    assert "unknown board 'raspberry-pi-5'" in str(e.value)
    assert "orangepi-6-plus, qemu-arm64" in str(e.value)


def test_malformed_profiles_get_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad/board.toml").write_text("name = [unclosed\n")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(tmp_path, "bad")
    (tmp_path / "loop").mkdir()
    (tmp_path / "loop/board.toml").write_text('inherit = "loop"\n')
    with pytest.raises(ProfileError, match="inherit in a loop"):
        load_profile(tmp_path, "loop")
    (tmp_path / "nocmd").mkdir()
    (tmp_path / "nocmd/board.toml").write_text(
        'description="x"\narch="arm64"\nsuite="trixie"\nkernel_package="k"\n'
        'cmdline="root=/dev/sda2"\npackages=["a"]\n'
    )
    with pytest.raises(ProfileError, match="root=LABEL=sokoul-root"):
        load_profile(tmp_path, "nocmd")


def test_mmdebstrap_command(repo: Path, tmp_path: Path) -> None:
    p = load_profile(repo / "hw", "orangepi-6-plus")
    req = RootfsRequest(
        profile=p,
        mirrors=Mirrors("http://m.invalid/debian", "http://m.invalid/debian-security"),
        cache_dir=tmp_path,
        source_date_epoch=1,
    )
    argv = mmdebstrap_argv(req, tmp_path / "x.tar")
    assert argv[:2] == ["mmdebstrap", "--arch=arm64"]
    include = next(a for a in argv if a.startswith("--include="))
    assert "linux-image-arm64" in include.split("=", 1)[1].split(",")
    assert "--components=main,non-free-firmware" in argv
    assert "deb http://m.invalid/debian-security trixie-security main non-free-firmware" in argv
    assert '--aptopt=APT::Install-Recommends "false"' in argv

    deb = tmp_path / "linux-image-6.6-cix_1_arm64.deb"
    deb.write_bytes(b"not really a deb, only hashed")
    vendor = RootfsRequest(
        profile=p, mirrors=req.mirrors, cache_dir=tmp_path, source_date_epoch=1, kernel_deb=deb
    )
    vargv = mmdebstrap_argv(vendor, tmp_path / "x.tar")
    vinclude = next(a for a in vargv if a.startswith("--include="))
    assert "linux-image-arm64" not in vinclude.split("=", 1)[1].split(",")
    hooks = [a for a in vargv if a.startswith("--customize-hook=")]
    assert any(deb.name in h and "apt-get install" in h for h in hooks)
    assert any("blacklist r8169" in h and "options r8126 aspm=0" in h for h in hooks)
    assert cache_key(vendor) != cache_key(req)
