"""The Library page in Chromium: a poster grid where an item TMDB matched shows its poster (an
<img> that loaded), an unmatched one a placeholder with its initials, and search and the kind
filter narrow the grid. TMDB is the offline double of test_library_tmdb on 127.0.0.1."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from sokoul_appliance.passwords import hash_password
from tests.integration.supervisor_proc import SIM_ACPI, SupervisorProcess
from tests.integration.test_library_tmdb import V3_KEY, ThreadedFakeTmdb, make_library
from tests.integration.test_panel_browser import (
    PASSWORD,
    api_get,
    go_page,
    new_page,
    shot,
    tid,
)

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = pytest.mark.integration


def _card(page: Any, title: str) -> Any:
    return page.locator("[data-testid=library-row]", has_text=title)


def _set_bookmark(page: Any, sv: SupervisorProcess, item_id: str, seconds: int) -> None:
    """What a Samsung TV sends when playback stops: X_SetBookmark to the MediaServer that
    ./build.sh dev serves on 127.0.0.1 (its URL from /api/health)."""
    import urllib.request

    health = api_get(page, sv, "/api/health")
    control = health["dlna"]["description_urls"][0].replace(
        "/description.xml", "/upnp/control/ContentDirectory"
    )
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
        '<u:X_SetBookmark xmlns:u="urn:schemas-upnp-org:service:ContentDirectory:1">'
        f"<CategoryType>1</CategoryType><RID>0</RID><ObjectID>{item_id}</ObjectID>"
        f"<PosSecond>{seconds}</PosSecond></u:X_SetBookmark></s:Body></s:Envelope>"
    ).encode()
    headers = {
        "SOAPACTION": '"urn:schemas-upnp-org:service:ContentDirectory:1#X_SetBookmark"',
        "Content-Type": 'text/xml; charset="utf-8"',
        "User-Agent": "DLNADOC/1.50 SEC_HHP_[TV] Samsung Q7 Series (55)/1.0 UPnP/1.0",
    }
    request = urllib.request.Request(control, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 200


def test_library_page_shows_a_poster_grid_and_searches(browser: Any, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(SIM_ACPI, root, symlinks=True)
    make_library(root / "srv/media/library")
    state = tmp_path / "state"
    state.mkdir()
    (state / "preseed.json").write_text(
        json.dumps({"admin_password_hash": hash_password(PASSWORD)})
    )
    with ThreadedFakeTmdb() as tmdb:
        sv = SupervisorProcess(state, root=root)
        sv.start({"SOKOUL_TMDB_URL": tmdb.url, "SOKOUL_TMDB_IMAGE_URL": tmdb.url + "/t/p/w342"})
        context, page, console = new_page(browser)
        try:
            page.goto(sv.url + "/")
            expect(tid(page, "login-form")).to_be_visible()
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", PASSWORD)
            tid(page, "login-submit").click()
            expect(tid(page, "page-home")).to_have_attribute("data-loaded", "true")
            csrf = api_get(page, sv, "/api/session")["csrf_token"]
            r = page.request.patch(
                f"{sv.url}/api/settings",
                data=json.dumps({"content": {"tmdb_api_key": V3_KEY}}),
                headers={"Content-Type": "application/json", "X-CSRF-Token": csrf},
            )
            assert r.ok, r.text()
            deadline = time.monotonic() + 60
            while True:
                data = api_get(page, sv, "/api/library")
                if data["total"] == 4 and data["library"]["tmdb"]["posters"] == 3:
                    break
                assert time.monotonic() < deadline, data["library"]
                time.sleep(0.3)

            # a Samsung TV stopped Big Buck Bunny at 1:02:03 (X_SetBookmark to the DLNA server)
            bunny_id = next(i["id"] for i in data["items"] if i["title"] == "Big Buck Bunny")
            _set_bookmark(page, sv, bunny_id, 3723)

            go_page(page, "library")
            expect(tid(page, "library-grid")).to_be_visible()
            expect(tid(page, "library-row")).to_have_count(4)
            # its card offers to resume there, in the browser (a #t= media fragment)
            resume = _card(page, "Big Buck Bunny").get_by_test_id("library-resume")
            expect(resume).to_have_text("Resume 1:02:03")
            expect(resume).to_have_attribute("href", f"/stream/{bunny_id}#t=3723")
            expect(_card(page, "Inception").get_by_test_id("library-resume")).to_have_count(0)
            expect(tid(page, "library-summary")).to_have_text("1–4 of 4 items in the library")
            # matched by TMDB: its poster, loaded; its overview; Play and Cast on the card
            inception = _card(page, "Inception")
            poster = inception.get_by_test_id("library-poster")
            expect(poster).to_have_attribute("alt", "Poster of Inception")
            expect(poster).to_have_attribute(
                "src", re.compile(r"^/api/library/it-[a-z0-9]+/poster$")
            )
            poster.scroll_into_view_if_needed()
            page.wait_for_function(
                "el => el.complete && el.naturalWidth > 0", arg=poster.element_handle()
            )
            assert poster.evaluate("el => [el.naturalWidth, el.naturalHeight]") == [68, 100]
            expect(inception).to_contain_text("2010")
            expect(inception).to_contain_text("A thief who steals")
            expect(inception.get_by_test_id("library-play")).to_have_attribute(
                "href", re.compile(r"^/stream/it-[a-z0-9]+$")
            )
            expect(inception.get_by_test_id("library-cast")).to_have_attribute(
                "aria-label", "Cast Inception (2010)"
            )
            # the poster beside the file (40x60) wins over TMDB's (68x100)
            bunny = _card(page, "Big Buck Bunny").get_by_test_id("library-poster")
            bunny.scroll_into_view_if_needed()
            page.wait_for_function(
                "el => el.complete && el.naturalWidth > 0", arg=bunny.element_handle()
            )
            assert bunny.evaluate("el => el.naturalWidth") == 40
            # the episode shows its show's poster and its code
            severance = _card(page, "Severance")
            expect(severance).to_contain_text("S01E01")
            expect(severance.get_by_test_id("library-poster")).to_have_count(1)
            # not on TMDB: a placeholder with the title's initials, no <img>
            zorblax = _card(page, "Zorblax Returns")
            expect(zorblax.locator("img")).to_have_count(0)
            placeholder = zorblax.get_by_test_id("library-placeholder")
            expect(placeholder).to_have_text("ZR")
            expect(placeholder).to_have_attribute("aria-label", "No poster for Zorblax Returns")
            # the buttons are reachable with the keyboard
            inception.get_by_test_id("library-play").focus()
            page.keyboard.press("Tab")
            expect(inception.get_by_test_id("library-cast")).to_be_focused()
            shot(page, "library-grid-desktop")

            # search narrows the grid (and lands in the address)
            tid(page, "library-search").fill("incep")
            tid(page, "library-search").press("Enter")
            expect(page).to_have_url(re.compile(r"#/library\?q=incep$"))
            expect(tid(page, "library-row")).to_have_count(1)
            expect(tid(page, "library-row")).to_contain_text("Inception")
            expect(tid(page, "library-summary")).to_contain_text("matching “incep”")
            tid(page, "library-search").fill("")
            tid(page, "library-kind").select_option("episode")
            expect(page).to_have_url(re.compile(r"#/library\?kind=episode$"))
            expect(tid(page, "library-row")).to_have_count(1)
            expect(tid(page, "library-row")).to_contain_text("Severance")
            tid(page, "library-search").fill("nothing like this")
            tid(page, "library-search").press("Enter")
            expect(tid(page, "library-row")).to_have_count(0)
            expect(tid(page, "library-empty")).to_be_visible()

            # a phone: two columns of cards, buttons still there
            page.set_viewport_size({"width": 390, "height": 844})
            go_page(page, "home")
            go_page(page, "library")
            expect(tid(page, "library-row")).to_have_count(4)
            columns = tid(page, "library-grid").evaluate(
                "el => getComputedStyle(el).gridTemplateColumns.split(' ').length"
            )
            assert columns == 2
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
            expect(_card(page, "Inception").get_by_test_id("library-play")).to_be_visible()
            shot(page, "library-grid-phone")
            console.assert_clean("the Library page")
            # every request went to 127.0.0.1: the double saw the look-ups
            assert {s.path.split("/")[2] for s in tmdb.requests("/3/")} <= {"search", "movie", "tv"}
        finally:
            context.close()
            sv.stop()
