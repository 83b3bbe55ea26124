"""Casting end to end against the CASTV2 receiver double, through the real supervisor's API.

The supervisor runs in the appliance's namespace with Chromecast discovery on its veth address
only; the double runs in the TV's namespace (tests/cast_lab.py). The double fetches what it is
told to play from the supervisor's stream URLs, as a Chromecast would, and reports.
"""

from __future__ import annotations

import hashlib
import http.cookiejar
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sokoul_appliance.cast.compat import moov_first
from sokoul_appliance.passwords import hash_password
from tests.cast_lab import CastBench, events_of, make_root, wait_for
from tests.media_samples import SRT, make_video, need_ffmpeg
from tests.netns import Lab

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PASSWORD = "correct horse battery"


def need_root_and_tools() -> None:
    import os

    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    for tool in ("ip", "openssl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    need_ffmpeg()


def faststart(src: Path, dst: Path) -> Path:
    """The same streams with the moov box first (what a Chromecast plays directly)."""
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(src),
         "-c", "copy", "-movflags", "+faststart", str(dst)],
        check=True, timeout=60,
    )  # fmt: skip
    src.unlink()
    return dst


class Api:
    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        self.csrf = ""

    def call(
        self, method: str, path: str, body: Any = None, timeout: float = 60
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with self.opener.open(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def login(self) -> None:
        _, sess = self.call("GET", "/api/session")
        self.csrf = sess["csrf_token"]
        status, body = self.call("POST", "/api/login", {"username": "admin", "password": PASSWORD})
        assert status == 200, body
        self.csrf = body["csrf_token"]

    def chromecast(self, uid: str) -> dict[str, Any] | None:
        _, d = self.call("GET", "/api/devices")
        return next((c for c in d["chromecasts"] if c["id"] == uid), None)


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[tuple[CastBench, Path]]:
    need_root_and_tools()
    root, lib = make_root(tmp_path)
    with Lab() as lab:
        b = CastBench(lab, tmp_path, root, hash_password(PASSWORD))
        try:
            yield b, lib
        finally:
            b.close()


def library_items(api: Api, n: int) -> list[dict[str, Any]]:
    def ready() -> list[dict[str, Any]] | None:
        items = api.call("GET", "/api/library")[1]["items"]
        if len(items) == n and all(i.get("duration") for i in items):
            return list(items)
        return None

    return list(wait_for(ready, 60, f"{n} scanned library item(s)"))


def test_cast_direct_play_with_subtitles_and_control(bench: tuple[CastBench, Path]) -> None:
    b, lib = bench
    folder = lib / "Movies/Big Buck Bunny (2008)"
    movie = faststart(
        make_video(folder / "tmp.mp4", seconds=4.0),
        folder / "Big.Buck.Bunny.2008.mp4",
    )
    (folder / "Big.Buck.Bunny.2008.en.srt").write_text(SRT)
    uid, report = b.start_double("Den TV", model="Chromecast Ultra")
    b.start_supervisor()
    api = Api(b.url)
    api.login()
    (item,) = library_items(api, 1)
    dev = wait_for(lambda: api.chromecast(uid), 30, "the double to be discovered")
    assert (dev["name"], dev["model"], dev["state"]) == ("Den TV", "Chromecast Ultra", "available")
    assert dev["address"] == f"{b.tv_ip}:8009"

    status, body = api.call("POST", "/api/cast", {"device": uid, "item": item["id"]})
    assert status == 200, body
    url = f"http://{b.app_ip}:{b.port}/stream/{item['id']}?profile=chromecast"
    assert body["cast"]["mode"] == "direct" and body["cast"]["url"] == url

    (load,) = wait_for(lambda: events_of(report, "load"), 20, "LOAD at the double")
    media = load["media"]
    assert media["contentId"] == url
    assert media["contentType"] == "video/mp4"
    assert media["streamType"] == "BUFFERED"
    (track,) = media["tracks"]
    sub_url = f"http://{b.app_ip}:{b.port}/subtitles/{item['id']}/0.vtt"
    assert (track["trackContentId"], track["trackContentType"]) == (sub_url, "text/vtt")
    assert track["language"] == "en" and load["active_track_ids"] == [track["trackId"]]

    # the double fetched the subtitle (WebVTT, CORS) and the whole file with Range requests
    (sub,) = wait_for(lambda: events_of(report, "track"), 20, "the subtitle fetch")
    assert sub["status"] == 200 and sub["cors"] == "*"
    assert sub["content_type"].startswith("text/vtt")
    assert sub["body"].startswith("WEBVTT") and "00:00:00.500 --> 00:00:01.500" in sub["body"]
    (fetched,) = wait_for(lambda: events_of(report, "fetched"), 60, "the media fetch")
    assert fetched["mode"] == "ranges"
    assert fetched["requests"] >= 1 and fetched["bytes"] == movie.stat().st_size
    assert fetched["sha256"] == hashlib.sha256(movie.read_bytes()).hexdigest()

    def state(want: str) -> Any:
        d = api.chromecast(uid)
        return d if d and d["cast"] and d["cast"]["player_state"] == want else None

    wait_for(lambda: state("PLAYING"), 20, "PLAYING in the API")

    status, body = api.call("POST", f"/api/cast/{uid}/pause", {})
    assert status == 200, body
    paused = wait_for(lambda: state("PAUSED"), 10, "PAUSED")
    t_paused = paused["cast"]["current_time"]
    time.sleep(1.0)
    assert state("PAUSED")["cast"]["current_time"] == t_paused  # the clock stopped

    status, body = api.call("POST", f"/api/cast/{uid}/seek", {"value": 3})
    assert status == 200, body
    wait_for(lambda: (s := state("PAUSED")) and s["cast"]["current_time"] == 3.0, 10, "seek to 3")
    status, body = api.call("POST", f"/api/cast/{uid}/play", {})
    assert status == 200
    wait_for(lambda: state("PLAYING"), 10, "PLAYING again")
    status, body = api.call("POST", f"/api/cast/{uid}/volume", {"value": 0.25})
    assert status == 200
    wait_for(lambda: (api.chromecast(uid) or {}).get("volume") == 0.25, 10, "volume 0.25")
    status, body = api.call("POST", f"/api/cast/{uid}/stop", {})
    assert status == 200
    stopped = wait_for(lambda: state("IDLE"), 10, "IDLE after STOP")
    assert stopped["cast"]["idle_reason"] == "CANCELLED"

    commands = [e["type"] for e in events_of(report, "command")]
    assert commands == ["PAUSE", "SEEK", "PLAY", "STOP"]
    (seek,) = [e for e in events_of(report, "command") if e["type"] == "SEEK"]
    assert seek["payload"]["currentTime"] == 3
    assert [e["level"] for e in events_of(report, "volume")] == [0.25]

    # bad requests are refused with a reason
    assert api.call("POST", f"/api/cast/{uid}/rewind", {})[0] == 404
    assert api.call("POST", f"/api/cast/{uid}/volume", {"value": 3})[0] == 400
    assert api.call("POST", "/api/cast", {"device": "nope", "item": item["id"]})[0] == 404
    assert api.call("POST", "/api/cast", {"device": uid, "item": "it-missing"})[0] == 404
    metrics = urllib.request.urlopen(b.url + "/metrics", timeout=10).read().decode()
    assert 'sokoul_cast_casts_started_total{mode="direct"} 1.0' in metrics
    assert "sokoul_cast_devices_discovered 1.0" in metrics


def test_hevc_mkv_is_transcoded_to_fragmented_mp4(bench: tuple[CastBench, Path]) -> None:
    b, lib = bench
    make_video(
        lib / "Movies/Sintel (2010)/Sintel.2010.2160p.HEVC.mkv",
        seconds=3.0,
        vcodec="libx265",
        acodec="libopus",
    )
    uid, report = b.start_double("Bedroom TV")
    b.start_supervisor()
    api = Api(b.url)
    api.login()
    (item,) = library_items(api, 1)
    assert item["video_codec"] == "hevc"
    wait_for(lambda: api.chromecast(uid), 30, "the double to be discovered")
    status, body = api.call("POST", "/api/cast", {"device": uid, "item": item["id"]})
    assert status == 200, body
    assert body["cast"]["mode"] == "transcode"
    assert body["cast"]["content_type"] == "video/mp4"
    (load,) = wait_for(lambda: events_of(report, "load"), 20, "LOAD at the double")
    assert load["media"]["contentType"] == "video/mp4"
    assert load["media"]["streamType"] == "BUFFERED"
    assert "tracks" not in load["media"]  # no subtitles on this item
    (fetched,) = wait_for(lambda: events_of(report, "fetched"), 120, "the transcoded stream")
    assert fetched["mode"] == "whole" and fetched["content_type"] == "video/mp4"
    probe = fetched["probe"]
    assert "error" not in probe, probe
    assert probe["format"].startswith("mov,mp4")
    streams = {s["type"]: s for s in probe["streams"]}
    assert streams["video"]["codec"] == "h264" and streams["video"]["level"] <= 41
    assert streams["audio"]["codec"] == "aac"
    assert float(probe["duration"]) == pytest.approx(3.0, abs=0.3)
    # fragmented: moov first with an empty sample table, then moof/mdat pairs
    data = Path(fetched["file"]).read_bytes()
    assert data[4:8] == b"ftyp" and b"moof" in data and b"mvex" in data
    wait_for(
        lambda: ((api.chromecast(uid) or {}).get("cast") or {}).get("player_state") == "PLAYING",
        20,
        "PLAYING",
    )
    # a seek in a converted stream starts the conversion again at that time
    status, body = api.call("POST", f"/api/cast/{uid}/seek", {"value": 1.5})
    assert status == 200, body
    loads = wait_for(
        lambda: (ls := events_of(report, "load")) and len(ls) == 2 and ls, 20, "re-LOAD"
    )
    assert loads[1]["media"]["contentId"].endswith("&t=1.500")
    (_, again) = wait_for(lambda: (f := events_of(report, "fetched")) and len(f) == 2 and f, 120,
                          "the stream from 1.5 s")  # fmt: skip
    assert float(again["probe"]["duration"]) == pytest.approx(1.5, abs=0.4)
    metrics = urllib.request.urlopen(b.url + "/metrics", timeout=10).read().decode()
    assert 'sokoul_cast_casts_started_total{mode="transcode"} 1.0' in metrics


def test_a_device_that_disappears_mid_cast_is_reported(bench: tuple[CastBench, Path]) -> None:
    b, lib = bench
    folder = lib / "Movies/Big Buck Bunny (2008)"
    faststart(make_video(folder / "tmp.mp4", seconds=4.0), folder / "Big.Buck.Bunny.2008.mp4")
    uid, report = b.start_double("Kitchen TV")
    b.start_supervisor()
    api = Api(b.url)
    api.login()
    (item,) = library_items(api, 1)
    wait_for(lambda: api.chromecast(uid), 30, "the double to be discovered")
    status, body = api.call("POST", "/api/cast", {"device": uid, "item": item["id"]})
    assert status == 200, body
    wait_for(lambda: events_of(report, "fetched"), 60, "the media fetch")

    b.kill_double(uid)  # power cut: no goodbye
    started = time.monotonic()
    lost = wait_for(
        lambda: (d := api.chromecast(uid)) and d["state"] == "lost" and d, 40, "state lost"
    )
    assert time.monotonic() - started < 40
    assert "Kitchen TV stopped answering" in lost["detail"]
    _, devices = api.call("GET", "/api/devices")
    assert devices["cast"]["state"] == "degraded" and "Kitchen TV" in devices["cast"]["detail"]
    # nothing hangs: every control answers at once with the reason
    for action, value in (("pause", None), ("seek", 2), ("stop", None)):
        t0 = time.monotonic()
        status, body = api.call("POST", f"/api/cast/{uid}/{action}", {"value": value})
        assert status == 409, body
        assert "stopped answering" in body["error"]["message"]
        assert time.monotonic() - t0 < 2
    t0 = time.monotonic()
    status, body = api.call("POST", "/api/cast", {"device": uid, "item": item["id"]})
    assert status in (404, 504), body  # gone from discovery, or refused within the timeout
    assert time.monotonic() - t0 < 35
    metrics = urllib.request.urlopen(b.url + "/metrics", timeout=10).read().decode()
    assert 'sokoul_cast_errors_total{kind="lost"} 1.0' in metrics
    # the supervisor still stops cleanly and promptly (pychromecast's threads end)
    assert b.supervisor is not None
    t0 = time.monotonic()
    b.lab.stop(b.supervisor)
    assert b.supervisor.returncode == 0, b.log_tail()
    assert time.monotonic() - t0 < 10


def test_what_the_profile_cannot_say_is_checked_at_cast_time(
    bench: tuple[CastBench, Path],
) -> None:
    """MP4 H.264/AAC that a Default Media Receiver still cannot take as it is: the index at the
    end (remuxed: the video copied, fragmented MP4), and H.264 level 5.1 (in MKV, which would
    be remuxed with the video copied: encoded again at 4.1 instead)."""
    b, lib = bench
    late = make_video(lib / "Movies/Late Index (2001)/Late.Index.2001.mp4", seconds=3.0)
    high = lib / "Movies/High Level (2002)/High.Level.2002.mkv"
    faststart(make_video(high.with_name("tmp.mp4"), seconds=3.0), high.with_name("tmp2.mp4"))
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
         "-i", str(high.with_name("tmp2.mp4")), "-c:a", "copy", "-c:v", "libx264",
         "-preset", "ultrafast", "-level", "5.1", str(high)],
        check=True, timeout=60,
    )  # fmt: skip
    high.with_name("tmp2.mp4").unlink()
    # the premises: ffmpeg writes the index last unless asked; the level is 5.1
    assert moov_first(late) is False
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=level",
         "-of", "csv=p=0", str(high)],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    assert probe.stdout.strip() == "51"
    uid, report = b.start_double("Office TV")
    b.start_supervisor()
    api = Api(b.url)
    api.login()
    items = {i["title"]: i for i in library_items(api, 2)}
    wait_for(lambda: api.chromecast(uid), 30, "the double to be discovered")

    status, body = api.call("POST", "/api/cast", {"device": uid, "item": items["Late Index"]["id"]})
    assert status == 200, body
    assert body["cast"]["mode"] == "remux" and body["cast"]["url"].endswith("&transcode=1")
    (first,) = wait_for(lambda: events_of(report, "fetched"), 60, "the remuxed stream")
    streams = {s["type"]: s for s in first["probe"]["streams"]}
    assert first["mode"] == "whole" and first["probe"]["format"].startswith("mov,mp4")
    assert streams["video"]["codec"] == "h264" and streams["audio"]["codec"] == "aac"
    data = Path(first["file"]).read_bytes()
    assert b"moof" in data and data.index(b"moov") < data.index(b"mdat")

    status, body = api.call("POST", "/api/cast", {"device": uid, "item": items["High Level"]["id"]})
    assert status == 200, body
    assert body["cast"]["mode"] == "transcode"
    assert body["cast"]["url"].endswith("&transcode=video")
    second = wait_for(lambda: (f := events_of(report, "fetched")) and len(f) == 2 and f[1],
                      120, "the re-encoded stream")  # fmt: skip
    video = next(s for s in second["probe"]["streams"] if s["type"] == "video")
    assert video["codec"] == "h264" and video["level"] <= 41
