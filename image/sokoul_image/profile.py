"""Board profiles: ``hw/<board>/board.toml``, with single inheritance (``inherit = "other"``)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ProfileError(Exception):
    """A board profile is missing or malformed; the message says which and what to do."""


@dataclass(frozen=True)
class QemuSettings:
    machine: str = "virt"
    cpu: str = "cortex-a76"
    smp: int = 2
    memory_mib: int = 2048
    nics: int = 2
    nvme_drives: int = 2


@dataclass(frozen=True)
class BoardProfile:
    name: str
    description: str
    arch: str
    suite: str
    components: tuple[str, ...]
    cmdline: str
    kernel_package: str
    packages: tuple[str, ...]
    bare_packages: tuple[str, ...] = ()
    vendor_blacklist: tuple[str, ...] = ()
    vendor_modprobe_options: tuple[str, ...] = ()
    qemu: QemuSettings | None = None
    source: Path = field(default=Path("."))


def list_boards(hw_dir: Path) -> list[str]:
    return sorted(p.parent.name for p in hw_dir.glob("*/board.toml"))


def _read(hw_dir: Path, name: str) -> dict[str, Any]:
    path = hw_dir / name / "board.toml"
    if not path.is_file():
        boards = ", ".join(list_boards(hw_dir)) or "(none)"
        raise ProfileError(f"unknown board '{name}'. Boards in {hw_dir}: {boards}")
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{path}: not valid TOML: {e}") from e


def _merged(hw_dir: Path, name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    if name in seen:
        raise ProfileError(f"board profiles inherit in a loop: {' -> '.join((*seen, name))}")
    data = _read(hw_dir, name)
    parent = data.get("inherit")
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ProfileError(f"{hw_dir / name / 'board.toml'}: 'inherit' must be a board name")
    merged = _merged(hw_dir, parent, (*seen, name))
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _str_list(data: dict[str, Any], key: str, path: Path) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ProfileError(f"{path}: '{key}' must be a list of non-empty strings")
    return tuple(value)


def load_profile(hw_dir: Path, name: str) -> BoardProfile:
    data = _merged(hw_dir, name)
    path = hw_dir / name / "board.toml"
    for key in ("description", "arch", "suite", "cmdline", "kernel_package"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ProfileError(f"{path}: '{key}' is required and must be a non-empty string")
    if "root=LABEL=sokoul-root" not in data["cmdline"].split():
        raise ProfileError(f"{path}: cmdline must contain root=LABEL=sokoul-root")
    vendor = data.get("vendor_kernel", {})
    qemu = None
    if isinstance(data.get("qemu"), dict):
        try:
            qemu = QemuSettings(**data["qemu"])
        except TypeError as e:
            raise ProfileError(f"{path}: [qemu]: {e}") from e
    packages = _str_list(data, "packages", path)
    if not packages:
        raise ProfileError(f"{path}: 'packages' must list the rootfs packages")
    return BoardProfile(
        name=name,
        description=data["description"],
        arch=data["arch"],
        suite=data["suite"],
        components=_str_list(data, "components", path) or ("main",),
        cmdline=data["cmdline"],
        kernel_package=data["kernel_package"],
        packages=packages,
        bare_packages=_str_list(data, "bare_packages", path),
        vendor_blacklist=_str_list(vendor, "blacklist", path),
        vendor_modprobe_options=_str_list(vendor, "modprobe_options", path),
        qemu=qemu,
        source=path,
    )
