"""Stage 5: compress, block map, checksums and manifest; published by rename, all at the end."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .runner import Runner


@dataclass(frozen=True)
class OutputNames:
    out_dir: Path
    stem: str  # sokoul-<board>-<version>

    @property
    def image(self) -> Path:
        return self.out_dir / f"{self.stem}.img.zst"

    @property
    def sha256(self) -> Path:
        return self.out_dir / f"{self.stem}.sha256"

    @property
    def bmap(self) -> Path:
        return self.out_dir / f"{self.stem}.bmap"

    @property
    def manifest(self) -> Path:
        return self.out_dir / f"{self.stem}.manifest.json"

    def all(self) -> list[Path]:
        return [self.image, self.bmap, self.manifest, self.sha256]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(4 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def installed_packages(rootfs: Path) -> dict[str, str]:
    """name (with :arch when not the native one) -> version, read from the rootfs' dpkg status."""
    out = subprocess.run(
        [
            "dpkg-query",
            f"--admindir={rootfs / 'var/lib/dpkg'}",
            "-W",
            "-f",
            "${db:Status-Abbrev}\t${Package}\t${Architecture}\t${Version}\n",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    packages: dict[str, str] = {}
    for line in out.splitlines():
        status, name, arch, version = line.split("\t")
        if not status.startswith("ii"):
            continue
        key = name if arch in ("arm64", "all") else f"{name}:{arch}"
        packages[key] = version
    return dict(sorted(packages.items()))


def publish(
    raw_image: Path,
    names: OutputNames,
    manifest: dict[str, Any],
    run: Runner,
    zstd_level: int = 19,
) -> None:
    """Write the four outputs under temporary names in ``raw_image``'s folder, then rename them
    into ``names.out_dir``. A failure before the renames leaves no file under a final name."""
    work = raw_image.parent
    tmp = {p: work / f"{p.name}.partial" for p in names.all()}
    run.say("outputs: block map (bmaptool create)")
    run.run(["bmaptool", "create", "-o", tmp[names.bmap], raw_image], log="outputs")
    run.say(f"outputs: compressing with zstd -{zstd_level} (both cores)")
    run.run(
        [
            "zstd",
            "-q",
            "-f",
            f"-{zstd_level}",
            "-T0",
            "--long=27",
            raw_image,
            "-o",
            tmp[names.image],
        ],
        log="outputs",
    )
    image_sha = file_sha256(tmp[names.image])
    manifest = {
        **manifest,
        "image": {
            "file": names.image.name,
            "sha256": image_sha,
            "compressed_bytes": tmp[names.image].stat().st_size,
            "raw_bytes": raw_image.stat().st_size,
            "raw_sha256": file_sha256(raw_image),
            "bmap": names.bmap.name,
        },
    }
    tmp[names.manifest].write_text(json.dumps(manifest, indent=2) + "\n")
    tmp[names.sha256].write_text(
        f"{image_sha}  {names.image.name}\n"
        f"{file_sha256(tmp[names.bmap])}  {names.bmap.name}\n"
        f"{file_sha256(tmp[names.manifest])}  {names.manifest.name}\n"
    )
    for final in names.all():  # the .sha256 last: its presence means the set is complete
        os.replace(tmp[final], final)
    run.say(f"outputs: {names.image} ({manifest['image']['compressed_bytes'] / 2**20:.0f} MiB)")
