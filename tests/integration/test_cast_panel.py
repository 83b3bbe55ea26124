"""Cast from the panel in a real Chromium: Library -> Cast -> the receiver double -> PLAYING,
pause / seek / stop from the cast bar, the Devices page live, and a device that loses power.

The supervisor and the double live in test network namespaces (tests/cast_lab.py); Chromium
(Debian's, driven by Playwright, never downloaded) stays on this machine's loopback and reaches
the supervisor through the bench's namespace forwarder. Screenshots go to
out/test-artifacts/screenshots/cast-*.png; console errors and CSP violations fail the test.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sokoul_appliance.passwords import hash_password
from tests.cast_lab import CastBench, events_of, make_root, wait_for
from tests.integration.test_panel_browser import CHROMIUM, CHROMIUM_ARGS, PASSWORD, SHOTS
from tests.media_samples import SRT, make_video, need_ffmpeg
from tests.netns import Lab

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CSP_INIT = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline"));
});
"""


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[tuple[CastBench, Path]]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (./build.sh test does)")
    need_ffmpeg()
    root, lib = make_root(tmp_path)
    with Lab() as lab:
        b = CastBench(lab, tmp_path, root, hash_password(PASSWORD))
        try:
            yield b, lib
        finally:
            b.close()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def tid(page: Any, testid: str) -> Any:
    return page.get_by_test_id(testid)


def go_page(page: Any, name: str) -> None:
    page.evaluate("name => { location.hash = '#/' + name; }", name)
    expect(tid(page, f"page-{name}")).to_have_attribute("data-loaded", "true")


def test_cast_from_the_library_and_control_it(bench: tuple[CastBench, Path]) -> None:
    b, lib = bench
    folder = lib / "Movies/Big Buck Bunny (2008)"
    raw = make_video(folder / "raw.mp4", seconds=6.0)
    movie = folder / "Big.Buck.Bunny.2008.mp4"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(raw),
         "-c", "copy", "-movflags", "+faststart", str(movie)],
        check=True, timeout=60,
    )  # fmt: skip
    raw.unlink()
    (folder / "Big.Buck.Bunny.2008.en.srt").write_text(SRT)
    uid, report = b.start_double("Living Room TV", model="Chromecast with Google TV")
    b.start_supervisor()

    errors: list[str] = []
    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.add_init_script(CSP_INIT)
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
            page.goto(b.url + "/")
            expect(tid(page, "login-form")).to_be_visible()
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", PASSWORD)
            tid(page, "login-submit").click()
            expect(tid(page, "page-home")).to_have_attribute("data-loaded", "true")
            expect(tid(page, "live-indicator")).to_have_attribute("data-state", "on")

            # Devices: the double, found by mDNS inside the namespaces
            go_page(page, "devices")
            row = tid(page, "chromecast-row")
            wait_for(lambda: _reload_until(page, row), 30, "the Chromecast on the Devices page")
            expect(row).to_have_count(1)
            expect(row).to_contain_text("Living Room TV")
            expect(row).to_contain_text("Chromecast with Google TV")
            expect(row).to_contain_text(f"{b.tv_ip}:8009")
            expect(tid(page, "chromecast-status")).to_have_text("Available")
            shot(page, "cast-devices")

            # Library: Cast -> pick the device
            go_page(page, "library")
            wait_for(lambda: _library_ready(page), 60, "the scanned item")
            tid(page, "library-cast").click()
            dialog = tid(page, "cast-dialog")
            expect(dialog).to_be_visible()
            choice = tid(page, "cast-device")
            expect(choice).to_have_count(1)
            expect(choice).to_contain_text("Living Room TV")
            shot(page, "cast-picker")
            choice.click()
            expect(dialog).to_have_count(0)
            bar = tid(page, "cast-bar")
            expect(bar).to_be_visible()
            expect(tid(page, "cast-device-name")).to_have_text("Living Room TV")
            expect(tid(page, "cast-title")).to_have_text("Big Buck Bunny (2008)")

            # the double got the right LOAD and fetched the whole file with Range requests
            (load,) = wait_for(lambda: events_of(report, "load"), 20, "LOAD at the double")
            item_id = tid(page, "library-row").get_attribute("data-id")
            base = f"http://{b.app_ip}:{b.port}"
            media = load["media"]
            assert media["contentId"] == f"{base}/stream/{item_id}?profile=chromecast"
            assert media["contentType"] == "video/mp4" and media["streamType"] == "BUFFERED"
            (track,) = media["tracks"]
            assert track["trackContentId"] == f"{base}/subtitles/{item_id}/0.vtt"
            assert track["trackContentType"] == "text/vtt" and track["type"] == "TEXT"
            assert load["active_track_ids"] == [track["trackId"]]
            (sub,) = wait_for(lambda: events_of(report, "track"), 20, "the subtitle fetch")
            assert sub["cors"] == "*" and sub["body"].startswith("WEBVTT")
            (fetched,) = wait_for(lambda: events_of(report, "fetched"), 60, "the media fetch")
            assert fetched["mode"] == "ranges" and fetched["bytes"] == movie.stat().st_size
            assert fetched["sha256"] == hashlib.sha256(movie.read_bytes()).hexdigest()

            # the panel follows MEDIA_STATUS live
            state = tid(page, "cast-state")
            expect(state).to_have_text("PLAYING", timeout=20_000)
            shot(page, "cast-playing")
            tid(page, "cast-pause").click()
            expect(state).to_have_text("PAUSED")
            tid(page, "cast-seek-input").fill("4")
            tid(page, "cast-seek").click()
            expect(tid(page, "cast-time")).to_contain_text("0:04 / 0:06")
            wait_for(lambda: _commands(report)[-1:] == ["SEEK"], 10, "SEEK at the double")
            tid(page, "cast-play").click()
            expect(state).to_have_text("PLAYING")
            shot(page, "cast-after-seek")
            tid(page, "cast-stop").click()
            expect(state).to_have_text("IDLE")
            assert _commands(report) == ["PAUSE", "SEEK", "PLAY", "STOP"]
            (seek,) = [e for e in events_of(report, "command") if e["type"] == "SEEK"]
            assert seek["payload"]["currentTime"] == 4

            # the Devices page shows the cast's state, live
            go_page(page, "devices")
            expect(tid(page, "chromecast-status")).to_have_text("Casting · IDLE")

            # power cut on the TV: the panel says so, and nothing waits on it
            b.kill_double(uid)
            expect(tid(page, "chromecast-status")).to_contain_text("Lost", timeout=40_000)
            expect(tid(page, "chromecast-status")).to_contain_text("stopped answering")
            tid(page, "chromecast-control").click()
            expect(state).to_have_text("LOST")
            expect(tid(page, "cast-detail")).to_contain_text("Living Room TV stopped answering")
            expect(tid(page, "cast-pause")).to_be_disabled()
            shot(page, "cast-lost")
        finally:
            browser.close()
    assert not [e for e in errors if not re.search(r"status of 40[49]", e)], errors


def _reload_until(page: Any, row: Any) -> bool:
    if row.count():
        return True
    page.wait_for_timeout(500)
    go_page(page, "devices")
    return bool(row.count())


def _library_ready(page: Any) -> bool:
    if tid(page, "library-row").count():
        return True
    page.wait_for_timeout(500)
    go_page(page, "library")
    return bool(tid(page, "library-row").count())


def _commands(report: Path) -> list[str]:
    return [str(e["type"]) for e in events_of(report, "command")]
