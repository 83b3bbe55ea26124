"""HTTP streaming: ``/stream/{object_id}`` and ``/subtitles/{object_id}/{n}.srt|.vtt``.

Library files go out zero-copy (aiohttp's FileResponse: sendfile, Range, HEAD, 416); what the
client's profile cannot play goes through ffmpeg as MPEG-TS, with DLNA time-seek; files still
downloading come from a ByteSource. URLs carry object ids only: a path never reaches the
filesystem from a URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from prometheus_client import CollectorRegistry

from sokoul_appliance.bus import EventBus
from sokoul_appliance.events import ItemPlayed, PauseHeavyWork, ResumeHeavyWork
from sokoul_appliance.host import CommandError, Host
from sokoul_appliance.library.files import MIME_BY_EXTENSION
from sokoul_appliance.library.manager import LibraryManager
from sokoul_appliance.library.model import LibraryItem, SubtitleTrack
from sokoul_appliance.stream import dlna
from sokoul_appliance.stream.metrics import StreamMetrics
from sokoul_appliance.stream.profiles import (
    ClientProfile,
    choose_profile,
    container_key,
    load_profiles,
)
from sokoul_appliance.stream.ranges import Unsatisfiable, parse_range
from sokoul_appliance.stream.source import ByteSource, SourceError, SourceRegistry
from sokoul_appliance.stream.subtitles import convert, decode, extract_embedded
from sokoul_appliance.stream.transcode import (
    DIRECT,
    REMUX,
    TRANSCODE,
    Plan,
    SoftwareEncoder,
    VideoEncoder,
    decide,
    ffmpeg_argv,
)

log = logging.getLogger("sokoul.stream")
PLAYED_EVERY = 600.0  # seconds between two ItemPlayed events of one item

STREAM_ID = re.compile(r"^(it|dl)-[a-z0-9]{1,32}$")
SUBTITLE_NAME = re.compile(r"^(\d{1,3})\.(srt|vtt)$")
CHUNK = 256 * 1024
TRANSFER_MODES = ("Streaming", "Interactive", "Background")
SUBTITLE_MIME = {"srt": "application/x-subrip", "vtt": "text/vtt"}
GROWING = "growing"


def client_identity(request: web.BaseRequest) -> str:
    """User-Agent plus Sony's X-AV-Client-Info (where BRAVIA TVs name their model)."""
    h = request.headers
    return f"{h.get('User-Agent', '')} {h.get('X-AV-Client-Info', '')}".strip()


@dataclass(frozen=True)
class StreamChoice:
    """What a client gets for an item: for the DLNA res element and the panel's player."""

    mode: str  # DIRECT | REMUX | TRANSCODE
    path: str  # '/stream/it-…' (the DLNA layer prefixes its base URL)
    mime_type: str
    content_features: str
    size: int | None  # None when converted (length unknown in advance)

    @property
    def protocol_info(self) -> str:
        return dlna.protocol_info(self.mime_type, self.content_features)


class _TimedFileResponse(web.FileResponse):
    """FileResponse that reports when its headers go out (the first byte of the answer) and,
    once aiohttp has sent it (its prepare() sends the whole file), how it ended."""

    def __init__(
        self,
        path: Path,
        on_headers: Callable[[], None],
        on_sent: Callable[[web.BaseRequest, web.FileResponse], None],
        track: Callable[[int], None],
        **kw: Any,
    ) -> None:
        super().__init__(path, **kw)
        self._on_headers = on_headers
        self._on_sent = on_sent
        self._track = track

    async def _write_headers(self) -> None:
        await super()._write_headers()
        self._on_headers()

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:  # FileResponse.prepare() must run once (it sends the file)
            return None
        self._track(1)
        try:
            writer = await super().prepare(request)
        finally:
            self._track(-1)
        self._on_sent(request, self)
        return writer


class StreamService:
    name = "stream"
    title = "Streaming"

    def __init__(
        self,
        host: Host,
        library: LibraryManager,
        registry: CollectorRegistry,
        profiles: list[ClientProfile] | None = None,
        encoder: VideoEncoder | None = None,
        sources: SourceRegistry | None = None,
        max_transcodes: int = 2,
        read_timeout: float = 30.0,
        command_prefix: Sequence[str] = (),
        bus: EventBus | None = None,
    ) -> None:
        self.host = host
        self.bus = bus
        self.heavy_paused: str | None = None  # PauseHeavyWork's reason: no new conversions
        self._listener: asyncio.Task[None] | None = None
        self.library = library
        self.metrics = StreamMetrics(registry)
        self.profiles = profiles if profiles is not None else load_profiles()
        self.encoder: VideoEncoder = encoder or SoftwareEncoder()
        # "is not None": an empty registry is falsy (len 0) but is the one the torrent room fills
        self.sources = sources if sources is not None else SourceRegistry()
        self.max_transcodes = max_transcodes
        self._transcodes = asyncio.Semaphore(max_transcodes)
        self.read_timeout = read_timeout
        # e.g. ('systemd-run', '--scope', '--slice=sokoul-heavy.slice', '--'): ffmpeg in the
        # heavy slice, on the cores the governor gives it
        self.command_prefix = tuple(command_prefix)
        self._procs: set[asyncio.subprocess.Process] = set()
        self._played: dict[str, float] = {}  # item id -> monotonic time ItemPlayed went out
        self._active: dict[str, int] = {DIRECT: 0, REMUX: 0, TRANSCODE: 0, GROWING: 0}
        self.sent_bytes = 0

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self.bus is not None:
            self._listener = asyncio.create_task(self._listen(), name="stream-events")

    async def _listen(self) -> None:
        assert self.bus is not None
        with self.bus.subscribe(PauseHeavyWork, ResumeHeavyWork) as sub:
            while True:
                event = await sub.get()
                # new conversions wait; running ones are frozen with the heavy slice by the
                # cores room (on a systemd host), direct play goes on
                self.heavy_paused = event.reason if isinstance(event, PauseHeavyWork) else None

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        for proc in list(self._procs):
            if proc.returncode is None:
                proc.kill()
        for proc in list(self._procs):
            await proc.wait()
        self._procs.clear()

    def status(self) -> tuple[str, str]:
        busy = sum(self._active.values())
        detail = f"{busy} stream(s) now; profiles: {', '.join(p.name for p in self.profiles)}."
        if self.heavy_paused:
            return "degraded", f"{detail} No new conversions: {self.heavy_paused}"
        return "ok", detail

    def snapshot(self) -> dict[str, Any]:
        state, detail = self.status()
        return {
            "state": state,
            "detail": detail,
            "active": dict(self._active),
            "transcodes": {"running": len(self._procs), "max": self.max_transcodes},
            "encoder": self.encoder.name,
            "profiles": [{"name": p.name, "title": p.title} for p in self.profiles],
            "sent_bytes": self.sent_bytes,
            "growing_sources": len(self.sources),
            "conversions_paused": self.heavy_paused,
        }

    def routes(self) -> list[web.RouteDef]:
        """GET (and HEAD) routes to add to the web application."""
        return [
            web.get("/stream/{object_id}", self.handle_stream),
            web.get("/subtitles/{object_id}/{name}", self.handle_subtitle),
        ]

    # ---- what a client gets ----------------------------------------------------------------

    def profile_for(self, identity: str | None, name: str | None = None) -> ClientProfile:
        if name:
            for p in self.profiles:
                if p.name == name:
                    return p
        return choose_profile(self.profiles, identity)

    def choose(
        self,
        item: LibraryItem,
        profile: ClientProfile,
        force: bool = False,
        reencode: bool = False,
    ) -> tuple[Plan, StreamChoice]:
        container = container_key(item.container, item.file_name)
        plan = decide(profile, item.media, container, force, reencode)
        path = f"/stream/{item.id}"
        if plan.mode == DIRECT:
            pn = dlna.profile_name(container, item.media, item.file_name)
            mime = profile.mime_for(container, item.mime_type)
            if pn is not None:  # a named 192-byte TS (.m2ts/.mts): its name's MIME type
                mime = dlna.ts_mime(item.media) or mime
            return plan, StreamChoice(
                DIRECT, path, mime, dlna.content_features(pn, dlna.OP_RANGE), item.size
            )
        target = profile.transcode
        pn = None
        if plan.mode == REMUX and item.media is not None:
            # the video is copied: its facts are the file's. The audio is copied, or the
            # target's codec and channels, and always the target's after a time seek (see
            # transcode.ffmpeg_argv): a PN only when both name the same profile. A transcode
            # gets no PN: its profile, size and rate are the encoder's (a board hook may
            # differ from libx264's High)
            media = item.media
            if target.container == "mpegts":  # ffmpeg's muxer writes plain 188-byte packets
                media = replace(media, ts_packet_size=188, ts_timestamped=None)
            converted = media
            if media.audio:
                first = media.audio[0]
                out = replace(first, codec=target.audio_codec, channels=target.audio_channels)
                converted = replace(media, audio=(out, *media.audio[1:]))
            pn = dlna.profile_name(target.container, converted)
            if plan.copy_audio and dlna.profile_name(target.container, media) != pn:
                pn = None
        mime = profile.mime_for(target.container, "video/mp2t")
        features = dlna.content_features(pn, dlna.OP_TIMESEEK, converted=True)
        return plan, StreamChoice(plan.mode, path, mime, features, None)

    def subtitle_path(self, item: LibraryItem, profile: ClientProfile) -> str | None:
        """'/subtitles/it-…/0.srt' for the item's first subtitle, in the profile's format."""
        if not item.subtitles():
            return None
        return f"/subtitles/{item.id}/0.{profile.subtitle_format}"

    # ---- /stream ---------------------------------------------------------------------------

    async def handle_stream(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        object_id = request.match_info["object_id"]
        if not STREAM_ID.match(object_id):
            return self._refuse("unknown", 404, "No such item.")
        if object_id.startswith("dl-"):
            source = self.sources.get(object_id)
            if source is None:
                return self._refuse("unknown", 404, "No such item.")
            return await self._growing(request, source, started)
        item = await self.library.item(object_id)
        if item is None:
            return self._refuse("unknown", 404, "No such item.")
        if not item.available:
            return self._refuse(
                "unknown", 503, "This item's drive is not available now; try again later."
            )
        if request.method == "GET":
            self._note_played(item)
        profile = self.profile_for(client_identity(request), request.query.get("profile"))
        # transcode=1: never the file as it is; transcode=video: the video encoded again too
        # (a Chromecast and an H.264 level above what it decodes)
        reencode = request.query.get("transcode") == "video"
        force = reencode or request.query.get("transcode") in ("1", "true", "yes")
        plan, choice = self.choose(item, profile, force, reencode)
        path = await self.library.real_path(item)
        headers = self._dlna_headers(request, item, profile, choice)
        if plan.mode == DIRECT:
            return await self._direct(request, path, headers, profile, started)
        return await self._converted(request, item, path, plan, profile, headers, started)

    def _note_played(self, item: LibraryItem) -> None:
        """Publish ItemPlayed for the first request of a viewing (a TV sends many range
        requests per film: one event per item every PLAYED_EVERY seconds)."""
        if self.bus is None:
            return
        now = time.monotonic()
        if now - self._played.get(item.id, -PLAYED_EVERY) < PLAYED_EVERY:
            return
        if len(self._played) > 4096:
            self._played = {k: t for k, t in self._played.items() if now - t < PLAYED_EVERY}
        self._played[item.id] = now
        self.bus.publish(ItemPlayed(item.id, item.appliance_path))

    def _refuse(self, mode: str, status: int, text: str) -> web.Response:
        self.metrics.requests.labels(mode=mode, status=str(status)).inc()
        return web.Response(status=status, text=text + "\n")

    def _dlna_headers(
        self,
        request: web.Request,
        item: LibraryItem | None,
        profile: ClientProfile,
        choice: StreamChoice,
    ) -> dict[str, str]:
        asked = request.headers.get("transferMode.dlna.org", "")
        headers = {
            "Content-Type": choice.mime_type,
            "contentFeatures.dlna.org": choice.content_features,
            "transferMode.dlna.org": asked if asked in TRANSFER_MODES else "Streaming",
        }
        if (
            item is not None
            and profile.caption_info_sec
            and request.headers.get("getCaptionInfo.sec") == "1"
        ):
            sub = self.subtitle_path(item, profile)
            if sub is not None:
                headers["CaptionInfo.sec"] = f"http://{request.host}{sub}"
        return headers

    async def _direct(
        self,
        request: web.Request,
        path: Path,
        headers: dict[str, str],
        profile: ClientProfile,
        started: float,
    ) -> web.StreamResponse:
        def first_byte() -> None:
            self.metrics.ttfb.labels(mode=DIRECT).observe(time.monotonic() - started)

        def sent(req: web.BaseRequest, resp: web.FileResponse) -> None:
            n = resp.content_length or 0
            if req.method != "HEAD" and resp.status in (200, 206) and n:
                self._count(DIRECT, profile.name, n)
            self.metrics.requests.labels(mode=DIRECT, status=str(resp.status)).inc()

        # aiohttp prepares (sends) it after the handler returns: sendfile from the open file
        def track(n: int) -> None:
            self._active[DIRECT] += n
            self.metrics.active.labels(mode=DIRECT).inc(n)

        return _TimedFileResponse(path, first_byte, sent, track, chunk_size=CHUNK, headers=headers)

    def _count(self, mode: str, client: str, n: int) -> None:
        self.sent_bytes += n
        self.metrics.bytes.labels(mode=mode, client=client).inc(n)

    async def _converted(
        self,
        request: web.Request,
        item: LibraryItem,
        path: Path,
        plan: Plan,
        profile: ClientProfile,
        headers: dict[str, str],
        started: float,
    ) -> web.StreamResponse:
        mode = plan.mode
        start, end = 0.0, None
        seek = request.headers.get("TimeSeekRange.dlna.org")
        try:
            if seek:
                start, end = dlna.parse_time_seek(seek)
            elif "t" in request.query:
                start = dlna.npt_seconds(request.query["t"])
        except dlna.BadTimeSeek as e:
            return self._refuse(mode, 400, str(e))
        if item.duration is not None and start >= item.duration:
            return self._refuse(mode, 416, "The asked time is past the end of this item.")
        if seek:
            headers["TimeSeekRange.dlna.org"] = dlna.format_time_seek(start, end, item.duration)
        headers["Accept-Ranges"] = "none"
        resp = web.StreamResponse(status=200, headers=headers)
        if request.method == "HEAD":
            await resp.prepare(request)
            self.metrics.requests.labels(mode=mode, status="200").inc()
            return resp
        if self.heavy_paused:
            resp_hot = self._refuse(
                mode,
                503,
                "This video needs converting for this TV, and conversions are paused "
                f"({self.heavy_paused}); files the TV plays directly still work.",
            )
            resp_hot.headers["Retry-After"] = "60"
            return resp_hot
        if self._transcodes.locked():
            resp503 = self._refuse(
                mode, 503, "Every transcoding slot is busy; try again when a stream ends."
            )
            resp503.headers["Retry-After"] = "10"
            return resp503
        argv = ffmpeg_argv(
            path, plan, profile.transcode, item.media, self.encoder, start=start, end=end
        )
        async with self._transcodes:
            return await self._pipe(request, resp, [*self.command_prefix, *argv], mode, profile,
                                    started)  # fmt: skip

    async def _pipe(
        self,
        request: web.Request,
        resp: web.StreamResponse,
        argv: list[str],
        mode: str,
        profile: ClientProfile,
        started: float,
    ) -> web.StreamResponse:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._procs.add(proc)
        assert proc.stdout is not None and proc.stderr is not None
        errors = asyncio.create_task(proc.stderr.read(64 * 1024))
        self._active[mode] += 1
        self.metrics.active.labels(mode=mode).inc()
        try:
            first = await asyncio.wait_for(proc.stdout.read(CHUNK), self.read_timeout)
            if not first:
                await proc.wait()
                reason = (await errors).decode(errors="replace").strip()[-500:]
                log.error("ffmpeg produced nothing (%s): %s", proc.returncode, reason)
                return self._refuse(mode, 500, f"The conversion failed: {reason}")
            await resp.prepare(request)
            await resp.write(first)
            self.metrics.ttfb.labels(mode=mode).observe(time.monotonic() - started)
            self._count(mode, profile.name, len(first))
            while chunk := await proc.stdout.read(CHUNK):
                await resp.write(chunk)
                self._count(mode, profile.name, len(chunk))  # as sent: a cut stream counts too
            await resp.write_eof()
            self.metrics.requests.labels(mode=mode, status="200").inc()
            return resp
        except ConnectionResetError:
            log.debug("client left a %s stream", mode)  # a TV seeking or stopping
            self.metrics.requests.labels(mode=mode, status="cut").inc()
            return resp
        finally:
            self._active[mode] -= 1
            self.metrics.active.labels(mode=mode).dec()
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            errors.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await errors
            self._procs.discard(proc)

    async def _growing(
        self, request: web.Request, source: ByteSource, started: float
    ) -> web.StreamResponse:
        """A file still downloading: Range answered from what the source reads."""
        size = source.size
        try:
            rng = parse_range(request.headers.get("Range"), size)
        except Unsatisfiable:
            resp416 = self._refuse(GROWING, 416, "Range not satisfiable.")
            resp416.headers["Content-Range"] = f"bytes */{size}"
            return resp416
        first_byte, last = rng if rng is not None else (0, size - 1)
        profile = self.profile_for(client_identity(request), request.query.get("profile"))
        ext = PurePosixPath(source.name).suffix.lower()
        mime = MIME_BY_EXTENSION.get(ext, "application/octet-stream")
        container = container_key(None, source.name)
        choice = StreamChoice(
            GROWING,
            request.path,
            profile.mime_for(container, mime),
            dlna.content_features(None, dlna.OP_RANGE),
            size,
        )
        headers = self._dlna_headers(request, None, profile, choice)
        headers["Accept-Ranges"] = "bytes"
        resp = web.StreamResponse(status=206 if rng is not None else 200, headers=headers)
        resp.content_length = max(0, last - first_byte + 1)
        if rng is not None:
            resp.headers["Content-Range"] = f"bytes {first_byte}-{last}/{size}"
        if request.method == "HEAD" or size == 0:
            await resp.prepare(request)
            return resp
        offset = first_byte
        try:
            data = await source.read(offset, min(CHUNK, last - offset + 1), self.read_timeout)
        except TimeoutError:
            busy = self._refuse(GROWING, 503, "That part of the file has not downloaded yet.")
            busy.headers["Retry-After"] = "5"
            return busy
        except SourceError as e:
            down = self._refuse(GROWING, 503, f"This download cannot be played now: {e}")
            down.headers["Retry-After"] = "10"
            return down
        self._active[GROWING] += 1
        try:
            await resp.prepare(request)
            self.metrics.ttfb.labels(mode=GROWING).observe(time.monotonic() - started)
            while True:
                data = data[: last - offset + 1]
                await resp.write(data)
                offset += len(data)
                self._count(GROWING, profile.name, len(data))
                if offset > last or not data:
                    break
                data = await source.read(offset, min(CHUNK, last - offset + 1), self.read_timeout)
            await resp.write_eof()
            self.metrics.requests.labels(mode=GROWING, status=str(resp.status)).inc()
            return resp
        except ConnectionResetError:
            self.metrics.requests.labels(mode=GROWING, status="cut").inc()
            return resp
        except (TimeoutError, SourceError) as e:
            # the download stalled mid-answer: the headers are out, so end the connection
            log.warning("a growing file stalled at byte %d: %s", offset, e)
            self.metrics.requests.labels(mode=GROWING, status="stalled").inc()
            raise
        finally:
            self._active[GROWING] -= 1

    # ---- /subtitles ------------------------------------------------------------------------

    async def handle_subtitle(self, request: web.Request) -> web.StreamResponse:
        object_id = request.match_info["object_id"]
        m = SUBTITLE_NAME.match(request.match_info["name"])
        if not STREAM_ID.match(object_id) or m is None:
            return self._refuse("subtitle", 404, "No such subtitle.")
        item = await self.library.item(object_id)
        n, fmt = int(m.group(1)), m.group(2)
        tracks = [] if item is None else item.subtitles()
        if item is None or n >= len(tracks):
            return self._refuse("subtitle", 404, "No such subtitle.")
        try:
            data = await self._subtitle_bytes(item, tracks[n], fmt)
        except (OSError, CommandError, TimeoutError) as e:
            log.warning("subtitle %s/%d unreadable: %s", object_id, n, e)
            return self._refuse("subtitle", 404, "This subtitle cannot be read.")
        if data is None:
            return self._refuse("subtitle", 404, "No such subtitle.")
        profile = self.profile_for(client_identity(request), request.query.get("profile"))
        mime = profile.mime_for(fmt, SUBTITLE_MIME[fmt])
        self.metrics.requests.labels(mode="subtitle", status="200").inc()
        # a Chromecast's receiver page (another origin) fetches text tracks with CORS
        return web.Response(
            body=data,
            content_type=mime,
            charset="utf-8",
            headers={"Access-Control-Allow-Origin": "*"},
        )

    async def _subtitle_bytes(
        self, item: LibraryItem, track: SubtitleTrack, fmt: str
    ) -> bytes | None:
        video = await self.library.real_path(item)
        if track.source == "sidecar" and track.file is not None:
            sidecar = track.file

            def read_sidecar() -> bytes | None:
                folder = video.parent.resolve()
                candidate = (folder / sidecar).resolve()
                if folder not in candidate.parents:
                    return None  # a sidecar entry that leaves the video's folder (a symlink)
                return candidate.read_bytes()

            raw = await asyncio.to_thread(read_sidecar)
            return None if raw is None else convert(decode(raw).encode(), track.format, fmt)
        if track.stream_index is None:
            return None
        return await extract_embedded(self.host, video, track.stream_index, fmt)
