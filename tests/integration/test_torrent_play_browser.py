"""Play now on the Downloads page, in a real Chromium against the real supervisor.

The supervisor runs on the simulated board (its torrent engine downloads under the state dir and
listens on 127.0.0.1 only). A .torrent whose loopback tracker names a real aria2c seeder
(throttled, so the download is still running) is added through the page's file input; once the
engine reports the file playable the row shows "Play now"; clicking it puts a <video> on the
page whose source is /stream/dl-…, and the browser's range requests are answered 206 with the
seeder's bytes while the download is not finished. The Settings page's speed limits are then
saved and reach the engine live.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_panel_browser import (
    PASSWORD,
    Browser,
    SupervisorProcess,
    api_get,
    expect,
    go_page,
    new_page,
    shot,
    tid,
)
from tests.integration.test_torrent_engine import Aria2Seeder

lt_session = pytest.importorskip("sokoul_appliance.torrent.engine.lt_session")
pytestmark = [
    pytest.mark.skipif(shutil.which("aria2c") is None, reason="needs aria2c (apt)"),
    pytest.mark.timeout(240),
]
MiB = 1024 * 1024
PIECE = 256 * 1024
FILM = "Film/Film.2024.webm"
SIZE = 24 * MiB + 4321  # header 5 MiB + footer 1 MiB + prebuffer: playable long before done


class Tracker:
    """A loopback HTTP tracker: every announce answers with one peer, the seeder."""

    def __init__(self) -> None:
        self.seeder_port = 0
        tracker = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                peer = socket.inet_aton("127.0.0.1") + tracker.seeder_port.to_bytes(2, "big")
                body = b"d8:intervali60e5:peers6:" + peer + b"e"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/announce"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Film:
    """One file, random bytes (what is checked is that the right bytes reach the browser)."""

    def __init__(self, root: Path, tracker: str) -> None:
        self.root = root
        self.path = root / FILM
        self.path.parent.mkdir(parents=True)
        self.data = os.urandom(SIZE)
        self.path.write_bytes(self.data)
        torrent = lt_session.make_torrent(str(root / "Film"), PIECE, True, (tracker,))
        self.torrent_file = root / "film.torrent"
        self.torrent_file.write_bytes(torrent)


@pytest.fixture
def supervisor(work: Path) -> Iterator[SupervisorProcess]:
    from sokoul_appliance.passwords import hash_password

    state = work / "state"
    state.mkdir()
    (state / "first-boot.json").write_text(
        json.dumps({"completed": True, "hostname": "sokoul-play"})
    )
    (state / "preseed.json").write_text(
        json.dumps({"admin_password_hash": hash_password(PASSWORD)})
    )
    sup = SupervisorProcess(state, work / "supervisor.log")
    try:
        sup.start()
        yield sup
    finally:
        sup.stop()


def write(page: Any, sup: SupervisorProcess, method: str, path: str, body: Any) -> Any:
    csrf = api_get(page, sup, "/api/session")["csrf_token"]
    r = page.request.fetch(
        f"{sup.url}{path}",
        method=method,
        data=json.dumps(body),
        headers={"Content-Type": "application/json", "X-CSRF-Token": csrf},
    )
    assert r.ok, f"{method} {path}: {r.status} {r.text()}"
    return r.json()


def test_play_now_streams_a_downloading_file_into_the_video_element(
    browser: Browser, supervisor: SupervisorProcess, work: Path
) -> None:
    sup = supervisor
    tracker = Tracker()
    film = Film(work / "seed", tracker.url)
    seeder = Aria2Seeder(film, upload_limit="2M")  # type: ignore[arg-type]  # ~12 s in all
    tracker.seeder_port = seeder.port
    context, page, console = new_page(browser)
    streamed: list[dict[str, Any]] = []

    def on_response(resp: Any) -> None:
        if "/stream/dl-" in resp.url:
            streamed.append(
                {
                    "status": resp.status,
                    "range": resp.request.headers.get("range"),
                    "content_range": resp.headers.get("content-range"),
                }
            )

    page.on("response", on_response)
    try:
        page.goto(sup.url)
        expect(tid(page, "login-form")).to_be_visible()
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", PASSWORD)
        tid(page, "login-submit").click()
        expect(tid(page, "page-home")).to_have_attribute("data-loaded", "true")
        deadline = time.monotonic() + 60
        while api_get(page, sup, "/api/downloads")["state"] != "ok":
            assert time.monotonic() < deadline, "the torrent engine did not come up"
            time.sleep(0.3)

        # add the .torrent through the page
        go_page(page, "downloads")
        t0 = time.monotonic()
        tid(page, "input-torrent-file").set_input_files(str(film.torrent_file))
        tid(page, "download-add").click()
        expect(tid(page, "download-row")).to_have_count(1)

        # the page follows the engine live (no reload): progress and time left move, and
        # "Play now" appears by itself once the engine reports the file playable
        table = tid(page, "downloads-table")
        expect(table).to_have_attribute("data-live-updates", re.compile(r"[1-9]\d*"))
        expect(tid(page, "download-progress")).not_to_have_text(" 0 %", timeout=30_000)
        expect(tid(page, "download-play")).to_be_visible(timeout=60_000)
        playable_s = time.monotonic() - t0
        rows = api_get(page, sup, "/api/downloads")["torrents"]
        assert rows and rows[0]["playable"], rows
        tid(page, "download-play").click()
        video = tid(page, "download-video")
        expect(video).to_be_visible()
        src = video.get_attribute("src")
        assert src and src.startswith("/stream/dl-"), src
        expect(tid(page, "download-stream-link")).to_have_attribute("href", src)

        # the browser asked for ranges and got 206 answers
        deadline = time.monotonic() + 30
        while not any(r["status"] == 206 for r in streamed):
            assert time.monotonic() < deadline, f"no 206 for the video: {streamed}"
            page.wait_for_timeout(100)
        first_206_s = time.monotonic() - t0
        ok = next(r for r in streamed if r["status"] == 206)
        assert ok["range"] and ok["range"].startswith("bytes=")
        assert ok["content_range"].endswith(f"/{SIZE}")
        # the same bytes the browser got, with its own cookie jar, and the footer: the seeder's
        head = page.request.get(f"{sup.url}{src}", headers={"Range": "bytes=0-262143"})
        assert head.status == 206 and head.body() == film.data[:262144]
        tail = page.request.get(f"{sup.url}{src}", headers={"Range": f"bytes={SIZE - MiB}-"})
        assert tail.status == 206
        assert hashlib.sha256(tail.body()).digest() == hashlib.sha256(film.data[-MiB:]).digest()
        progress = api_get(page, sup, "/api/downloads")["torrents"][0]["progress"]
        assert progress < 1.0, "the download finished before the stream was checked"
        # pause shows Resume (the row says paused), resume shows Pause again
        tid(page, "download-pause").click()
        expect(tid(page, "download-resume")).to_be_visible()
        expect(tid(page, "download-state")).to_have_text("Paused")
        tid(page, "download-resume").click()
        expect(tid(page, "download-pause")).to_be_visible()
        shot(page, "panel-downloads-play-now")
        print(
            f"playable after {playable_s:.2f} s, browser's first 206 after {first_206_s:.2f} s, "
            f"checked at {progress:.0%} downloaded"
        )

        # Settings: speed limits in KiB/s, saved, applied to the engine at once
        go_page(page, "settings")
        tid(page, "input-torrent-download_limit").fill("512")
        tid(page, "input-torrent-upload_limit").fill("128")
        tid(page, "speed-save").click()
        expect(tid(page, "speed-saved")).to_have_text("Saved.")
        s = api_get(page, sup, "/api/settings")
        assert s["torrent"] == {"download_limit": 512 * 1024, "upload_limit": 128 * 1024}
        deadline = time.monotonic() + 10
        while (
            api_get(page, sup, "/api/downloads")["engine"]["session"].get("download_limit")
            != 512 * 1024
        ):
            assert time.monotonic() < deadline, "the limit did not reach the engine"
            time.sleep(0.2)
        tid(page, "input-torrent-upload_limit").fill("-1")
        with console.expecting(r"status of 400"):
            tid(page, "speed-save").click()
            expect(tid(page, "field-error-torrent.upload_limit")).to_be_visible()
        write(page, sup, "PATCH", "/api/settings", {"torrent": {"download_limit": 0}})
        console.assert_clean("Play now and the speed limits")
    finally:
        context.close()
        seeder.stop()
        tracker.stop()
