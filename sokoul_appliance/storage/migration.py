"""Moving items between the media and cold tiers without ever losing a file.

One item (a file or a folder such as ``library/Film (2020)``) moves in five steps, each
recorded in SQLite (``storage_migrations``) before the next begins:

1. journal row ``copying``;
2. copy every file into a hidden container next to the destination
   (``library/.sokoul-migrating-<id>/<name>``), hashing the source while reading, then make
   it durable (one syncfs of the destination filesystem per item);
3. verify (in batches of about 64 MiB, in a second thread while the next files are copied):
   syncfs, drop the written pages from the cache and re-read each copy; its sha256 must equal
   the source's (and the source must not have changed meanwhile);
4. atomic rename of the finished copy to its final name, fsync of the directory; row ``placed``
   with the manifest of hashes;
5. delete the source, fsync; row ``done``.

A crash or kill at any point leaves the source intact until step 5, and ``resume()`` finishes
what the journal says was under way: a ``copying`` row starts the copy again (a half-written
container is thrown away; a copy that was already renamed into place is verified against the
source instead), a ``placed`` row only deletes the source. Copies run in a worker thread, one
item at a time, optionally rate-limited so streaming from the same drive keeps its bandwidth.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import json
import logging
import os
import shutil
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import aiosqlite

from sokoul_appliance.host import Host
from sokoul_appliance.storage.mounts import fsync_dir
from sokoul_appliance.storage.placement import check_item
from sokoul_appliance.storage.roles import COLD, MEDIA, MOUNT_POINTS
from sokoul_appliance.store.database import Store

log = logging.getLogger("sokoul.storage.migration")
_T = TypeVar("_T")

TO_COLD = "to_cold"
TO_MEDIA = "to_media"
DIRECTIONS = {TO_COLD: (MEDIA, COLD), TO_MEDIA: (COLD, MEDIA)}
CONTAINER_PREFIX = ".sokoul-migrating-"
VERIFY_BATCH_BYTES = 64 << 20  # one syncfs per batch, then its files are re-read and hashed
# Reads run ahead of the copy: the source is announced to the kernel (POSIX_FADV_WILLNEED) this
# far ahead, and the next few small files of a folder before they are opened, so the drive sees
# many requests at once instead of one readahead window at a time (measured here: a 1 GiB read
# in 0.8-1.0 s instead of 1.1-2.4 s; NVMe drives also do best with deep queues).
READ_AHEAD_BYTES = 64 << 20
PREFETCH_FILES = 16
# Written ranges are handed to writeback at once (sync_file_range WRITE, asynchronous), so the
# disk writes while the next chunks are read and the batch's syncfs finds little left to do.
WRITEBACK_STEP_BYTES = 8 << 20


class MigrationError(Exception):
    """An item could not be moved; its source is untouched. The message is for a person."""


class _Interrupted(Exception):
    pass


@dataclass(frozen=True)
class MigrationOptions:
    chunk_bytes: int = 4 << 20
    rate_limit_bytes_per_s: float | None = None  # None: as fast as the drives go
    verify_from_disk: bool = True  # re-read copies after dropping them from the page cache


@dataclass(frozen=True)
class MigrationResult:
    id: int
    item: str
    direction: str
    size_bytes: int
    files: int


@dataclass
class Progress:
    id: int
    item: str
    direction: str
    size_bytes: int
    copied_bytes: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "item": self.item,
            "direction": self.direction,
            "size_bytes": self.size_bytes,
            "copied_bytes": self.copied_bytes,
        }


def tree_files(root: Path) -> list[tuple[str, int]]:
    """(relative path, size) of every regular file under ``root`` (or root itself), sorted."""
    if root.is_file():
        return [("", root.stat().st_size)]
    if not root.is_dir():
        raise FileNotFoundError(root)
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            st = p.lstat()
            if stat.S_ISREG(st.st_mode):
                out.append((str(p.relative_to(root)), st.st_size))
            elif not stat.S_ISLNK(st.st_mode):
                raise MigrationError(f"{p} is neither a file nor a folder; it was not moved")
    return out


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data) :]


def sha256_file(path: Path, chunk: int = 4 << 20, drop_cache: bool = False) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if drop_cache:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class _Copier:
    """The blocking part (worker thread): copy + hash + fsync + verify + rename + delete."""

    def __init__(
        self,
        options: MigrationOptions,
        stop: threading.Event,
        progress: Callable[[int], None],
    ) -> None:
        self.options = options
        self.stop = stop
        self.progress = progress
        self._budget_start = time.monotonic()
        self._budget_bytes = 0

    def _pace(self, n: int) -> None:
        rate = self.options.rate_limit_bytes_per_s
        self._budget_bytes += n
        if rate:
            ahead = self._budget_bytes / rate - (time.monotonic() - self._budget_start)
            if ahead > 0:
                self.stop.wait(ahead)
        if self.stop.is_set():
            raise _Interrupted

    def copy_file(self, src: Path, dst: Path) -> str:
        """Copy one file, hashing what was read (made durable later, with its batch).

        Reading, hashing and writing stay in this one thread: handing chunks to a writer
        thread was measured slower (GIL and wake-up latency per chunk on a busy machine)."""
        h = hashlib.sha256()
        buf = bytearray(self.options.chunk_bytes)
        before = src.stat()
        with open(src, "rb", buffering=0) as fin, open(dst, "xb", buffering=0) as fout:
            rfd, wfd = fin.fileno(), fout.fileno()
            os.posix_fadvise(rfd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            pos = ahead = flushed = 0
            while True:
                if ahead - pos < READ_AHEAD_BYTES // 2 and ahead < before.st_size:
                    end = min(before.st_size, pos + READ_AHEAD_BYTES)
                    os.posix_fadvise(rfd, ahead, end - ahead, os.POSIX_FADV_WILLNEED)
                    ahead = end
                n = fin.readinto(buf)
                if not n:
                    break
                view = memoryview(buf)[:n]
                h.update(view)
                _write_all(wfd, view)
                pos += n
                if pos - flushed >= WRITEBACK_STEP_BYTES:
                    start_writeback(wfd, flushed, pos - flushed)
                    # what was read is not needed again: leave the page cache to what
                    # the household is watching
                    os.posix_fadvise(rfd, flushed, pos - flushed, os.POSIX_FADV_DONTNEED)
                    flushed = pos
                self.progress(n)
                self._pace(n)
            if pos > flushed:
                start_writeback(wfd, flushed, pos - flushed)
        after = src.stat()
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
            raise MigrationError(f"{src} changed while it was copied; it will be tried later")
        shutil.copystat(src, dst)
        return h.hexdigest()

    def copy_tree(self, src: Path, container: Path) -> dict[str, str]:
        """Copy src (file or folder) to container/<src.name>, durable and verified; return
        {relative file: sha256}."""
        with ThreadPoolExecutor(1, "migrate-verify") as verifier:
            manifest, checks = self.start_copy(src, container, verifier)
            try:
                for check in checks:
                    check.result()
            except BaseException:
                self.stop.set()
                raise
        if not self.options.verify_from_disk:
            durable(container)
        return manifest

    def start_copy(
        self, src: Path, container: Path, verifier: ThreadPoolExecutor
    ) -> tuple[dict[str, str], list[Future[None]]]:
        """Copy src to container/<src.name>; return the manifest and the verifications still
        running in ``verifier`` (the caller waits for them before the rename).

        Copies are verified in batches (about 64 MiB) in the verifier thread while the next
        files (or the next item) are copied: one syncfs makes the batch durable, then each file
        is dropped from the page cache, re-read from the disk and its sha256 compared with the
        source's. The last batch's syncfs also covers the folders and their times."""
        if container.exists():
            shutil.rmtree(container)  # a half-written copy from an interrupted run
        container.mkdir(parents=True)
        target = container / src.name
        manifest: dict[str, str] = {}
        batch: list[tuple[Path, str]] = []
        batch_bytes = 0
        checks: list[Future[None]] = []

        def copy(s: Path, d: Path, rel: str) -> None:
            nonlocal batch, batch_bytes
            digest = self.copy_file(s, d)
            manifest[rel] = digest
            batch.append((d, digest))
            batch_bytes += d.stat().st_size
            if batch_bytes >= VERIFY_BATCH_BYTES:
                checks.append(verifier.submit(self.verify_batch, batch, container))
                batch, batch_bytes = [], 0

        try:
            if src.is_file():
                copy(src, target, "")
            else:
                for dirpath, dirnames, filenames in os.walk(src):
                    dirnames.sort()
                    rel_dir = Path(dirpath).relative_to(src)
                    out_dir = target / rel_dir
                    out_dir.mkdir(exist_ok=True)
                    names = sorted(filenames)
                    for i, name in enumerate(names):
                        s = Path(dirpath) / name
                        if s.is_symlink():
                            os.symlink(os.readlink(s), out_dir / name)
                            continue
                        if i % PREFETCH_FILES == 0:
                            prefetch(Path(dirpath), names[i + 1 : i + 1 + PREFETCH_FILES])
                        copy(s, out_dir / name, str(rel_dir / name))
                for dirpath, _, _ in os.walk(target, topdown=False):
                    shutil.copystat(src / Path(dirpath).relative_to(target), dirpath)
        except BaseException:
            self.stop.set()  # verifications of this item end early
            for check in checks:
                with contextlib.suppress(BaseException):
                    check.result()
            raise
        checks.append(verifier.submit(self.verify_batch, batch, container))
        return manifest, checks

    def verify_batch(self, files: list[tuple[Path, str]], container: Path) -> None:
        if self.options.verify_from_disk:
            durable(container)
        for path, digest in files:
            self.verify_file(path, digest)

    def verify_file(self, path: Path, digest: str) -> None:
        with open(path, "rb", buffering=0) as f:
            if self.options.verify_from_disk:
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            h = hashlib.sha256()
            buf = bytearray(self.options.chunk_bytes)
            while n := f.readinto(buf):
                h.update(memoryview(buf)[:n])
                if self.stop.is_set():
                    raise _Interrupted
        got = h.hexdigest()
        if got != digest:
            raise MigrationError(
                f"the copy of {path.name} reads back different bytes (sha256 {got[:12]}… "
                f"instead of {digest[:12]}…): the destination drive may be failing; "
                "the original is kept"
            )

    @staticmethod
    def place(container: Path, final: Path) -> None:
        if final.exists() or final.is_symlink():
            raise MigrationError(f"{final} already exists on the destination; nothing was moved")
        os.rename(container / final.name, final)
        container.rmdir()
        fsync_dir(final.parent)  # one directory sync makes both the rename and the rmdir durable

    @staticmethod
    def delete(src: Path) -> None:
        if src.is_dir() and not src.is_symlink():
            shutil.rmtree(src)
        elif src.exists() or src.is_symlink():
            src.unlink()
        fsync_dir(src.parent)


_libc: ctypes.CDLL | None = None
SYNC_FILE_RANGE_WRITE = 2


def _c() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing [offset, offset+length) of ``fd`` to the disk without waiting
    (sync_file_range(2) SYNC_FILE_RANGE_WRITE). Not a durability point (syncfs is): a hint
    that spreads the disk writes over the copy. Silently nothing where libc lacks it."""
    fn = getattr(_c(), "sync_file_range", None)
    if fn is not None:
        fn(
            ctypes.c_int(fd),
            ctypes.c_int64(offset),
            ctypes.c_int64(length),
            ctypes.c_uint(SYNC_FILE_RANGE_WRITE),
        )


def prefetch(folder: Path, names: list[str]) -> None:
    """Ask the kernel to start reading the next small files of a folder (POSIX_FADV_WILLNEED)
    so their reads queue up behind the current one."""
    for name in names:
        try:
            fd = os.open(folder / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue  # a symlink or a vanished file: the copy itself reports what matters
        try:
            os.posix_fadvise(fd, 0, READ_AHEAD_BYTES, os.POSIX_FADV_WILLNEED)
        finally:
            os.close(fd)


def sync_filesystem(path: Path) -> bool:
    """syncfs(2) of the filesystem holding directory ``path``; False where libc lacks it."""
    syncfs = getattr(_c(), "syncfs", None)
    if syncfs is None:
        return False
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)
    return True


def durable(path: Path) -> None:
    """Make everything written under ``path`` durable: one syncfs(2) of its filesystem (data,
    inodes, directories; since Linux 5.8 it also reports writeback errors), which costs one
    journal commit per item instead of one per file. Falls back to fsync of every file and
    folder where syncfs is not available."""
    if sync_filesystem(path):
        return
    for dirpath, _, filenames in os.walk(path, topdown=False):
        for name in filenames:
            if (Path(dirpath) / name).is_symlink():
                continue
            fd = os.open(Path(dirpath) / name, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def hash_tree(target: Path) -> dict[str, str]:
    if target.is_file():
        return {"": sha256_file(target)}
    return {rel: sha256_file(target / rel) for rel, _ in tree_files(target)}


class Migrator:
    """Moves items between tiers, one at a time, journaled in SQLite."""

    def __init__(
        self,
        host: Host,
        store: Store,
        options: MigrationOptions | None = None,
        on_moved: Callable[[MigrationResult], None] | None = None,
    ) -> None:
        self._host = host
        self._store = store
        self.options = options or MigrationOptions()
        self._on_moved = on_moved
        self._lock = asyncio.Lock()
        self._db_lock = asyncio.Lock()
        self.current: Progress | None = None

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """The store's transaction, one at a time: while one item is being placed the next one
        is being started, and both write the journal over the same connection."""
        async with self._db_lock, self._store.transaction() as db:
            yield db

    def _paths(self, item: str, direction: str, row_id: int) -> tuple[Path, Path, Path]:
        rel = check_item(item)
        src_role, dst_role = DIRECTIONS[direction]
        src = self._host.path(f"{MOUNT_POINTS[src_role]}/{rel}")
        final = self._host.path(f"{MOUNT_POINTS[dst_role]}/{rel}")
        container = final.parent / f"{CONTAINER_PREFIX}{row_id}"
        return src, final, container

    async def _run_blocking(self, fn: Callable[[threading.Event], _T]) -> _T:
        """Run fn in a thread; on cancellation, ask it to stop and wait for it to finish (a copy
        is never left running behind our back), then re-raise."""
        stop = threading.Event()
        task = asyncio.ensure_future(asyncio.to_thread(fn, stop))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            stop.set()
            with contextlib.suppress(BaseException):
                await task
            raise

    async def move(self, item: str, direction: str) -> MigrationResult:
        """Move one item (relative to the tier root) in ``direction``; raise MigrationError
        (source untouched) when it cannot."""
        results, errors = await self.move_many([item], direction)
        if errors:
            raise errors[0]
        return results[0]

    async def move_many(
        self, items: list[str], direction: str
    ) -> tuple[list[MigrationResult], list[MigrationError]]:
        """Move items one after the other, copying the next while the previous one is still
        being verified, renamed and deleted. An item that cannot move keeps its source and is
        reported in the second list; the others carry on."""
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}")
        for item in items:
            check_item(item)
        results: list[MigrationResult] = []
        errors: list[MigrationError] = []
        async with self._lock:
            with ThreadPoolExecutor(1, "migrate-verify") as verifier:
                pending: asyncio.Task[MigrationResult] | None = None
                stops: list[threading.Event] = []
                try:
                    for item in items:
                        try:
                            row_id, size = await self._begin(item, direction)
                            started = await self._start_item(
                                row_id, item, direction, size, verifier, stops
                            )
                        except MigrationError as e:
                            log.error("%s", e)
                            errors.append(e)
                            continue
                        if pending is not None:
                            await _collect(pending, results, errors)
                        pending = asyncio.create_task(self._finish_item(*started))
                    if pending is not None:
                        await _collect(pending, results, errors)
                        pending = None
                except BaseException:
                    for stop in stops:
                        stop.set()
                    if pending is not None:
                        pending.cancel()
                        with contextlib.suppress(BaseException):
                            await pending
                    raise
        return results, errors

    async def _begin(self, item: str, direction: str) -> tuple[int, int]:
        src_role, dst_role = DIRECTIONS[direction]
        src0 = self._host.path(f"{MOUNT_POINTS[src_role]}/{item}")
        dst0 = self._host.path(f"{MOUNT_POINTS[dst_role]}/{item}")
        try:
            files = await asyncio.to_thread(tree_files, src0)
        except FileNotFoundError as e:
            raise MigrationError(f"{item} is not on the {src_role} drive") from e
        if await asyncio.to_thread(dst0.exists):
            raise MigrationError(f"{item} already exists on the {dst_role} drive")
        size = sum(s for _, s in files)
        async with self._transaction() as db:
            cur = await db.execute(
                "INSERT INTO storage_migrations(item, direction, state, size_bytes, "
                "started_at) VALUES (?, ?, 'copying', ?, ?)",
                (item, direction, size, time.time()),
            )
            return int(cur.lastrowid or 0), size

    async def _start_item(
        self,
        row_id: int,
        item: str,
        direction: str,
        size: int,
        verifier: ThreadPoolExecutor,
        stops: list[threading.Event],
    ) -> tuple[int, str, str, int, dict[str, str], list[Future[None]]]:
        """Copy phase of one item (its verification keeps running in ``verifier``)."""
        src, _final, container = self._paths(item, direction, row_id)
        progress = self.current = Progress(row_id, item, direction, size)

        def advance(n: int) -> None:
            progress.copied_bytes += n

        def work(stop: threading.Event) -> tuple[dict[str, str], list[Future[None]]]:
            stops.append(stop)
            return _Copier(self.options, stop, advance).start_copy(src, container, verifier)

        try:
            out = await self._run_blocking(work)
        except (MigrationError, OSError) as e:
            msg = _failure_text(item, e)
            await self._fail(row_id, container, msg)
            raise MigrationError(msg) from e
        finally:
            self.current = None
        manifest, checks = out
        return row_id, item, direction, size, manifest, checks

    async def _finish_item(
        self,
        row_id: int,
        item: str,
        direction: str,
        size: int,
        manifest: dict[str, str],
        checks: list[Future[None]],
    ) -> MigrationResult:
        """Wait for the verification, rename into place, journal, delete the source."""
        src, final, container = self._paths(item, direction, row_id)
        verify_from_disk = self.options.verify_from_disk

        def place(_stop: threading.Event) -> None:
            if not verify_from_disk:
                durable(container)
            _Copier.place(container, final)

        try:
            for check in checks:
                await asyncio.wrap_future(check)
            await self._run_blocking(place)
            async with self._transaction() as db:
                await db.execute(
                    "UPDATE storage_migrations SET state='placed', manifest=?, copied_bytes=? "
                    "WHERE id=?",
                    (json.dumps(manifest), size, row_id),
                )
            await self._settle(row_id, item, direction, src)
        except (MigrationError, OSError) as e:
            msg = _failure_text(item, e)
            await self._fail(row_id, container, msg)
            raise MigrationError(msg) from e
        return self._report(MigrationResult(row_id, item, direction, size, len(manifest)))

    async def _settle(self, row_id: int, item: str, direction: str, src: Path) -> None:
        """The copy is in place and journaled: delete the source, mark the move done."""
        await self._run_blocking(lambda _stop: _Copier.delete(src))
        async with self._transaction() as db:
            await db.execute(
                "UPDATE storage_migrations SET state='done', finished_at=? WHERE id=?",
                (time.time(), row_id),
            )
            await db.execute(
                "INSERT INTO storage_items(item, tier) VALUES (?, ?) "
                "ON CONFLICT(item) DO UPDATE SET tier=excluded.tier",
                (item, DIRECTIONS[direction][1]),
            )

    def _report(self, result: MigrationResult) -> MigrationResult:
        if self._on_moved is not None:
            self._on_moved(result)
        return result

    async def resume(self) -> list[MigrationResult]:
        """Finish every migration the journal shows under way (after a crash or stop)."""
        rows = await self._store.fetchall(
            "SELECT id, item, direction, state, size_bytes FROM storage_migrations "
            "WHERE state IN ('copying', 'placed') ORDER BY id"
        )
        done = []
        for row in rows:
            async with self._lock:
                try:
                    done.append(
                        await self._carry_on(
                            row["id"],
                            row["item"],
                            row["direction"],
                            row["size_bytes"],
                            row["state"],
                        )
                    )
                except MigrationError as e:
                    log.error("resuming migration of %s failed: %s", row["item"], e)
        return done

    async def _carry_on(
        self, row_id: int, item: str, direction: str, size: int, state: str
    ) -> MigrationResult:
        src, final, container = self._paths(item, direction, row_id)
        self.current = Progress(row_id, item, direction, size)
        progress = self.current

        def advance(n: int) -> None:
            progress.copied_bytes += n  # an int add: safe enough for a progress figure

        try:
            if state == "copying":
                manifest = await self._copy_phase(src, final, container, advance)
                async with self._transaction() as db:
                    await db.execute(
                        "UPDATE storage_migrations SET state='placed', manifest=?, "
                        "copied_bytes=? WHERE id=?",
                        (json.dumps(manifest), size, row_id),
                    )
            else:
                manifest = json.loads(
                    await self._store.scalar(
                        "SELECT manifest FROM storage_migrations WHERE id=?", (row_id,)
                    )
                    or "{}"
                )
            await self._settle(row_id, item, direction, src)
        except (MigrationError, OSError) as e:
            msg = _failure_text(item, e)
            await self._fail(row_id, container, msg)
            raise MigrationError(msg) from e
        finally:
            self.current = None
        return self._report(MigrationResult(row_id, item, direction, size, len(manifest)))

    async def _copy_phase(
        self, src: Path, final: Path, container: Path, advance: Callable[[int], None]
    ) -> dict[str, str]:
        def work(stop: threading.Event) -> dict[str, str]:
            copier = _Copier(self.options, stop, advance)
            if not src.exists() and not src.is_symlink():
                if final.exists():
                    raise MigrationError(f"{src} is gone but {final} exists: check it by hand")
                raise MigrationError(f"{src} is gone; nothing to move")
            if final.exists() and not container.exists():
                # killed after the rename, before the journal said so: the copy is in place
                source = hash_tree(src)
                if hash_tree(final) != source:
                    raise MigrationError(f"{final} exists and differs from {src}; both kept")
                return source
            try:
                manifest = copier.copy_tree(src, container)
                copier.place(container, final)
            except _Interrupted:
                raise
            except BaseException:
                with contextlib.suppress(OSError):
                    shutil.rmtree(container)
                raise
            return manifest

        try:
            result = await self._run_blocking(work)
        except _Interrupted:
            raise asyncio.CancelledError from None
        return result

    async def _fail(self, row_id: int, container: Path, error: str) -> None:
        await asyncio.to_thread(shutil.rmtree, container, True)
        async with self._transaction() as db:
            await db.execute(
                "UPDATE storage_migrations SET state='failed', error=?, finished_at=? WHERE id=?",
                (error, time.time(), row_id),
            )


def _failure_text(item: str, e: BaseException) -> str:
    if isinstance(e, MigrationError):
        return str(e)
    if isinstance(e, OSError):
        return f"moving {item} failed: {e.strerror or e} ({e.filename or ''}); kept the original"
    return f"moving {item} failed: {e}; kept the original"


async def _collect(
    task: asyncio.Task[MigrationResult],
    results: list[MigrationResult],
    errors: list[MigrationError],
) -> None:
    try:
        results.append(await task)
    except MigrationError as e:
        log.error("%s", e)
        errors.append(e)
