"""Pure pieces of the cast room: the Chromecast profile's decisions and ffmpeg target, the
moov-first check, addressing, and the manager's device state machine (fed as pychromecast's
threads would feed it, without any network)."""

from __future__ import annotations

import asyncio
import struct
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest
from prometheus_client import CollectorRegistry

from sokoul_appliance.bus import EventBus
from sokoul_appliance.cast.addressing import (
    discovery_addresses,
    local_address_for,
    media_url,
    panel_port_for,
    parse_addresses,
)
from sokoul_appliance.cast.compat import moov_first
from sokoul_appliance.cast.connection import DeviceInfo
from sokoul_appliance.cast.manager import CastConfig, CastManager, CastRequestError, _Cast
from sokoul_appliance.cast.threads import DaemonThreads
from sokoul_appliance.events import (
    CastDeviceChanged,
    CastDeviceRemoved,
    ManagerStateChanged,
    SettingsChanged,
)
from sokoul_appliance.host import Host
from sokoul_appliance.library.probe import AudioStream, MediaInfo
from sokoul_appliance.network.roles import NetworkConfig, Port
from sokoul_appliance.stream.profiles import choose_profile, load_profiles
from sokoul_appliance.stream.source import SourceRegistry
from sokoul_appliance.stream.transcode import (
    DIRECT,
    REMUX,
    TRANSCODE,
    SoftwareEncoder,
    decide,
    ffmpeg_argv,
)

PROFILES = load_profiles()
CHROMECAST = next(p for p in PROFILES if p.name == "chromecast")
CRKEY_UA = (
    "Mozilla/5.0 (X11; Linux armv7l) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/114.0.5735.342 Safari/537.36 CrKey/1.56.500000"
)


def _media(vcodec: str = "h264", acodec: str = "aac", height: int = 1080) -> MediaInfo:
    return MediaInfo(
        container="mov,mp4,m4a,3gp,3g2,mj2",
        duration=60.0,
        bitrate=5_000_000,
        video_codec=vcodec,
        width=height * 16 // 9,
        height=height,
        pix_fmt="yuv420p",
        audio=(AudioStream(index=1, codec=acodec, channels=2),),
    )


# ---- the profile ---------------------------------------------------------------------------


def test_chromecasts_are_recognised_by_their_user_agent() -> None:
    assert choose_profile(PROFILES, CRKEY_UA).name == "chromecast"
    assert CHROMECAST.subtitle_format == "vtt"
    assert CHROMECAST.mime_for("mp4", "x") == "video/mp4"
    assert CHROMECAST.mime_for("vtt", "x") == "text/vtt"


@pytest.mark.parametrize(
    ("media", "container", "reencode", "mode", "copy_audio"),
    [
        (_media(), "mp4", False, DIRECT, False),
        (_media(), "matroska", False, REMUX, True),  # H.264/AAC in MKV: new container only
        (_media(acodec="opus"), "matroska", False, REMUX, False),  # audio to AAC
        (_media(vcodec="hevc"), "matroska", False, TRANSCODE, True),
        (_media(vcodec="hevc"), "mp4", False, TRANSCODE, True),
        (_media(height=2160), "mp4", False, TRANSCODE, True),  # above 1080p
        (_media(), "mp4", True, TRANSCODE, True),  # H.264 above level 4.1
    ],
)
def test_what_a_default_media_receiver_gets(
    media: MediaInfo, container: str, reencode: bool, mode: str, copy_audio: bool
) -> None:
    plan = decide(CHROMECAST, media, container, force=reencode, reencode=reencode)
    assert (plan.mode, plan.copy_audio) == (mode, copy_audio)


def test_the_chromecast_target_is_fragmented_mp4() -> None:
    plan = decide(CHROMECAST, _media(vcodec="hevc"), "matroska")
    argv = ffmpeg_argv(Path("/m/a.mkv"), plan, CHROMECAST.transcode, None, SoftwareEncoder())
    assert argv[argv.index("-movflags") + 1] == "frag_keyframe+empty_moov+default_base_moof"
    assert argv[argv.index("-f") + 1] == "mp4" and argv[-1] == "pipe:1"
    assert argv[argv.index("-c:v") + 1] == "libx264"
    assert argv[argv.index("-level") + 1] == "4.1"
    generic = next(p for p in PROFILES if p.name == "generic")
    ts = ffmpeg_argv(Path("/m/a.mkv"), plan, generic.transcode, None, SoftwareEncoder())
    assert "-movflags" not in ts and ts[ts.index("-f") + 1] == "mpegts"


# ---- moov first ----------------------------------------------------------------------------


def _box(kind: bytes, payload: bytes = b"", large: bool = False) -> bytes:
    if large:
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def test_moov_first(tmp_path: Path) -> None:
    ftyp = _box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2avc1mp41")
    good = tmp_path / "good.mp4"
    good.write_bytes(ftyp + _box(b"moov", b"\x00" * 40) + _box(b"mdat", b"\x01" * 100))
    late = tmp_path / "late.mp4"
    late.write_bytes(ftyp + _box(b"free") + _box(b"mdat", b"\x01" * 100, large=True)
                     + _box(b"moov", b"\x00" * 40))  # fmt: skip
    large_first = tmp_path / "large.mp4"
    large_first.write_bytes(ftyp + _box(b"free", b"\x00" * 9, large=True) + _box(b"moov"))
    junk = tmp_path / "junk.mkv"
    junk.write_bytes(b"\x1a\x45\xdf\xa3" + b"\x00" * 60)
    assert moov_first(good) is True
    assert moov_first(late) is False
    assert moov_first(large_first) is True
    assert moov_first(junk) is None


# ---- addressing ----------------------------------------------------------------------------


def test_addressing() -> None:
    assert local_address_for("127.0.0.1") == "127.0.0.1"  # a UDP connect: no packet sent
    listen: list[tuple[str | None, int]] = [("127.0.0.1", 8080), ("10.0.1.1", 80)]
    assert panel_port_for("10.0.1.1", listen) == 80
    assert panel_port_for("10.0.9.9", listen) is None
    assert panel_port_for("10.0.9.9", [("127.0.0.1", 8080), (None, 8081)]) == 8081
    assert panel_port_for("10.0.9.9", [("0.0.0.0", 81)]) == 81
    assert media_url("10.0.1.1", 80, "/stream/it-1") == "http://10.0.1.1:80/stream/it-1"
    assert media_url("fd00::1", 80, "/x") == "http://[fd00::1]:80/x"
    assert parse_addresses(None) is None
    assert parse_addresses("10.0.1.1, 192.168.1.20") == ("10.0.1.1", "192.168.1.20")
    with pytest.raises(ValueError):
        parse_addresses("eth0")


def test_discovery_addresses_follow_the_network_roles() -> None:
    config = NetworkConfig(
        internet=Port("internet", "nosuchif0", None, None),
        streaming=Port("streaming", "nosuchif1", None, None),
        internet_mode="dhcp",
        internet_address=None,
        internet_gateway=None,
        internet_dns=(),
        streaming_address="10.0.1.1/24",
        nat_streaming=False,
        dlna_serve_lan=False,
    )
    assert discovery_addresses(None) == []
    assert discovery_addresses(config) == ["10.0.1.1"]


# ---- the manager, fed as pychromecast's threads would ----------------------------------------


class FakeConnection:
    def __init__(self) -> None:
        self.closed = False
        self.cast: Any = None
        self.closes = 0

    def close(self) -> None:
        self.closes += 1


INFO = DeviceInfo("5c1f1d7e-3b0a-4f7b-9a3e-2f6f2f0f0c11", "Den TV", "Chromecast", "10.0.1.50",
                  8009)  # fmt: skip


@pytest.fixture
async def manager(tmp_path: Path) -> Any:
    registry = CollectorRegistry()
    m = CastManager(
        Host(tmp_path), EventBus(), registry, None, None,  # type: ignore[arg-type]
        CastConfig(),
    )  # fmt: skip
    await m.start()
    try:
        yield m, registry
    finally:
        await m.stop()


async def test_a_simulated_board_looks_for_nothing(manager: Any) -> None:
    m, registry = manager
    assert m._discovery is None  # no zeroconf, no mDNS from this machine
    state, detail = m.status()
    assert state == "not_configured" and "simulated board" in detail
    assert registry.get_sample_value("sokoul_cast_devices_discovered") == 0


async def test_device_life_and_a_lost_connection(manager: Any) -> None:
    m, registry = manager
    m._state = ("ok", "Looking for Chromecasts on 10.0.1.1.")
    with (
        m.bus.subscribe(CastDeviceChanged, CastDeviceRemoved) as sub,
        m.bus.subscribe(ManagerStateChanged) as states,
    ):
        # a report from zeroconf's thread lands on the loop
        m._found_threadsafe(INFO)
        event = await asyncio.wait_for(sub.get(), 2)
        assert event.device["name"] == "Den TV" and event.device["state"] == "available"
        assert registry.get_sample_value("sokoul_cast_devices_discovered") == 1
        assert m.status() == ("ok", "Looking for Chromecasts on 10.0.1.1. 1 found.")

        dev = m._devices[INFO.uuid]
        conn = FakeConnection()
        dev.conn, dev.state = conn, "casting"
        dev.cast = _Cast("it-1", "Film", "transcode", "http://10.0.1.1/stream/it-1", "video/mp4",
                         None, 60.0, offset=30.0)  # fmt: skip
        m._media(INFO.uuid, conn, {"player_state": "PLAYING", "current_time": 12.5,
                                   "duration": 60.0, "session": 1})  # fmt: skip
        playing = (await sub.get()).device
        assert playing["state"] == "casting"
        # a converted stream restarted at 30 s: the receiver's 12.5 s is 42.5 s into the film
        assert playing["cast"]["player_state"] == "PLAYING"
        assert playing["cast"]["current_time"] == 42.5 and playing["cast"]["duration"] == 60.0
        m._connection(INFO.uuid, conn, "LOST")
        assert (await sub.get()).device["state"] == "reconnecting"
        m._connection(INFO.uuid, conn, "CONNECTED")
        assert (await sub.get()).device["state"] == "casting"
        m._connection(INFO.uuid, object(), "DISCONNECTED")  # an old connection: ignored
        assert dev.state == "casting"
        m._connection(INFO.uuid, conn, "DISCONNECTED")
        lost = (await sub.get()).device
        assert lost["state"] == "lost" and "Den TV stopped answering" in lost["detail"]
        assert registry.get_sample_value("sokoul_cast_errors_total", {"kind": "lost"}) == 1
        assert m.status()[0] == "degraded"
        seen = [states.queue.get_nowait() for _ in range(states.queue.qsize())]
        assert seen[-1] == ManagerStateChanged("cast", *m.status())  # the Home page's card
        assert dev.conn is None and conn.closed

        # nothing waits on a lost device
        with pytest.raises(CastRequestError) as e:
            await asyncio.wait_for(m.control(INFO.uuid, "pause"), 1)
        assert e.value.status == 409 and "stopped answering" in str(e.value)
        with pytest.raises(CastRequestError) as e:
            await m.control(INFO.uuid, "rewind")
        assert e.value.status == 404
        with pytest.raises(CastRequestError) as e:
            await m.control(INFO.uuid, "volume", 1.5)
        assert e.value.status == 400
        with pytest.raises(CastRequestError) as e:
            await m.control("nope", "pause")
        assert e.value.status == 404

        # it leaves the network: a lost device stays listed (with why), others go
        other = DeviceInfo("0b4f1d7e-3b0a-4f7b-9a3e-2f6f2f0f0c12", "Attic", "Chromecast Audio",
                           "10.0.1.51", 8009)  # fmt: skip
        m._found(other)
        await sub.get()
        m._removed(other.uuid)
        removed = await sub.get()
        assert isinstance(removed, CastDeviceRemoved) and removed.device_id == other.uuid
        m._removed(INFO.uuid)
        gone = (await sub.get()).device
        assert gone["state"] == "lost" and gone["present"] is False
        assert registry.get_sample_value("sokoul_cast_devices_discovered") == 0


async def test_a_cast_needs_a_known_device_and_item(manager: Any) -> None:
    m, _ = manager
    with pytest.raises(CastRequestError) as e:
        await m.cast("nope", "it-abc")
    assert e.value.status == 404
    m._found(INFO)
    with pytest.raises(CastRequestError) as e:
        await m.cast(INFO.uuid, "../etc/passwd")
    assert e.value.status == 404


class FakeSource:
    name = "Film.2024.mp4"
    size = 10_000_000

    async def read(self, offset: int, length: int, timeout: float) -> bytes:
        return b"\0" * length


class FakeStream:
    def __init__(self) -> None:
        self.sources = SourceRegistry()


async def test_a_download_being_streamed_is_cast_as_it_is(tmp_path: Path) -> None:
    stream = FakeStream()
    stream_id = stream.sources.add(FakeSource())
    m = CastManager(
        Host(tmp_path), EventBus(), CollectorRegistry(), None, stream,  # type: ignore[arg-type]
        CastConfig(),
    )  # fmt: skip
    what, lang = await m._what_to_send(stream_id, subtitles=True)
    assert (what.mode, what.url, what.content_type) == (
        "growing",
        f"/stream/{stream_id}",
        "video/mp4",
    )
    assert what.title == "Film.2024.mp4" and what.subtitles is None and lang is None
    with pytest.raises(CastRequestError) as e:
        await m._what_to_send("dl-0123456789abcdef", subtitles=True)
    assert e.value.status == 404 and "Play" in str(e.value)


class FakeDiscovery:
    made: ClassVar[list[FakeDiscovery]] = []

    def __init__(self, addresses: tuple[str, ...], on_found: Any, on_removed: Any) -> None:
        self.addresses = addresses
        self.on_found = on_found
        self.started = self.stopped = False
        FakeDiscovery.made.append(self)

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True


async def test_discovery_follows_the_streaming_network(tmp_path: Path) -> None:
    """On a live host the interfaces come from the network roles and the LAN setting, and a
    change restarts discovery on the new ones (a fake discovery: no socket in this test)."""
    FakeDiscovery.made.clear()
    now: list[str] = []
    bus = EventBus()
    m = CastManager(
        Host(tmp_path), bus, CollectorRegistry(), None, None,  # type: ignore[arg-type]
        CastConfig(), addresses=lambda: list(now), live=True,
        discovery_factory=FakeDiscovery,
    )  # fmt: skip
    await m.start()
    try:
        assert m.status()[0] == "not_configured" and "No streaming network" in m.status()[1]
        assert FakeDiscovery.made == []
        now[:] = ["10.0.1.1"]
        bus.publish(ManagerStateChanged("network", "ok", "streaming on eth1"))
        for _ in range(50):
            if FakeDiscovery.made:
                break
            await asyncio.sleep(0.02)
        (first,) = FakeDiscovery.made
        assert first.addresses == ("10.0.1.1",) and first.started
        assert m.status() == ("ok", "Looking for Chromecasts on 10.0.1.1. 0 found.")
        first.on_found(INFO)  # as from zeroconf's thread
        await asyncio.sleep(0.05)
        assert [d["name"] for d in m.snapshot()] == ["Den TV"]
        bus.publish(SettingsChanged(("thermal.throttle_c",)))  # not about interfaces
        bus.publish(ManagerStateChanged("storage", "ok", ""))
        await asyncio.sleep(0.05)
        assert len(FakeDiscovery.made) == 1
        now[:] = ["10.0.1.1", "192.168.1.20"]  # the LAN too
        bus.publish(SettingsChanged(("dlna.serve_lan",)))
        for _ in range(50):
            if len(FakeDiscovery.made) == 2:
                break
            await asyncio.sleep(0.02)
        second = FakeDiscovery.made[1]
        assert first.stopped and second.addresses == ("10.0.1.1", "192.168.1.20")
        assert m.snapshot() == []  # found again on the new interfaces, if still there
    finally:
        await m.stop()
    assert FakeDiscovery.made[-1].stopped


async def test_blocking_calls_run_on_daemon_threads() -> None:
    pool = DaemonThreads("t")
    loop = asyncio.get_running_loop()

    def where() -> tuple[str, bool]:
        t = threading.current_thread()
        return t.name, t.daemon

    assert await loop.run_in_executor(pool, where) == ("t-call", True)

    def fail() -> None:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await loop.run_in_executor(pool, fail)
    stuck = threading.Event()
    with pytest.raises(TimeoutError):  # the loop stops waiting; the thread cannot hold up exit
        await asyncio.wait_for(loop.run_in_executor(pool, stuck.wait, 5.0), 0.1)
    assert pool.running == 1
    stuck.set()
    pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(where)
