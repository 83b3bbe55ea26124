"""Resume files: one ``<info-hash>.resume`` per torrent in the state dir, written atomically
(temp file + fsync + rename + fsync of the directory): a kill -9 or power cut leaves either the
old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class ResumeStore:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob(".*.tmp"):
            stale.unlink(missing_ok=True)

    def path(self, tid: str) -> Path:
        return self.dir / f"{tid}.resume"

    def save(self, tid: str, data: bytes) -> None:
        write_atomic(self.path(tid), data)

    def delete(self, tid: str) -> None:
        self.path(tid).unlink(missing_ok=True)

    def load_all(self) -> list[tuple[str, bytes]]:
        return [(p.stem, p.read_bytes()) for p in sorted(self.dir.glob("*.resume"))]

    def set_aside(self, tid: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.path(tid), self.dir / f"{tid}.resume.bad")
