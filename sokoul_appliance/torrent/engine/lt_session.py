"""The only module that imports libtorrent: a narrow, typed wrapper around one session.

libtorrent ships no type stubs; everything crossing this module's boundary is a plain Python
value (str, int, bytes, dataclasses). Alerts are popped by a dedicated thread (``AlertPump``),
turned into ``EngineAlert`` records there (alert objects die at the next pop) and handed to a
callback (the engine's event loop, through ``call_soon_threadsafe``).
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import libtorrent as lt  # type: ignore[import-untyped]

from sokoul_appliance.torrent.window import FileSpan

VERSION: str = str(lt.__version__)

CHECKING_FILES, CHECKING_RESUME_DATA = 1, 7
STATES = {
    0: "queued",
    1: "checking",
    2: "metadata",
    3: "downloading",
    4: "finished",
    5: "seeding",
    6: "allocating",
    7: "checking",
}


class TorrentInputError(ValueError):
    """A magnet, .torrent or resume file libtorrent refused; the text says which and why."""


@dataclass(frozen=True)
class SessionOptions:
    listen_interface: str = "0.0.0.0"
    listen_port: int = 6881
    dht: bool = False
    lsd: bool = False
    upnp: bool = False
    natpmp: bool = False
    outgoing_utp: bool = False  # aria2 speaks no uTP; libtorrent would try it first
    download_limit: int = 0  # bytes/s, 0 = unlimited
    upload_limit: int = 0
    active_downloads: int = 3  # queue: at most this many downloading at once (-1: no limit)
    active_seeds: int = 5


@dataclass(frozen=True)
class EngineAlert:
    kind: str  # piece_finished | resume_data | resume_failed | finished | error | metadata | ...
    torrent: str | None
    message: str = ""
    piece: int = -1
    data: bytes = b""


@dataclass
class TorrentStatus:
    id: str
    name: str
    state: str
    paused: bool
    progress: float
    total_wanted: int
    total_done: int
    download_rate: int
    upload_rate: int
    peers: int
    seeds: int
    all_time_download: int
    all_time_upload: int
    session_download: int  # payload bytes received by this engine run
    save_path: str
    has_metadata: bool
    error: str
    download_limit: int
    upload_limit: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FileEntry:
    index: int
    path: str
    size: int
    offset: int
    priority: int
    pad: bool


def _settings(o: SessionOptions) -> dict[str, Any]:
    return {
        "listen_interfaces": f"{o.listen_interface}:{o.listen_port}",
        "enable_dht": o.dht,
        "enable_lsd": o.lsd,
        "enable_upnp": o.upnp,
        "enable_natpmp": o.natpmp,
        "enable_outgoing_utp": o.outgoing_utp,
        "enable_incoming_utp": True,
        "download_rate_limit": o.download_limit,
        "upload_rate_limit": o.upload_limit,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": (
            lt.alert.category_t.error_notification
            | lt.alert.category_t.status_notification
            | lt.alert.category_t.storage_notification
            | lt.alert.category_t.piece_progress_notification
        ),
        "alert_queue_size": 10000,
        "user_agent": "SOKOUL/1.0 libtorrent/" + VERSION,
        "active_downloads": o.active_downloads,
        "active_seeds": o.active_seeds,
        "active_limit": max(o.active_downloads + o.active_seeds, 10),
        "dont_count_slow_torrents": False,  # a stalled download still holds its slot
        "auto_manage_interval": 5,
    }


def _hex(handle: Any) -> str:
    return str(handle.info_hash())


class LtSession:
    def __init__(self, options: SessionOptions) -> None:
        self._s: Any = lt.session(_settings(options))
        # rate limits apply to LAN/loopback peers too (libtorrent exempts them by default), so
        # the thermal governor's limits hold whoever the peers are
        f = lt.ip_filter()
        f.add_rule("0.0.0.0", "255.255.255.255", 1 << int(lt.session.global_peer_class_id))
        f.add_rule(
            "::",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            1 << int(lt.session.global_peer_class_id),
        )
        self._s.set_peer_class_filter(f)
        self._handles: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- settings -------------------------------------------------------------------------
    def apply(self, changes: dict[str, Any]) -> None:
        """Partial settings: listen_interface+listen_port, dht, lsd, upnp, natpmp, limits."""
        pack: dict[str, Any] = {}
        if "listen_port" in changes:
            iface = changes.get("listen_interface", "0.0.0.0")
            pack["listen_interfaces"] = f"{iface}:{int(changes['listen_port'])}"
        for key, name in (
            ("dht", "enable_dht"),
            ("lsd", "enable_lsd"),
            ("upnp", "enable_upnp"),
            ("natpmp", "enable_natpmp"),
        ):
            if key in changes:
                pack[name] = bool(changes[key])
        if "download_limit" in changes:
            pack["download_rate_limit"] = int(changes["download_limit"])
        if "upload_limit" in changes:
            pack["upload_rate_limit"] = int(changes["upload_limit"])
        for key in ("active_downloads", "active_seeds"):
            if key in changes:
                pack[key] = int(changes[key])
        if pack:
            self._s.apply_settings(pack)
        if "paused" in changes:
            # the session-wide pause (thermal, storage): torrents keep their own paused flags
            if changes["paused"]:
                self._s.pause()
            else:
                self._s.resume()

    def settings(self) -> dict[str, Any]:
        p = self._s.get_settings()
        return {
            "listen_interfaces": str(p["listen_interfaces"]),
            "dht": bool(p["enable_dht"]),
            "lsd": bool(p["enable_lsd"]),
            "upnp": bool(p["enable_upnp"]),
            "natpmp": bool(p["enable_natpmp"]),
            "download_limit": int(p["download_rate_limit"]),
            "upload_limit": int(p["upload_rate_limit"]),
            "paused": bool(self._s.is_paused()),
            "active_downloads": int(p["active_downloads"]),
            "active_seeds": int(p["active_seeds"]),
        }

    def listen_port(self) -> int:
        return int(self._s.listen_port())

    # -- adding ---------------------------------------------------------------------------
    @staticmethod
    def params_from_magnet(uri: str) -> Any:
        if not uri.startswith("magnet:?"):
            raise TorrentInputError("This is not a magnet link (it should start with 'magnet:?').")
        try:
            return lt.parse_magnet_uri(uri)
        except RuntimeError as e:
            raise TorrentInputError(f"This magnet link cannot be read: {e}.") from None

    @staticmethod
    def params_from_torrent(data: bytes) -> Any:
        try:
            decoded = lt.bdecode(data)
            if not isinstance(decoded, dict):
                raise RuntimeError("not a bencoded dictionary")
            ti = lt.torrent_info(decoded)
        except RuntimeError as e:
            raise TorrentInputError(
                f"This .torrent file is damaged or not a torrent: {e}."
            ) from None
        atp = lt.add_torrent_params()
        atp.ti = ti
        return atp

    @staticmethod
    def params_from_resume(data: bytes) -> Any:
        try:
            return lt.read_resume_data(data)
        except RuntimeError as e:
            raise TorrentInputError(f"unreadable resume data: {e}") from None

    @staticmethod
    def params_bytes(atp: Any) -> bytes:
        """The add parameters as a resume file (no progress yet): written at add, so a crash
        right after still knows the torrent. Pure serialization, nothing asked of the session."""
        return bytes(lt.write_resume_data_buf(atp))

    @staticmethod
    def params_id(atp: Any) -> str:
        if atp.ti is not None:
            return str(atp.ti.info_hash())
        return str(atp.info_hashes.get_best())

    @staticmethod
    def params_size(atp: Any) -> int:
        return int(atp.ti.total_size()) if atp.ti is not None else 0

    def add(self, atp: Any, save_path: str, paused: bool = False) -> str:
        if not atp.save_path:
            atp.save_path = save_path
        # queued torrents are auto-managed (libtorrent starts them as slots free up); a torrent
        # a person paused is not, so the queue never starts it behind their back
        am, p = lt.torrent_flags.auto_managed, lt.torrent_flags.paused
        atp.flags = ((atp.flags & ~am) | p) if paused else ((atp.flags | am) & ~p)
        try:
            h = self._s.add_torrent(atp)
        except RuntimeError as e:
            raise TorrentInputError(f"libtorrent refused the torrent: {e}.") from None
        tid = _hex(h)
        with self._lock:
            self._handles[tid] = h
        return tid

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._handles)

    def _h(self, tid: str) -> Any:
        with self._lock:
            h = self._handles.get(tid)
        if h is None or not h.is_valid():
            raise KeyError(tid)
        return h

    def has(self, tid: str) -> bool:
        with self._lock:
            return tid in self._handles

    # -- control --------------------------------------------------------------------------
    def pause(self, tid: str) -> None:
        h = self._h(tid)
        h.unset_flags(lt.torrent_flags.auto_managed)
        h.pause()

    def resume(self, tid: str) -> None:
        """Back into the queue (started when a download slot is free)."""
        h = self._h(tid)
        h.clear_error()
        h.set_flags(lt.torrent_flags.auto_managed)
        h.resume()

    def force_start(self, tid: str) -> None:
        """Start now, whatever the queue says (a stream is waiting for it)."""
        h = self._h(tid)
        h.clear_error()
        h.unset_flags(lt.torrent_flags.auto_managed)
        h.resume()

    def remove(self, tid: str, delete_files: bool) -> None:
        h = self._h(tid)
        with self._lock:
            self._handles.pop(tid, None)
        self._s.remove_torrent(h, int(lt.session.delete_files) if delete_files else 0)

    def set_torrent_limits(self, tid: str, download: int, upload: int) -> None:
        h = self._h(tid)
        h.set_download_limit(download or -1)
        h.set_upload_limit(upload or -1)

    def set_file_priorities(self, tid: str, priorities: list[int]) -> None:
        h = self._h(tid)
        if not h.status().has_metadata:
            raise TorrentInputError("File selection needs the torrent's metadata (not there yet).")
        n = h.torrent_file().files().num_files()
        if len(priorities) != n:
            raise TorrentInputError(
                f"This torrent has {n} files, got {len(priorities)} priorities."
            )
        h.prioritize_files(priorities)

    def connect_peer(self, tid: str, host: str, port: int) -> None:
        self._h(tid).connect_peer((host, port))

    # -- state ----------------------------------------------------------------------------
    def status(self, tid: str) -> TorrentStatus:
        h = self._h(tid)
        s = h.status()
        paused = bool(s.flags & lt.torrent_flags.paused)
        queued = paused and bool(s.flags & lt.torrent_flags.auto_managed)
        state = STATES.get(int(s.state), "unknown")
        if s.errc.value():
            state = "error"
        elif queued:
            state, paused = "queued", False  # waiting for a slot, not paused by anyone
        return TorrentStatus(
            id=tid,
            name=str(s.name) or tid,
            state=state,
            paused=paused,
            progress=float(s.progress),
            total_wanted=int(s.total_wanted),
            total_done=int(s.total_wanted_done),
            download_rate=int(s.download_payload_rate),
            upload_rate=int(s.upload_payload_rate),
            peers=int(s.num_peers),
            seeds=int(s.num_seeds),
            all_time_download=int(s.all_time_download),
            all_time_upload=int(s.all_time_upload),
            session_download=int(s.total_payload_download),
            save_path=str(s.save_path),
            has_metadata=bool(s.has_metadata),
            error=str(s.errc.message()) if s.errc.value() else "",
            download_limit=max(0, int(h.download_limit())),
            upload_limit=max(0, int(h.upload_limit())),
        )

    def files(self, tid: str) -> list[FileEntry]:
        h = self._h(tid)
        if not h.status().has_metadata:
            return []
        fs = h.torrent_file().files()
        prios = list(h.get_file_priorities())
        out = []
        for i in range(fs.num_files()):
            out.append(
                FileEntry(
                    index=i,
                    path=str(fs.file_path(i)),
                    size=int(fs.file_size(i)),
                    offset=int(fs.file_offset(i)),
                    priority=int(prios[i]) if i < len(prios) else 4,
                    pad=bool(fs.file_flags(i) & lt.file_storage.flag_pad_file),
                )
            )
        return out

    def span(self, tid: str, index: int) -> FileSpan:
        h = self._h(tid)
        ti = h.torrent_file()
        if ti is None:
            raise TorrentInputError("The torrent's metadata has not arrived yet.")
        fs = ti.files()
        if not 0 <= index < fs.num_files():
            raise TorrentInputError(f"This torrent has no file number {index}.")
        return FileSpan(
            int(fs.file_offset(index)),
            int(fs.file_size(index)),
            int(ti.piece_length()),
            int(ti.num_pieces()),
        )

    def have(self, tid: str) -> list[bool]:
        return [bool(x) for x in self._h(tid).status(lt.status_flags_t.query_pieces).pieces]

    def have_piece(self, tid: str, piece: int) -> bool:
        return bool(self._h(tid).have_piece(piece))

    def set_deadline(self, tid: str, piece: int, deadline_ms: int, priority: int) -> None:
        h = self._h(tid)
        h.piece_priority(piece, priority)
        h.set_piece_deadline(piece, deadline_ms)

    def read_piece(self, tid: str, piece: int) -> None:
        """Ask libtorrent for a verified piece's bytes (answer: a ``piece_data`` alert). Its
        disk layer serves blocks not yet written to the file (libtorrent 2's store buffer):
        reading the file itself right after ``have_piece`` can still see zeros there."""
        self._h(tid).read_piece(piece)

    def prioritize(self, tid: str, pieces: list[int], priority: int) -> None:
        """Piece priorities only (no deadline): picked before the default-priority pieces."""
        h = self._h(tid)
        for piece in pieces:
            h.piece_priority(piece, priority)

    def clear_deadlines(self, tid: str) -> None:
        self._h(tid).clear_piece_deadlines()

    def request_resume_data(self, tid: str, only_if_modified: bool) -> bool:
        h = self._h(tid)
        if int(h.status().state) in (CHECKING_FILES, CHECKING_RESUME_DATA):
            # asked again on torrent_checked: saving (with a disk flush) while libtorrent
            # hashes the files crashed the 2.0.11 engine now and then under load
            return False
        if only_if_modified and not h.need_save_resume_data():
            return False
        flags = lt.save_resume_flags_t.flush_disk_cache | lt.save_resume_flags_t.save_info_dict
        h.save_resume_data(flags)
        return True

    def totals(self) -> tuple[int, int]:
        down = up = 0
        for tid in self.ids():
            try:
                s = self._h(tid).status()
            except KeyError:
                continue
            down += int(s.total_payload_download)
            up += int(s.total_payload_upload)
        return down, up

    def pause_session(self) -> None:
        self._s.pause()

    def set_alert_fd(self, fd: int) -> None:
        """libtorrent writes to ``fd`` when its alert queue goes from empty to non-empty."""
        self._s.set_alert_fd(fd)

    def pop_alerts(self) -> list[EngineAlert]:
        # not wait_for_alert(): the Python binding wraps the alert pointer it returns and
        # crashed (dynamic_cast on a stale alert) now and then under load in 2.0.11
        return [a for a in (_convert(x) for x in self._s.pop_alerts()) if a is not None]


_WANTED = frozenset(
    {
        "piece_finished",
        "read_piece",
        "save_resume_data",
        "save_resume_data_failed",
        "torrent_finished",
        "torrent_checked",
        "file_error",
        "torrent_error",
        "metadata_failed",
        "fastresume_rejected",
        "metadata_received",
        "listen_failed",
        "listen_succeeded",
    }
)


def _convert(a: Any) -> EngineAlert | None:
    what = a.what()
    if what not in _WANTED:
        return None  # touch nothing else of an alert we do not use
    if what in ("listen_failed", "listen_succeeded"):
        kind = "listening" if what == "listen_succeeded" else "listen_failed"
        return EngineAlert(kind, None, message=str(a.message()))
    handle = a.handle
    tid = _hex(handle) if handle.is_valid() else None
    if what == "piece_finished":
        return EngineAlert("piece_finished", tid, piece=int(a.piece_index))
    if what == "read_piece":
        if a.error.value():
            return EngineAlert("piece_read_failed", tid, message=str(a.error.message()),
                               piece=int(a.piece))  # fmt: skip
        return EngineAlert("piece_data", tid, piece=int(a.piece), data=bytes(a.buffer))
    if what == "save_resume_data":
        return EngineAlert("resume_data", tid, data=bytes(lt.write_resume_data_buf(a.params)))
    if what == "save_resume_data_failed":
        return EngineAlert("resume_failed", tid, message=str(a.message()))
    if what == "torrent_finished":
        return EngineAlert("finished", tid)
    if what == "torrent_checked":
        return EngineAlert("checked", tid)
    if what in ("file_error", "torrent_error", "metadata_failed", "fastresume_rejected"):
        return EngineAlert("error", tid, message=str(a.message()))
    if what == "metadata_received":
        return EngineAlert("metadata", tid)
    return None


class AlertPump(threading.Thread):
    """Pops the session's alerts in its own thread, woken by libtorrent through the alert fd
    (a pipe), and hands the records to ``deliver``."""

    def __init__(self, session: LtSession, deliver: Callable[[list[EngineAlert]], None]) -> None:
        super().__init__(name="lt-alerts", daemon=True)
        self._session = session
        self._deliver = deliver
        self._halt = threading.Event()
        self._rfd, self._wfd = os.pipe()
        os.set_blocking(self._rfd, False)
        os.set_blocking(self._wfd, False)
        session.set_alert_fd(self._wfd)

    def run(self) -> None:
        while not self._halt.is_set():
            # the timeout only bounds how late a stop is noticed (and covers a missed wake-up)
            select.select([self._rfd], [], [], 0.5)
            with contextlib.suppress(BlockingIOError):
                while os.read(self._rfd, 4096):
                    pass
            alerts = self._session.pop_alerts()
            if alerts:
                self._deliver(alerts)

    def stop(self) -> None:
        self._halt.set()
        with contextlib.suppress(BlockingIOError):
            os.write(self._wfd, b"x")
        self.join(timeout=5)


def params_paused(atp: Any) -> bool:
    """Paused by a person (a torrent waiting in the queue is paused *and* auto-managed)."""
    paused = bool(atp.flags & lt.torrent_flags.paused)
    return paused and not bool(atp.flags & lt.torrent_flags.auto_managed)


def make_torrent(
    content: str, piece_size: int = 0, v1_only: bool = True, trackers: tuple[str, ...] = ()
) -> bytes:
    """A .torrent for a file or folder (``content``), trackerless. v1-only by default: aria2 and
    other v1 clients answer a hybrid torrent's info hash with "Unknown info hash". Blocking."""
    fs = lt.file_storage()
    lt.add_files(fs, content)
    flags = lt.create_torrent.v1_only if v1_only else 0
    ct = lt.create_torrent(fs, piece_size, flags=flags)
    ct.set_creator("SOKOUL")
    for tier, url in enumerate(trackers):
        ct.add_tracker(url, tier)
    parent = os.path.dirname(content.rstrip("/"))
    lt.set_piece_hashes(ct, parent)
    return bytes(lt.bencode(ct.generate()))
