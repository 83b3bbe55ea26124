"""One Chromecast connection: pychromecast's socket thread plus blocking calls that the
manager runs in its executor (never on the event loop), each bounded by a timeout.

pychromecast reports from its own threads; this class turns what it hears into plain dicts
and hands them to ``post`` (the manager's ``loop.call_soon_threadsafe``).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

log = logging.getLogger("sokoul.cast")

APP_MEDIA_RECEIVER = "CC1AD845"  # Google's Default Media Receiver
STREAM_TYPE_BUFFERED = "BUFFERED"  # a file with a known end (not a live stream)


class CastError(Exception):
    """A cast step failed; the message is for the person at the panel."""


def load_pychromecast() -> Any:
    """pychromecast, imported on first use (idle supervisors never load protobuf).

    pychromecast 9.4's cast_channel_pb2 is protoc < 3.19 output, which protobuf 4's upb/C++
    runtimes refuse ("Descriptors cannot be created directly"); the pure-Python runtime reads
    it. The choice is made when protobuf is first imported, so it is made here.
    """
    if "google.protobuf" not in sys.modules:
        os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
    try:
        import pychromecast  # type: ignore[import-untyped]
        import pychromecast.dial  # type: ignore[import-untyped]
        import pychromecast.discovery  # type: ignore[import-untyped]
        import pychromecast.error  # type: ignore[import-untyped]
    except (ImportError, TypeError) as e:
        raise CastError(f"the Chromecast library cannot be loaded: {e}") from None
    return pychromecast


@dataclass(frozen=True)
class DeviceInfo:
    uuid: str
    name: str
    model: str
    host: str
    port: int


@dataclass(frozen=True)
class LoadRequest:
    url: str
    content_type: str
    title: str
    subtitles: str | None = None  # WebVTT URL
    subtitles_lang: str = "und"
    current_time: float | None = None


def serialize_sends(client: Any) -> None:
    """One writer at a time on the connection's TLS socket.

    pychromecast sends from whichever thread calls it (ours, in the executor) and from its
    socket thread (heartbeats, CONNECT to a new app's transport when a status arrives); two
    concurrent SSL writes interleave their records and the receiver drops the connection
    (seen here: a LAUNCH and the CONNECT that its answer triggers). ``send_message`` is the
    one door every message goes through (it calls itself to open a channel: a reentrant lock).
    """
    lock = threading.RLock()
    send = client.send_message

    def locked_send(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return send(*args, **kwargs)

    client.send_message = locked_send


def media_dict(status: Any) -> dict[str, Any]:
    """pychromecast's MediaStatus as the panel sees it."""
    return {
        "player_state": status.player_state,
        "current_time": round(float(status.adjusted_current_time or 0.0), 3),
        "duration": status.duration,
        "content_id": status.content_id,
        "content_type": status.content_type,
        "idle_reason": status.idle_reason,
        "volume": status.volume_level,
        "muted": status.volume_muted,
        "session": status.media_session_id,
    }


class CastConnection:
    """Listener of pychromecast's media, receiver and connection status (all called from
    pychromecast's threads)."""

    def __init__(
        self,
        info: DeviceInfo,
        on_media: Callable[[dict[str, Any]], None],
        on_connection: Callable[[str], None],
        on_volume: Callable[[float, bool], None],
        timeout: float = 5.0,
        tries: int = 2,
    ) -> None:
        self.info = info
        self._on_media = on_media
        self._on_connection = on_connection
        self._on_volume = on_volume
        self.timeout = timeout
        self.tries = tries
        self.cast: Any = None
        self._media_seen = threading.Event()
        self.closed = False

    # -- pychromecast listeners (its threads) ------------------------------------------------

    def new_media_status(self, status: Any) -> None:
        if status.media_session_id is not None:
            self._media_seen.set()
        self._on_media(media_dict(status))

    def new_cast_status(self, status: Any) -> None:
        if status is not None:
            self._on_volume(float(status.volume_level), bool(status.volume_muted))

    def new_connection_status(self, status: Any) -> None:
        self._on_connection(str(status.status))

    # -- blocking calls (the manager's executor) ---------------------------------------------

    def open(self) -> None:
        """Connect and wait for the receiver's first status (at most ``timeout`` seconds per
        step; pychromecast retries ``tries`` times)."""
        pc = load_pychromecast()
        device = pc.dial.DeviceStatus(
            friendly_name=self.info.name,
            model_name=self.info.model,
            manufacturer=None,
            uuid=UUID(self.info.uuid),
            cast_type="cast",
            multizone_supported=False,
        )
        try:
            cast = pc.Chromecast(
                self.info.host,
                port=self.info.port,
                device=device,
                tries=self.tries,
                timeout=self.timeout,
                retry_wait=1.0,
            )
        except pc.error.PyChromecastError as e:
            raise CastError(f"{self.info.name} did not answer ({e})") from None
        serialize_sends(cast.socket_client)
        cast.media_controller.register_status_listener(self)
        cast.register_status_listener(self)
        cast.register_connection_listener(self)
        self.cast = cast
        cast.wait(timeout=self.timeout * 2)
        if not cast.status_event.is_set():
            self.close()
            raise CastError(
                f"{self.info.name} ({self.info.host}) did not answer within "
                f"{self.timeout * 2:.0f} s: is it switched on and on the streaming network?"
            )

    def load(self, req: LoadRequest) -> None:
        """LOAD on the Default Media Receiver (launched first when needed); returns once the
        receiver reports a media session."""
        pc_error = load_pychromecast().error.PyChromecastError
        mc = self._media()
        self._media_seen.clear()
        try:
            mc.play_media(
                req.url,
                req.content_type,
                title=req.title,
                current_time=req.current_time,
                stream_type=STREAM_TYPE_BUFFERED,
                subtitles=req.subtitles,
                subtitles_lang=req.subtitles_lang,
                subtitles_mime="text/vtt",
                subtitle_id=1,
            )
        except pc_error as e:
            raise CastError(f"{self.info.name} refused the media: {e}") from None
        if not self._media_seen.wait(self.timeout * 3):
            raise CastError(
                f"{self.info.name} did not start the media within {self.timeout * 3:.0f} s"
            )

    def control(self, action: str, value: float | None = None) -> None:
        pc_error = load_pychromecast().error.PyChromecastError
        mc = self._media()
        try:
            if action == "play":
                mc.play()
            elif action == "pause":
                mc.pause()
            elif action == "stop":
                mc.stop()
            elif action == "seek":
                mc.seek(float(value or 0.0))
            elif action == "volume":
                self.cast.set_volume(float(value if value is not None else 0.5))
            else:
                raise CastError(f"no control {action!r}")
        except pc_error as e:
            raise CastError(f"{self.info.name} did not take {action}: {e}") from None

    def _media(self) -> Any:
        if self.cast is None or self.closed:
            raise CastError(f"{self.info.name} is not connected")
        if self.cast.socket_client.is_stopped:
            raise CastError(f"{self.info.name} is gone (the connection ended)")
        return self.cast.media_controller

    @property
    def alive(self) -> bool:
        return not self.closed and self.cast is not None and not self.cast.socket_client.is_stopped

    def close(self) -> None:
        """Stop the socket thread (waits at most ``timeout``)."""
        self.closed = True
        cast, self.cast = self.cast, None
        if cast is None:
            return
        started = time.monotonic()
        try:
            cast.disconnect(timeout=self.timeout)
        except (load_pychromecast().error.PyChromecastError, OSError, RuntimeError) as e:
            log.debug("closing %s: %s", self.info.name, e)
        log.debug("closed %s in %.2f s", self.info.name, time.monotonic() - started)
