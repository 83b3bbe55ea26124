"""inotify on the library folders (Linux, through libc with ctypes): a change anywhere asks for
a rescan a moment later (debounced: a copy writes many events, one scan follows).

Optional by design: where inotify is missing or its watch limit is reached
(fs.inotify.max_user_watches), the periodic rescan still finds everything, only later.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger("sokoul.library.watch")

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
MASK = (
    IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF
    | IN_MOVE_SELF | IN_ATTRIB | IN_ONLYDIR
)  # fmt: skip


class DirectoryWatcher:
    def __init__(self, on_change: Callable[[], None], debounce: float = 2.0) -> None:
        self._on_change = on_change
        self.debounce = debounce
        self._fd: int | None = None
        self._libc: ctypes.CDLL | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.watches = 0
        self.problem: str | None = None  # why watching stopped (shown in the snapshot)

    def start(self) -> bool:
        """Open inotify (call on the loop); False when this system has none."""
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name, use_errno=True)
            fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        except (OSError, AttributeError) as e:
            self.problem = f"no inotify here ({e}); the library is rescanned periodically"
            return False
        if fd < 0:
            err = ctypes.get_errno()
            self.problem = f"inotify unavailable ({os.strerror(err)}); periodic rescans only"
            return False
        self._libc, self._fd = libc, fd
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._readable)
        return True

    def watch(self, folders: Iterable[Path]) -> None:
        """Watch these folders (already watched ones cost one syscall). Blocking when given a
        walk: call from a worker thread."""
        if self._fd is None or self._libc is None or self.problem:
            return
        count = 0
        for folder in folders:
            wd = self._libc.inotify_add_watch(self._fd, os.fsencode(folder), MASK)
            if wd < 0:
                err = ctypes.get_errno()
                if err == 28:  # ENOSPC: the watch limit
                    self.problem = (
                        "the inotify watch limit is reached (fs.inotify.max_user_watches); "
                        "new files show up at the next periodic rescan"
                    )
                    log.warning(self.problem)
                    return
                continue  # a folder that vanished meanwhile
            count += 1
        self.watches = count

    def _readable(self) -> None:
        assert self._fd is not None
        try:
            while os.read(self._fd, 64 * 1024):
                pass
        except BlockingIOError:
            pass
        if self._loop is not None:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_later(self.debounce, self._on_change)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._fd is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None


def folders_under(roots: Iterable[Path]) -> list[Path]:
    """Every folder under the roots (hidden ones skipped). Blocking."""
    out = []
    for root in roots:
        stack = [root]
        while stack:
            folder = stack.pop()
            out.append(folder)
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for e in entries:
                if not e.name.startswith(".") and e.is_dir(follow_symlinks=False):
                    stack.append(Path(e.path))
    return out
