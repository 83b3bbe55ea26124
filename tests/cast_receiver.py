"""A Chromecast double for tests: a CASTV2 receiver that really plays what it is sent.

    python -m tests.cast_receiver --address 10.0.1.50 --name "Den TV" --report DIR

Run it inside a test network namespace only: it advertises ``_googlecast._tcp`` with zeroconf
on ``--address`` (mDNS on that interface), listens with TLS on ``--address:8009`` (a
self-signed certificate made at start with the ``openssl`` CLI), and speaks length-prefixed
CastMessage protobufs (pychromecast's generated ``cast_channel_pb2``):

- ``tp.connection`` CONNECT / CLOSE, ``tp.heartbeat`` PING -> PONG;
- ``receiver`` GET_STATUS, LAUNCH of the Default Media Receiver (CC1AD845; other apps get
  LAUNCH_ERROR), STOP, SET_VOLUME -> RECEIVER_STATUS;
- ``media`` GET_STATUS, LOAD, PLAY, PAUSE, SEEK, STOP -> MEDIA_STATUS (BUFFERING, PLAYING,
  PAUSED, IDLE; currentTime advancing with the clock while playing).

On LOAD it fetches the media URL like a receiver: a HEAD, then Range requests of 256 KiB to the
end when the server offers ranges (bytes hashed with sha256 and kept), or one ``Range: bytes=0-``
read of the whole converted stream otherwise (kept, then ``ffprobe``d); the subtitle track's URL
is fetched too (body and Access-Control-Allow-Origin kept). Everything it hears and does is
appended to ``DIR/events.jsonl`` (one JSON object a line) for the test to read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
import uuid as uuidlib
from pathlib import Path
from typing import Any

# pychromecast 9.4's generated code needs protobuf's pure-Python runtime (see
# sokoul_appliance/cast/connection.py): chosen before protobuf is imported
os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

import aiohttp
from pychromecast import cast_channel_pb2  # type: ignore[import-untyped]

NS_CONNECTION = "urn:x-cast:com.google.cast.tp.connection"
NS_HEARTBEAT = "urn:x-cast:com.google.cast.tp.heartbeat"
NS_RECEIVER = "urn:x-cast:com.google.cast.receiver"
NS_MEDIA = "urn:x-cast:com.google.cast.media"
DEFAULT_MEDIA_RECEIVER = "CC1AD845"
TRANSPORT = "web-7"
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux armv7l) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/114.0.5735.342 Safari/537.36 CrKey/1.56.500000"
)
CHUNK = 256 * 1024


class Report:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = directory / "events.jsonl"

    def write(self, kind: str, **data: Any) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({"event": kind, "t": time.time(), **data}) + "\n")


def read_events(directory: Path) -> list[dict[str, Any]]:
    """The double's report, for tests."""
    path = directory / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


class Player:
    """The Default Media Receiver's media session."""

    def __init__(self) -> None:
        self.session_id = 0
        self.media: dict[str, Any] | None = None
        self.state = "IDLE"
        self.idle_reason: str | None = None
        self.position = 0.0
        self.since = time.monotonic()
        self.active_tracks: list[int] = []

    def current_time(self) -> float:
        if self.state == "PLAYING":
            return self.position + (time.monotonic() - self.since)
        return self.position

    def set_state(self, state: str, position: float | None = None) -> None:
        self.position = self.current_time() if position is None else position
        self.since = time.monotonic()
        self.state = state

    def status(self, volume: dict[str, Any]) -> list[dict[str, Any]]:
        if self.media is None:
            return []
        st: dict[str, Any] = {
            "mediaSessionId": self.session_id,
            "playbackRate": 1,
            "playerState": self.state,
            "currentTime": round(self.current_time(), 3),
            "supportedMediaCommands": 274447,
            "volume": volume,
            "activeTrackIds": self.active_tracks,
            "media": self.media,
        }
        if self.state == "IDLE" and self.idle_reason:
            st["idleReason"] = self.idle_reason
        return [st]


class Receiver:
    def __init__(self, address: str, name: str, report: Report, fetch_timeout: float) -> None:
        self.address = address
        self.name = name
        self.report = report
        self.fetch_timeout = fetch_timeout
        self.app: dict[str, Any] | None = None
        self.volume: dict[str, Any] = {"level": 0.5, "muted": False}
        self.player = Player()
        self.writers: set[asyncio.StreamWriter] = set()
        self.fetch: asyncio.Task[None] | None = None
        self.fetches = 0

    # -- framing -----------------------------------------------------------------------------

    @staticmethod
    async def read_message(reader: asyncio.StreamReader) -> Any:
        head = await reader.readexactly(4)
        (size,) = struct.unpack(">I", head)
        if size > 1 << 20:
            raise ValueError(f"message of {size} bytes")
        msg = cast_channel_pb2.CastMessage()
        msg.ParseFromString(await reader.readexactly(size))
        return msg

    @staticmethod
    def send(
        writer: asyncio.StreamWriter, source: str, dest: str, ns: str, data: dict[str, Any]
    ) -> None:
        msg = cast_channel_pb2.CastMessage()
        msg.protocol_version = msg.CASTV2_1_0
        msg.source_id = source
        msg.destination_id = dest
        msg.namespace = ns
        msg.payload_type = cast_channel_pb2.CastMessage.STRING
        msg.payload_utf8 = json.dumps(data)
        body = msg.SerializeToString()
        with contextlib.suppress(ConnectionError, RuntimeError):
            writer.write(struct.pack(">I", len(body)) + body)

    # -- statuses ----------------------------------------------------------------------------

    def receiver_status(self, request_id: int = 0) -> dict[str, Any]:
        apps = [self.app] if self.app else []
        return {
            "type": "RECEIVER_STATUS",
            "requestId": request_id,
            "status": {
                "applications": apps,
                "volume": {**self.volume, "controlType": "attenuation"},
                "isActiveInput": True,
                "isStandBy": False,
            },
        }

    def media_status(self, request_id: int = 0) -> dict[str, Any]:
        return {
            "type": "MEDIA_STATUS",
            "requestId": request_id,
            "status": self.player.status(self.volume),
        }

    def broadcast_receiver(self) -> None:
        for w in list(self.writers):
            self.send(w, "receiver-0", "*", NS_RECEIVER, self.receiver_status())

    def broadcast_media(self) -> None:
        if self.app is None:
            return
        for w in list(self.writers):
            self.send(w, TRANSPORT, "*", NS_MEDIA, self.media_status())
        self.report.write(
            "media_status",
            state=self.player.state,
            current_time=round(self.player.current_time(), 3),
        )

    # -- connection --------------------------------------------------------------------------

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        self.writers.add(writer)
        self.report.write("connected", peer=list(peer) if peer else None)
        try:
            while True:
                msg = await self.read_message(reader)
                data = json.loads(msg.payload_utf8) if msg.payload_utf8 else {}
                await self.handle(writer, msg, data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, ValueError) as e:
            self.report.write("disconnected", reason=type(e).__name__)
        finally:
            self.writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def handle(self, w: asyncio.StreamWriter, msg: Any, data: dict[str, Any]) -> None:
        ns, kind = msg.namespace, data.get("type")
        src, dst = msg.source_id, msg.destination_id
        rid = int(data.get("requestId", 0))
        if ns != NS_HEARTBEAT:
            self.report.write("message", namespace=ns, type=kind, source=src, destination=dst,
                              payload=data)  # fmt: skip
        if ns == NS_HEARTBEAT:
            if kind == "PING":
                self.send(w, dst, src, NS_HEARTBEAT, {"type": "PONG"})
        elif ns == NS_CONNECTION:
            return  # CONNECT / CLOSE: virtual connections need no answer
        elif ns == NS_RECEIVER:
            await self.handle_receiver(w, kind, data, src, rid)
        elif ns == NS_MEDIA:
            await self.handle_media(w, kind, data, src, rid)

    async def handle_receiver(
        self, w: asyncio.StreamWriter, kind: Any, data: dict[str, Any], src: str, rid: int
    ) -> None:
        if kind == "GET_STATUS":
            self.send(w, "receiver-0", src, NS_RECEIVER, self.receiver_status(rid))
        elif kind == "LAUNCH":
            if data.get("appId") != DEFAULT_MEDIA_RECEIVER:
                error = {"type": "LAUNCH_ERROR", "requestId": rid, "reason": "NOT_FOUND"}
                self.send(w, "receiver-0", src, NS_RECEIVER, error)
                return
            if self.app is None:
                self.app = {
                    "appId": DEFAULT_MEDIA_RECEIVER,
                    "displayName": "Default Media Receiver",
                    "namespaces": [{"name": NS_MEDIA}],
                    "sessionId": str(uuidlib.uuid4()),
                    "statusText": "Ready to cast",
                    "transportId": TRANSPORT,
                }
            self.send(w, "receiver-0", src, NS_RECEIVER, self.receiver_status(rid))
            self.broadcast_receiver()
        elif kind == "STOP":
            self.stop_fetch()
            self.app = None
            self.player = Player()
            self.send(w, "receiver-0", src, NS_RECEIVER, self.receiver_status(rid))
        elif kind == "SET_VOLUME":
            vol = data.get("volume") or {}
            if "level" in vol:
                self.volume["level"] = float(vol["level"])
            if "muted" in vol:
                self.volume["muted"] = bool(vol["muted"])
            self.report.write("volume", **self.volume)
            self.send(w, "receiver-0", src, NS_RECEIVER, self.receiver_status(rid))
            self.broadcast_receiver()

    async def handle_media(
        self, w: asyncio.StreamWriter, kind: Any, data: dict[str, Any], src: str, rid: int
    ) -> None:
        p = self.player
        if kind == "GET_STATUS":
            self.send(w, TRANSPORT, src, NS_MEDIA, self.media_status(rid))
            return
        if kind == "LOAD":
            media = dict(data.get("media") or {})
            self.stop_fetch()
            self.player = p = Player()
            p.session_id = self.fetches + 1
            p.media = media
            p.active_tracks = list(data.get("activeTrackIds") or [])
            p.set_state("BUFFERING", float(data.get("currentTime") or 0.0))
            self.report.write(
                "load",
                media=media,
                current_time=data.get("currentTime"),
                active_track_ids=p.active_tracks,
                autoplay=data.get("autoplay"),
            )
            self.send(w, TRANSPORT, src, NS_MEDIA, self.media_status(rid))
            self.fetches += 1
            self.fetch = asyncio.create_task(self.play(media, bool(data.get("autoplay", True))))
            return
        if p.media is None or data.get("mediaSessionId") != p.session_id:
            invalid = {"type": "INVALID_REQUEST", "requestId": rid,
                       "reason": "INVALID_MEDIA_SESSION_ID"}  # fmt: skip
            self.send(w, TRANSPORT, src, NS_MEDIA, invalid)
            return
        if kind == "PAUSE":
            p.set_state("PAUSED")
        elif kind == "PLAY":
            p.set_state("PLAYING")
        elif kind == "SEEK":
            p.set_state(p.state, float(data.get("currentTime") or 0.0))
        elif kind == "STOP":
            self.stop_fetch()
            p.idle_reason = "CANCELLED"
            p.set_state("IDLE")
        else:
            return
        self.report.write("command", type=kind, payload=data)
        self.send(w, TRANSPORT, src, NS_MEDIA, self.media_status(rid))
        self.broadcast_media()

    def stop_fetch(self) -> None:
        if self.fetch is not None and not self.fetch.done():
            self.fetch.cancel()
        self.fetch = None

    # -- playing: fetch what was loaded ------------------------------------------------------

    async def play(self, media: dict[str, Any], autoplay: bool) -> None:
        url = str(media.get("contentId", ""))
        n = self.fetches
        timeout = aiohttp.ClientTimeout(total=self.fetch_timeout)
        headers = {"User-Agent": USER_AGENT}
        try:
            async with aiohttp.ClientSession(timeout=timeout, headers=headers) as http:
                for track in media.get("tracks") or []:
                    await self.fetch_track(http, track)
                async with http.head(url) as r:
                    head = {"status": r.status, "content_type": r.headers.get("Content-Type"),
                            "accept_ranges": r.headers.get("Accept-Ranges"),
                            "length": r.headers.get("Content-Length")}  # fmt: skip
                self.report.write("head", url=url, **head)
                if head["status"] != 200:
                    raise RuntimeError(f"HEAD answered {head['status']}")
                if head["accept_ranges"] == "bytes" and head["length"]:
                    result = await self.fetch_ranges(http, url, int(head["length"]), n, autoplay)
                else:
                    result = await self.fetch_whole(http, url, n, autoplay)
            self.report.write("fetched", url=url, **result)
        except asyncio.CancelledError:
            self.report.write("fetch_cancelled", url=url)
            raise
        except (aiohttp.ClientError, OSError, RuntimeError, TimeoutError) as e:
            self.report.write("fetch_failed", url=url, error=f"{type(e).__name__}: {e}")
            self.player.idle_reason = "ERROR"
            self.player.set_state("IDLE")
            self.broadcast_media()

    def started(self, autoplay: bool) -> None:
        if self.player.state == "BUFFERING":
            self.player.set_state("PLAYING" if autoplay else "PAUSED")
            self.broadcast_media()

    async def fetch_track(self, http: aiohttp.ClientSession, track: dict[str, Any]) -> None:
        url = str(track.get("trackContentId", ""))
        async with http.get(url, headers={"Origin": "https://www.gstatic.com"}) as r:
            body = await r.text()
            self.report.write(
                "track",
                url=url,
                status=r.status,
                content_type=r.headers.get("Content-Type"),
                cors=r.headers.get("Access-Control-Allow-Origin"),
                body=body[:4000],
            )

    async def fetch_ranges(
        self, http: aiohttp.ClientSession, url: str, size: int, n: int, autoplay: bool
    ) -> dict[str, Any]:
        digest = hashlib.sha256()
        out = self.report.dir / f"media-{n}.bin"
        requests = 0
        offset = 0
        with out.open("wb") as f:
            while offset < size:
                last = min(size, offset + CHUNK) - 1
                async with http.get(url, headers={"Range": f"bytes={offset}-{last}"}) as r:
                    if r.status != 206:
                        raise RuntimeError(f"Range request answered {r.status}")
                    want = f"bytes {offset}-{last}/{size}"
                    if r.headers.get("Content-Range") != want:
                        raise RuntimeError(f"Content-Range {r.headers.get('Content-Range')}")
                    data = await r.read()
                requests += 1
                digest.update(data)
                f.write(data)
                offset += len(data)
                if requests == 1:
                    self.started(autoplay)
        return {"mode": "ranges", "bytes": offset, "sha256": digest.hexdigest(),
                "requests": requests, "file": str(out)}  # fmt: skip

    async def fetch_whole(
        self, http: aiohttp.ClientSession, url: str, n: int, autoplay: bool
    ) -> dict[str, Any]:
        out = self.report.dir / f"media-{n}.bin"
        digest = hashlib.sha256()
        total = 0
        async with http.get(url, headers={"Range": "bytes=0-"}) as r:
            if r.status not in (200, 206):
                raise RuntimeError(f"GET answered {r.status}")
            content_type = r.headers.get("Content-Type")
            with out.open("wb") as f:
                async for chunk in r.content.iter_chunked(CHUNK):
                    if total == 0:
                        self.started(autoplay)
                    digest.update(chunk)
                    f.write(chunk)
                    total += len(chunk)
        probe = await asyncio.to_thread(ffprobe, out)
        return {"mode": "whole", "bytes": total, "sha256": digest.hexdigest(),
                "content_type": content_type, "file": str(out), "probe": probe}  # fmt: skip


def ffprobe(path: Path) -> dict[str, Any]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
         str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if result.returncode != 0:
        return {"error": result.stderr.strip()[-500:]}
    data = json.loads(result.stdout)
    return {
        "format": (data.get("format") or {}).get("format_name"),
        "duration": (data.get("format") or {}).get("duration"),
        "streams": [
            {"type": s.get("codec_type"), "codec": s.get("codec_name"),
             "profile": s.get("profile"), "level": s.get("level")}
            for s in data.get("streams") or []
        ],
    }  # fmt: skip


async def advertise(address: str, name: str, uid: uuidlib.UUID, model: str) -> Any:
    from zeroconf import IPVersion, ServiceInfo
    from zeroconf.asyncio import AsyncZeroconf

    zc = AsyncZeroconf(interfaces=[address], ip_version=IPVersion.V4Only)
    info = ServiceInfo(
        "_googlecast._tcp.local.",
        f"Chromecast-{uid.hex}._googlecast._tcp.local.",
        addresses=[socket.inet_aton(address)],
        port=8009,
        properties={
            "id": uid.hex,
            "md": model,
            "fn": name,
            "ve": "05",
            "ca": "4101",
            "st": "0",
            "rs": "",
            "ic": "/setup/icon.png",
            "nf": "1",
        },  # fmt: skip
        server=f"{uid.hex}.local.",
    )
    await zc.async_register_service(info)
    return zc, info


async def main_async(args: argparse.Namespace) -> None:
    report = Report(Path(args.report))
    uid = uuidlib.UUID(args.uuid) if args.uuid else uuidlib.uuid4()
    cert, key = self_signed(report.dir, args.name)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    receiver = Receiver(args.address, args.name, report, args.fetch_timeout)
    server = await asyncio.start_server(receiver.serve, args.address, 8009, ssl=ctx)
    zc, info = await advertise(args.address, args.name, uid, args.model)
    report.write("ready", address=args.address, uuid=str(uid), name=args.name)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await zc.async_unregister_service(info)
    await zc.async_close()
    server.close()
    report.write("stopped")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--address", required=True)
    p.add_argument("--name", default="Test TV")
    p.add_argument("--model", default="Chromecast")
    p.add_argument("--uuid", default=None)
    p.add_argument("--report", required=True)
    p.add_argument("--fetch-timeout", type=float, default=120.0)
    args = p.parse_args(argv)
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
