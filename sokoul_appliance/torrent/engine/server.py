"""The engine's asyncio side: the Unix-socket server, request handlers, resume checkpoints and
streams. libtorrent runs in its own threads; alerts arrive from ``AlertPump`` through
``call_soon_threadsafe``; nothing here polls libtorrent for alerts."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import shutil
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sokoul_appliance.torrent import protocol
from sokoul_appliance.torrent.engine.lt_session import (
    EngineAlert,
    LtSession,
    TorrentInputError,
    params_paused,
)
from sokoul_appliance.torrent.engine.resume import ResumeStore
from sokoul_appliance.torrent.protocol import ProtocolError, Request
from sokoul_appliance.torrent.window import (
    FileSpan,
    buffered_ahead,
    plan_window,
    startup_pieces,
)

log = logging.getLogger("sokoul.torrent.engine")

MAX_TORRENT_FILE = 16 * 1024 * 1024
MAX_READ = 8 * 1024 * 1024
URL_TIMEOUT = 20.0


@dataclass
class StreamState:
    span: FileSpan
    path: Path
    startup: list[int]
    cursor: int = 0
    bitrate: int = 0  # bytes/s if the caller knows it (for buffer seconds), else 0
    opened: float = field(default_factory=time.monotonic)
    first_byte_s: float | None = None


class Engine:
    def __init__(
        self,
        session: LtSession,
        resume: ResumeStore,
        downloads: Path,
        resume_interval: float = 60.0,
        resume_batch: int = 32,
    ) -> None:
        self.session = session
        self.resume = resume
        self.downloads = downloads
        self.resume_interval = resume_interval
        self.resume_batch = resume_batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Event()
        # (torrent, piece) -> reads waiting for libtorrent's read_piece answer
        self._piece_reads: dict[tuple[str, int], list[asyncio.Future[bytes]]] = {}
        self._since_save: dict[str, int] = {}
        self._pending_saves: dict[str, int] = {}
        self._saved = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._errors: dict[str, str] = {}
        self._streams: dict[tuple[str, int], StreamState] = {}
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- alerts (called in the loop thread) ---------------------------------------------
    def deliver(self, alerts: list[EngineAlert]) -> None:
        """From the alert thread: hop onto the loop."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_alerts, alerts)

    def _on_alerts(self, alerts: list[EngineAlert]) -> None:
        pieces = False
        for a in alerts:
            if a.kind == "piece_finished" and a.torrent:
                pieces = True
                n = self._since_save.get(a.torrent, 0) + 1
                self._since_save[a.torrent] = n
                if n >= self.resume_batch:
                    self._request_save(a.torrent, only_if_modified=False)
            elif a.kind in ("piece_data", "piece_read_failed") and a.torrent:
                for fut in self._piece_reads.pop((a.torrent, a.piece), []):
                    if fut.done():
                        continue
                    if a.kind == "piece_data":
                        fut.set_result(a.data)
                    else:
                        fut.set_exception(OSError(f"reading piece {a.piece}: {a.message}"))
            elif a.kind == "resume_data" and a.torrent:
                self._spawn(self._write_resume(a.torrent, a.data))
            elif a.kind == "resume_failed" and a.torrent:
                self._done_save(a.torrent)
            elif a.kind == "finished" and a.torrent:
                self._request_save(a.torrent, only_if_modified=False)
                self._publish({"event": "finished", "torrent": a.torrent})
            elif a.kind == "error":
                if a.torrent:
                    self._errors[a.torrent] = a.message
                log.warning("libtorrent: %s", a.message)
                self._publish({"event": "error", "torrent": a.torrent, "message": a.message})
            elif a.kind == "checked" and a.torrent:
                self._request_save(a.torrent, only_if_modified=False)
            elif a.kind == "metadata" and a.torrent:
                self._fetch_startup_first(a.torrent)
                self._request_save(a.torrent, only_if_modified=False)
                self._publish({"event": "metadata", "torrent": a.torrent})
            elif a.kind in ("listening", "listen_failed"):
                log.info("%s", a.message)
        if pieces:
            self._changed.set()
            self._changed = asyncio.Event()

    def _spawn(self, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    def _request_save(self, tid: str, only_if_modified: bool) -> None:
        try:
            if self.session.request_resume_data(tid, only_if_modified):
                self._pending_saves[tid] = self._pending_saves.get(tid, 0) + 1
                self._since_save[tid] = 0
        except KeyError:
            pass

    def _done_save(self, tid: str) -> None:
        n = self._pending_saves.get(tid, 0) - 1
        if n <= 0:
            self._pending_saves.pop(tid, None)
        else:
            self._pending_saves[tid] = n
        self._saved.set()
        self._saved = asyncio.Event()

    async def _write_resume(self, tid: str, data: bytes) -> None:
        try:
            async with self._write_lock:  # remove() deletes under the same lock
                if self.session.has(tid):
                    await asyncio.to_thread(self.resume.save, tid, data)
        except OSError as e:
            log.error("could not save resume data of %s: %s", tid, e)
        finally:
            self._done_save(tid)

    async def save_all(self, timeout: float = 15.0, only_if_modified: bool = False) -> int:
        """Ask for every torrent's resume data and wait until written (or timeout)."""
        for tid in self.session.ids():
            self._request_save(tid, only_if_modified)
        asked = len(self._pending_saves)
        deadline = time.monotonic() + timeout
        while self._pending_saves and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._saved.wait(), deadline - time.monotonic())
        return asked

    async def _checkpoints(self) -> None:
        while True:
            await asyncio.sleep(self.resume_interval)
            await self.save_all(only_if_modified=True)

    # -- start / stop -------------------------------------------------------------------
    def load_resume(self) -> int:
        n = 0
        for tid, data in self.resume.load_all():
            try:
                atp = self.session.params_from_resume(data)
                self.session.add(atp, str(self.downloads), paused=params_paused(atp))
                n += 1
            except TorrentInputError as e:
                log.error("resume file of %s set aside: %s", tid, e)
                self.resume.set_aside(tid)
        return n

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Call before the alert thread starts, so no early alert is dropped."""
        self._loop = loop

    async def serve(self, socket_path: Path) -> None:
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._saved = asyncio.Event()
        self._write_lock = asyncio.Lock()
        # self._stop is kept from __init__: a stop asked before serve() (SIGTERM during the
        # start-up, or the supervisor already gone when --exit-with-parent was checked) must
        # end the engine, not be lost with a fresh Event (that left orphan engines running)
        loaded = self.load_resume()
        log.info("fast resume: %d torrent(s)", loaded)
        socket_path.unlink(missing_ok=True)
        server = await asyncio.start_unix_server(
            self._connection, path=str(socket_path), limit=protocol.MAX_LINE
        )
        os.chmod(socket_path, 0o660)
        checkpoints = asyncio.create_task(self._checkpoints())
        try:
            await self._stop.wait()
        finally:
            checkpoints.cancel()
            server.close()
            await self.save_all()
            self.session.pause_session()
            with contextlib.suppress(FileNotFoundError):
                socket_path.unlink()

    def request_stop(self) -> None:
        self._stop.set()

    # -- connections --------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lock = asyncio.Lock()
        queue: asyncio.Queue[dict[str, Any]] | None = None
        pusher: asyncio.Task[None] | None = None
        tasks: set[asyncio.Task[None]] = set()

        async def send(msg: dict[str, Any]) -> None:
            async with lock:
                writer.write(protocol.encode(msg))
                await writer.drain()

        async def handle(obj: dict[str, Any]) -> None:
            rid = obj.get("id") if isinstance(obj.get("id"), int) else None
            try:
                req = protocol.parse_request(obj)
                result = await self.dispatch(req)
                await send(protocol.reply_ok(req.id, result))
            except (ProtocolError, TorrentInputError) as e:
                await send(protocol.reply_error(rid, str(e)))
            except KeyError as e:
                await send(protocol.reply_error(rid, f"No torrent {e.args[0]!r} in the engine."))
            except TimeoutError as e:
                await send(protocol.reply_error(rid, str(e) or "timed out", code="timeout"))
            except OSError as e:
                await send(protocol.reply_error(rid, f"{e.strerror or e} ({e.filename or ''})"))
            except (RuntimeError, ValueError, TypeError) as e:
                log.exception("request %r failed", obj.get("op"))
                await send(protocol.reply_error(rid, f"The engine could not do that: {e}"))

        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:
                    await send(protocol.reply_error(None, "message too long"))
                    break
                if not line:
                    break
                try:
                    obj = protocol.decode(line)
                except ProtocolError as e:
                    await send(protocol.reply_error(None, str(e)))
                    continue
                if obj.get("op") == "subscribe" and queue is None:
                    queue = asyncio.Queue(256)
                    self._subscribers.add(queue)
                    interval = obj.get("interval", 1.0)
                    if not isinstance(interval, int | float) or interval <= 0:
                        interval = 1.0
                    pusher = asyncio.create_task(self._push(queue, send, float(interval)))
                    if isinstance(obj.get("id"), int):
                        await send(protocol.reply_ok(obj["id"], {"subscribed": True}))
                    continue
                t = asyncio.create_task(handle(obj))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            if queue is not None:
                self._subscribers.discard(queue)
            if pusher is not None:
                pusher.cancel()
            for t in list(tasks):
                t.cancel()
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _push(self, queue: asyncio.Queue[dict[str, Any]], send: Any, interval: float) -> None:
        next_status = 0.0
        try:
            while True:
                now = time.monotonic()
                if now >= next_status:
                    await send({"event": "status", "torrents": self.status_all()})
                    next_status = now + interval
                with contextlib.suppress(TimeoutError):
                    msg = await asyncio.wait_for(queue.get(), next_status - time.monotonic())
                    await send(msg)
        except (ConnectionError, RuntimeError):
            return

    def _publish(self, msg: dict[str, Any]) -> None:
        for q in list(self._subscribers):
            if q.full():
                q.get_nowait()
            q.put_nowait(msg)

    # -- requests -----------------------------------------------------------------------
    async def dispatch(self, req: Request) -> Any:
        handler = getattr(self, f"op_{req.op}", None)
        if handler is None:
            raise ProtocolError(f"op {req.op!r} is not handled here")
        return await handler(req)

    async def op_ping(self, req: Request) -> Any:
        return {"pid": os.getpid(), "listen_port": self.session.listen_port()}

    async def op_add(self, req: Request) -> Any:
        save_path = Path(req.args.get("save_path") or self.downloads)
        given = [k for k in ("magnet", "torrent", "url") if k in req.args]
        if len(given) != 1:
            raise ProtocolError("add: give exactly one of 'magnet', 'torrent' (base64), 'url'")
        if given[0] == "magnet":
            atp = self.session.params_from_magnet(req.str_arg("magnet"))
        elif given[0] == "torrent":
            try:
                data = base64.b64decode(req.str_arg("torrent"), validate=True)
            except ValueError:
                raise TorrentInputError("The .torrent data is not valid base64.") from None
            atp = self.session.params_from_torrent(data)
        else:
            data = await asyncio.to_thread(_fetch, req.str_arg("url"))
            atp = self.session.params_from_torrent(data)
        tid = self.session.params_id(atp)
        if self.session.has(tid):
            return {"torrent": tid, "existing": True}
        if not save_path.is_absolute() or not save_path.is_dir():
            raise TorrentInputError(
                f"The downloads folder {save_path} does not exist: the media drive may not be "
                "mounted. Check the Storage page, then add the torrent again."
            )
        size = self.session.params_size(atp)
        free = shutil.disk_usage(save_path).free
        if size > free:
            raise TorrentInputError(
                f"Not enough space for this torrent: it needs {_mb(size)}, the downloads drive "
                f"has {_mb(free)} free. Free some space (or remove finished downloads) and retry."
            )
        tid = self.session.add(atp, str(save_path), paused=req.bool_arg("paused"))
        self._fetch_startup_first(tid)
        async with self._write_lock:
            await asyncio.to_thread(self.resume.save, tid, self.session.params_bytes(atp))
        self._request_save(tid, only_if_modified=False)
        for peer in req.args.get("peers", []):
            self._connect(tid, peer)
        return {"torrent": tid, "existing": False}

    def _connect(self, tid: str, peer: Any) -> None:
        if not isinstance(peer, str) or ":" not in peer:
            raise ProtocolError("a peer is 'HOST:PORT'")
        host, _, port = peer.rpartition(":")
        if not port.isdigit():
            raise ProtocolError("a peer is 'HOST:PORT'")
        self.session.connect_peer(tid, host.strip("[]"), int(port))

    async def op_connect(self, req: Request) -> Any:
        tid = req.str_arg("torrent")
        self._connect(tid, req.args.get("peer"))
        return None

    async def op_pause(self, req: Request) -> Any:
        tids = self.session.ids() if req.args.get("torrent") == "*" else [req.str_arg("torrent")]
        for tid in tids:
            self.session.pause(tid)
            self._request_save(tid, only_if_modified=False)
        return {"paused": tids}

    async def op_resume(self, req: Request) -> Any:
        tids = self.session.ids() if req.args.get("torrent") == "*" else [req.str_arg("torrent")]
        for tid in tids:
            self.session.resume(tid)
            self._errors.pop(tid, None)
        return {"resumed": tids}

    async def op_remove(self, req: Request) -> Any:
        tid = req.str_arg("torrent")
        self.session.remove(tid, req.bool_arg("delete_files"))
        self._pending_saves.pop(tid, None)
        async with self._write_lock:
            self.resume.delete(tid)
        self._errors.pop(tid, None)
        for key in [k for k in self._streams if k[0] == tid]:
            del self._streams[key]
        return {"removed": tid}

    async def op_limits(self, req: Request) -> Any:
        changes = {}
        for k in ("download_limit", "upload_limit"):
            if k in req.args:
                changes[k] = req.int_arg(k)
        self.session.apply(changes)
        return self.session.settings()

    async def op_settings(self, req: Request) -> Any:
        changes: dict[str, Any] = {}
        if "listen_port" in req.args:
            changes["listen_port"] = req.int_arg("listen_port")
            changes["listen_interface"] = req.args.get("listen_interface", "0.0.0.0")
        for k in ("dht", "lsd", "upnp", "natpmp", "paused"):
            if k in req.args:
                changes[k] = req.bool_arg(k)
        for k in ("download_limit", "upload_limit"):
            if k in req.args:
                changes[k] = req.int_arg(k)
        for k in ("active_downloads", "active_seeds"):
            if k in req.args:
                changes[k] = req.int_arg(k, minimum=-1)
        if changes:
            self.session.apply(changes)
        return self.session.settings()

    async def op_torrent_limits(self, req: Request) -> Any:
        self.session.set_torrent_limits(
            req.str_arg("torrent"), req.int_arg("download_limit", 0), req.int_arg("upload_limit", 0)
        )
        return None

    async def op_file_priorities(self, req: Request) -> Any:
        prios = req.args.get("priorities")
        if not isinstance(prios, list) or not all(
            isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= 7 for p in prios
        ):
            raise ProtocolError("file_priorities: 'priorities' is a list of integers 0..7")
        self.session.set_file_priorities(req.str_arg("torrent"), prios)
        return None

    async def op_files(self, req: Request) -> Any:
        return [asdict(f) for f in self.session.files(req.str_arg("torrent"))]

    async def op_status(self, req: Request) -> Any:
        if "torrent" in req.args:
            return self.status_one(req.str_arg("torrent"))
        return self.status_all()

    async def op_save(self, req: Request) -> Any:
        return {"saved": await self.save_all()}

    def status_all(self) -> list[dict[str, Any]]:
        out = []
        for tid in self.session.ids():
            with contextlib.suppress(KeyError):
                out.append(self.status_one(tid))
        return out

    def status_one(self, tid: str) -> dict[str, Any]:
        st = self.session.status(tid)
        d = asdict(st)
        d.pop("extra")
        if not st.error and tid in self._errors:
            d["error"] = self._errors[tid]
        left = max(0, st.total_wanted - st.total_done)
        d["eta"] = None if st.download_rate <= 0 or left == 0 else int(left / st.download_rate)
        if left == 0 and st.has_metadata:
            d["eta"] = 0
        d["playable"], d["streams"] = self._playability(tid, st.has_metadata)
        return d

    def _playability(self, tid: str, has_metadata: bool) -> tuple[bool, list[dict[str, Any]]]:
        if not has_metadata:
            return False, []
        have = self.session.have(tid)
        streams = []
        for (t, index), s in self._streams.items():
            if t != tid:
                continue
            ahead = buffered_ahead(s.span, s.cursor, have)
            streams.append(
                {
                    "file": index,
                    "cursor": s.cursor,
                    "buffered_bytes": ahead,
                    "buffer_seconds": (ahead / s.bitrate) if s.bitrate else None,
                    "ready": all(have[p] for p in s.startup),
                    "first_byte_s": s.first_byte_s,
                }
            )
        files = [f for f in self.session.files(tid) if not f.pad and f.priority > 0]
        if not files:
            return False, streams
        biggest = max(files, key=lambda f: f.size)
        span = self.session.span(tid, biggest.index)
        return all(have[p] for p in startup_pieces(span)), streams

    # -- streaming ----------------------------------------------------------------------
    async def _read_span(
        self, tid: str, span: FileSpan, offset: int, length: int, timeout: float
    ) -> bytes:
        """The bytes of verified pieces through libtorrent's read_piece (answered by alerts,
        on the alert thread; concurrent reads of one piece share one request)."""
        loop = asyncio.get_running_loop()
        futs: dict[int, asyncio.Future[bytes]] = {}
        for piece in span.pieces(offset, offset + length):
            fut: asyncio.Future[bytes] = loop.create_future()
            waiting = self._piece_reads.setdefault((tid, piece), [])
            waiting.append(fut)
            if len(waiting) == 1:
                self.session.read_piece(tid, piece)
            futs[piece] = fut
        try:
            async with asyncio.timeout(max(timeout, 5.0)):
                pieces = {p: await f for p, f in futs.items()}
        except TimeoutError:
            raise TimeoutError(
                f"Timed out reading {len(futs)} downloaded piece(s) from the disk."
            ) from None
        finally:
            for piece, fut in futs.items():
                waiting = self._piece_reads.get((tid, piece), [])
                if fut in waiting and not fut.done():
                    waiting.remove(fut)
                    fut.cancel()
        return _slice_pieces(span, offset, length, pieces)

    def _fetch_startup_first(self, tid: str) -> None:
        """Every download fetches its main file's header, footer and prebuffer before the rest
        (top piece priority, no deadline): it becomes playable ("Play now") at a few percent
        instead of near the end of a rarest-first download. Without metadata yet (a magnet)
        this runs again when the metadata arrives."""
        with contextlib.suppress(KeyError, TorrentInputError):
            files = [f for f in self.session.files(tid) if not f.pad and f.priority > 0]
            if not files:
                return
            biggest = max(files, key=lambda f: f.size)
            have = self.session.have(tid)
            startup = startup_pieces(self.session.span(tid, biggest.index))
            # (the piece bitfield is empty while a new torrent is being checked)
            missing = [p for p in startup if p >= len(have) or not have[p]]
            self.session.prioritize(tid, missing, 7)

    async def op_open_stream(self, req: Request) -> Any:
        tid, index = req.str_arg("torrent"), req.int_arg("file")
        span = self.session.span(tid, index)
        files = self.session.files(tid)
        if files[index].priority == 0:
            prios = [f.priority for f in files]
            prios[index] = 4
            self.session.set_file_priorities(tid, prios)
        st = self.session.status(tid)
        if st.paused or st.state == "queued":
            self.session.force_start(tid)
        path = Path(st.save_path) / files[index].path
        startup = startup_pieces(span)
        stream = StreamState(span, path, startup, bitrate=req.int_arg("bitrate", 0))
        self._streams[(tid, index)] = stream
        have = self.session.have(tid)
        missing = [p for p in startup if not have[p]]
        for n, piece in enumerate(missing):
            self.session.set_deadline(tid, piece, n * 10, 7)
        return {
            "torrent": tid,
            "file": index,
            "size": span.size,
            "path": str(path),
            "startup_pieces": startup,
            "missing": len(missing),
        }

    async def op_close_stream(self, req: Request) -> Any:
        tid, index = req.str_arg("torrent"), req.int_arg("file")
        self._streams.pop((tid, index), None)
        if not any(k[0] == tid for k in self._streams):
            self.session.clear_deadlines(tid)
        return None

    async def op_read(self, req: Request) -> Any:
        tid, index = req.str_arg("torrent"), req.int_arg("file")
        offset = req.int_arg("offset")
        length = req.int_arg("length", minimum=1)
        timeout = req.float_arg("timeout", 30.0)
        if length > MAX_READ:
            raise ProtocolError(f"read: at most {MAX_READ} bytes per read")
        data = await self.read(tid, index, offset, length, timeout)
        return {"offset": offset, "length": len(data), "data": base64.b64encode(data).decode()}

    async def read(self, tid: str, index: int, offset: int, length: int, timeout: float) -> bytes:
        stream = self._streams.get((tid, index))
        if stream is None:
            await self.op_open_stream(Request(0, "open_stream", {"torrent": tid, "file": index}))
            stream = self._streams[(tid, index)]
        span = stream.span
        if offset >= span.size:
            return b""
        length = min(length, span.size - offset)
        stream.cursor = offset
        needed = span.pieces(offset, offset + length)
        deadline = time.monotonic() + timeout
        planned = -1
        while True:
            have = self.session.have(tid)
            missing = [p for p in needed if not have[p]]
            if not missing:
                break
            err = self._errors.get(tid) or self.session.status(tid).error
            if err:
                raise TorrentInputError(f"The torrent stopped with an error: {err}")
            if planned != len(missing):
                # the read's own pieces first, then the moving window ahead of it
                for n, piece in enumerate(missing):
                    self.session.set_deadline(tid, piece, n * 10, 7)
                for d in plan_window(span, offset + length, have):
                    self.session.set_deadline(tid, d.piece, 100 + d.deadline_ms, d.priority)
                planned = len(missing)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"Timed out after {timeout:g} s waiting for {len(missing)} piece(s) of "
                    f"bytes {offset}-{offset + length - 1}; the download is still running."
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))
        # every piece under the range is hash-checked; its bytes come from libtorrent's disk
        # layer (which also holds blocks not yet flushed to the file), never from the file
        data = await self._read_span(tid, span, offset, length, deadline - time.monotonic())
        if stream.first_byte_s is None:
            stream.first_byte_s = round(time.monotonic() - stream.opened, 3)
        for d in plan_window(span, offset + length, self.session.have(tid)):
            self.session.set_deadline(tid, d.piece, d.deadline_ms, d.priority)
        return data


def _slice_pieces(span: FileSpan, offset: int, length: int, pieces: dict[int, bytes]) -> bytes:
    """File bytes [offset, offset+length) cut from whole pieces of the torrent's byte stream."""
    begin = span.offset + offset
    end = begin + length
    out = bytearray()
    for piece in sorted(pieces):
        start = piece * span.piece_length
        data = pieces[piece]
        lo, hi = max(begin, start), min(end, start + len(data))
        if lo < hi:
            out += data[lo - start : hi - start]
    if len(out) != length:
        raise OSError(f"short read: {len(out)} of {length} bytes at {offset}")
    return bytes(out)


def _fetch(url: str) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise TorrentInputError("A .torrent URL starts with http:// or https://.")
    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT) as r:
            data: bytes = r.read(MAX_TORRENT_FILE + 1)
    except OSError as e:
        raise TorrentInputError(f"Could not fetch the .torrent from {url}: {e}.") from None
    if len(data) > MAX_TORRENT_FILE:
        raise TorrentInputError(f"{url} is larger than any .torrent file should be.")
    return data


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"
