"""The supervisor's JSON API end to end against a real process and its SQLite database:
the wizard (validation, order, persistence across kill -9, apply), sessions, CSRF, login
throttling, 401 on every non-public route, settings, the WebSocket, preseeded setup."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.supervisor_proc import REPO, SupervisorProcess

PASSWORD = "correct horse battery"


def wg_conf() -> str:
    def key() -> str:
        return base64.b64encode(os.urandom(32)).decode()

    return (
        f"[Interface]\nPrivateKey = {key()}\nAddress = 10.64.0.2/32\nDNS = 10.64.0.1\n\n"
        f"[Peer]\nPublicKey = {key()}\nAllowedIPs = 0.0.0.0/0\nEndpoint = 127.0.0.1:51820\n"
    )


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[SupervisorProcess]:
    sv = SupervisorProcess(tmp_path / "state")
    try:
        yield sv.start()
    finally:
        sv.stop()


class Client:
    """A browser-like client: cookie jar, CSRF token from /api/session."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def close(self) -> None:
        await self.http.close()

    async def session(self) -> dict[str, Any]:
        status, body = await self.call("GET", "/api/session")
        assert status == 200
        self.csrf = body["csrf_token"]
        return body

    async def call(
        self, method: str, path: str, body: Any = None, csrf: bool = True
    ) -> tuple[int, Any]:
        headers = {"X-CSRF-Token": self.csrf} if csrf and self.csrf else {}
        async with self.http.request(method, self.base + path, json=body, headers=headers) as r:
            text = await r.text()
            data = json.loads(text) if text and r.content_type == "application/json" else text
            if r.status == 429:
                data = {**data, "retry_after": r.headers.get("Retry-After")}
            return r.status, data

    async def step(self, name: str, body: dict[str, Any]) -> tuple[int, Any]:
        status, data = await self.call("PUT", f"/api/wizard/steps/{name}", body)
        if status == 200 and "session" in data:
            self.csrf = data["session"]["csrf_token"]
        return status, data


@pytest.fixture
async def client(supervisor: SupervisorProcess) -> AsyncIterator[Client]:
    c = Client(supervisor.url)
    try:
        await c.session()
        yield c
    finally:
        await c.close()


async def first_steps(c: Client, options: dict[str, Any]) -> None:
    status, _ = await c.step(
        "admin", {"username": "admin", "password": PASSWORD, "password_again": PASSWORD}
    )
    assert status == 200
    status, _ = await c.step("system", {"hostname": "sokoul-den", "timezone": "Europe/Paris"})
    assert status == 200
    ports = [p["name"] for p in options["ports"]]
    status, body = await c.step(
        "network",
        {"internet_port": ports[0], "streaming_port": ports[1], "streaming_subnet": "10.0.1.1/24"},
    )
    assert status == 200, body


async def test_wizard_end_to_end(client: Client, supervisor: SupervisorProcess) -> None:
    c = client
    status, state = await c.call("GET", "/api/wizard")
    assert status == 200 and state["current_step"] == "admin" and not state["complete"]
    options = state["options"]
    assert len(options["ports"]) == 2 and len(options["drives"]) == 2
    assert "Europe/Paris" in options["timezones"]

    # bad admin answer: every field named, nothing stored
    status, body = await c.step("admin", {"username": "Bad Name", "password": "short"})
    assert status == 400
    assert set(body["error"]["fields"]) == {"username", "password"}
    # skipping ahead is refused
    status, body = await c.step("system", {"hostname": "x", "timezone": "Etc/UTC"})
    assert status == 409
    # without the CSRF token: refused, nothing stored
    status, body = await c.call(
        "PUT",
        "/api/wizard/steps/admin",
        {"username": "admin", "password": PASSWORD, "password_again": PASSWORD},
        csrf=False,
    )
    assert status == 403 and "CSRF" in body["error"]["message"]

    await first_steps(c, options)
    status, state = await c.call("GET", "/api/wizard")
    assert state["current_step"] == "storage"
    assert state["answers"]["system"] == {"hostname": "sokoul-den", "timezone": "Europe/Paris"}
    assert "password" not in json.dumps(state["answers"])

    system = next(d for d in options["drives"] if d["holds_system"])
    media = next(d for d in options["drives"] if not d["holds_system"])
    # formatting needs the exact model + serial
    status, body = await c.step(
        "storage",
        {
            "system_drive": system["name"],
            "media_drive": media["name"],
            "format_media": True,
            "confirm": media["model"],
        },
    )
    assert status == 400 and body["error"]["fields"]["confirm"].endswith(media["confirm_text"])
    status, body = await c.step(
        "storage",
        {
            "system_drive": system["name"],
            "media_drive": media["name"],
            "format_media": True,
            "confirm": media["confirm_text"],
        },
    )
    assert status == 200, body

    bad = "[Interface]\nPrivateKey = nope\nPostUp = rm -rf /\n"
    status, body = await c.step("vpn", {"wireguard_conf": bad})
    assert status == 400
    msg = body["error"]["fields"]["wireguard_conf"]
    assert "line 2: PrivateKey is not a base64 32-byte key" in msg and "line 3: PostUp" in msg
    conf = wg_conf()
    status, body = await c.step("vpn", {"wireguard_conf": conf})
    assert status == 200
    assert body["answers"]["vpn"]["wireguard_conf"] == {"set": True}
    assert conf.splitlines()[1].split(" = ")[1] not in json.dumps(body)  # no private key shown

    status, body = await c.step("content", {"tmdb_api_key": "k" * 32, "torznab_urls": ["ftp://x"]})
    assert status == 400 and "torznab_urls" in body["error"]["fields"]
    status, body = await c.step(
        "content",
        {"tmdb_api_key": "k" * 32, "torznab_urls": ["http://127.0.0.1:9117/api/v2.0/x"]},
    )
    assert status == 200 and body["answers"]["content"]["tmdb_api_key"] == {"set": True}
    status, body = await c.step("summary", {})
    assert status == 200 and body["current_step"] is None

    status, body = await c.call("POST", "/api/wizard/apply")
    assert status == 200 and body["complete"] is True
    by_item = {r["item"]: r for r in body["results"]}
    assert by_item["Admin account"]["status"] == "applied"
    # the simulated board is read-only; the managers of later issues only store the choice
    assert by_item["Hostname and timezone"]["status"] == "stored"
    assert by_item["Content sources"]["status"] == "stored"
    assert "looks titles and posters up on TMDB" in by_item["Content sources"]["detail"]
    assert (
        "Torznab indexer(s) (searching them is not part of this build yet)"
        in (by_item["Content sources"]["detail"])
    )
    for item in ("Network ports", "WireGuard VPN"):  # their managers are read-only here
        assert by_item[item]["status"] == "stored", by_item[item]
        assert "Simulated board (read-only)" in by_item[item]["detail"], by_item[item]
    assert by_item["Drives"]["status"] == "stored"
    assert "Simulated board (read-only): no drive was formatted" in by_item["Drives"]["detail"]

    # closed for good
    status, body = await c.step("summary", {})
    assert status == 410
    status, body = await c.call("POST", "/api/wizard/apply")
    assert status == 410
    assert supervisor.health()["setup"]["mode"] == "complete"

    # the panel reflects the plan
    status, net = await c.call("GET", "/api/network")
    roles = {p["name"]: p["role"] for p in net["ports"]}
    assert sorted(roles.values()) == ["internet", "streaming"]
    assert net["state"] == "unavailable" and "Simulated board" in net["detail"]
    rendered = net["manager"]["rendered"]
    assert options["ports"][1]["name"] in rendered["netplan"]
    assert "table inet sokoul" in rendered["nftables"]
    # a change on a simulated board is refused, nothing applied
    status, body = await c.call(
        "POST", "/api/network/changes", {"changes": {"network.internet_mode": "static"}}
    )
    assert status == 409 and "simulated" in body["error"]["message"].lower()
    status, storage = await c.call("GET", "/api/storage")
    assert {d["name"]: d["role"] for d in storage["drives"]} == {
        system["name"]: "system",
        media["name"]: "media",
    }
    assert storage["state"] == "unavailable" and "read-only" in storage["detail"]
    # formatting through the panel is refused on a simulated board, nothing written
    status, body = await c.call(
        "POST",
        "/api/storage/format",
        {"drive": media["name"], "role": "cold", "confirm": media["confirm_text"]},
    )
    assert status == 409 and "simulated board" in body["error"]["message"]
    status, settings = await c.call("GET", "/api/settings")
    assert settings["hostname"] == "sokoul-den" and settings["timezone"] == "Europe/Paris"
    assert settings["content"]["tmdb_api_key"] == {"set": True}

    # logout, then log in again with the wizard's password
    status, _ = await c.call("POST", "/api/logout")
    assert status == 200
    status, _ = await c.call("GET", "/api/overview")
    assert status == 401
    await c.session()
    status, body = await c.call("POST", "/api/login", {"username": "admin", "password": PASSWORD})
    assert status == 200 and body["authenticated"]
    c.csrf = body["csrf_token"]
    status, overview = await c.call("GET", "/api/overview")
    assert status == 200 and overview["hostname"] == "sokoul-den"
    names = {s["name"]: s["state"] for s in overview["subsystems"]}
    assert names["web"] == "ok" and names["store"] == "ok"
    # DLNA serves the (empty) library on loopback on a simulated board; casting has nothing
    # to discover there (no streaming network), and says so
    assert names["dlna"] == "ok"
    assert names["cast"] in ("unavailable", "not_configured"), names
    # the simulated board has no media drive mounted: the library says so
    assert names["library"] == "degraded"
    # the torrent engine runs (under the state dir on a simulated board); bad input is refused
    # with the engine's reason and the engine stays up
    for _ in range(150):
        _, dl = await c.call("GET", "/api/downloads")
        if dl["state"] == "ok":
            break
        await asyncio.sleep(0.2)
    assert dl["state"] == "ok" and dl["engine"]["running"], dl
    status, body = await c.call("POST", "/api/downloads", {"magnet": "magnet:?xt=urn:btih:zz"})
    assert status == 400 and body["error"]["fields"]["magnet"], body
    status, body = await c.call("POST", "/api/downloads", {"torrent": "bm90IGEgdG9ycmVudA=="})
    assert status == 400, body
    _, dl = await c.call("GET", "/api/downloads")
    assert dl["state"] == "ok" and dl["torrents"] == []


async def test_wizard_resumes_after_kill_9(tmp_path: Path) -> None:
    sv = SupervisorProcess(tmp_path / "state")
    c = Client(sv.url)
    try:
        sv.start()
        await c.session()
        _, state = await c.call("GET", "/api/wizard")
        await first_steps(c, state["options"])
        sv.kill9()
        sv.start()
        # the same browser (cookie) is still logged in and resumes at the storage step
        _, state = await c.call("GET", "/api/wizard")
        assert state["current_step"] == "storage"
        assert state["answers"]["system"]["hostname"] == "sokoul-den"
        assert state["answers"]["network"]["streaming_subnet"] == "10.0.1.1/24"
        assert state["answers"]["admin"] == {"username": "admin"}
        # another browser must log in first: it sees neither answers nor options
        other = Client(sv.url)
        try:
            await other.session()
            _, view = await other.call("GET", "/api/wizard")
            assert view["login_required"] is True and view["answers"] == {}
            assert "options" not in view
            status, _ = await other.step("storage", {"system_drive": "nvme0n1"})
            assert status == 401
            # ... and once logged in with the admin password it continues the same wizard
            status, body = await other.call(
                "POST", "/api/login", {"username": "admin", "password": PASSWORD}
            )
            assert status == 200, body
            other.csrf = body["csrf_token"]
            _, view = await other.call("GET", "/api/wizard")
            assert view["current_step"] == "storage"
            assert view["answers"]["system"]["timezone"] == "Europe/Paris"
        finally:
            await other.close()
    finally:
        await c.close()
        sv.stop()


async def complete_setup(c: Client) -> None:
    _, state = await c.call("GET", "/api/wizard")
    await first_steps(c, state["options"])
    system = next(d for d in state["options"]["drives"] if d["holds_system"])
    for name, body in (
        ("storage", {"system_drive": system["name"], "media_drive": None}),
        ("vpn", {"wireguard_conf": None}),
        ("content", {"tmdb_api_key": None, "torznab_urls": []}),
        ("summary", {}),
    ):
        status, data = await c.step(name, body)
        assert status == 200, data
    status, _ = await c.call("POST", "/api/wizard/apply")
    assert status == 200


async def test_every_private_route_needs_a_session(client: Client) -> None:
    await complete_setup(client)
    anon = Client(client.base)
    try:
        await anon.session()
        _, doc = await anon.call("GET", "/api/openapi.json")
        checked = 0
        for path, ops in doc["paths"].items():
            for method, op in ops.items():
                concrete = (
                    path.replace("{step}", "summary")
                    .replace("{change}", "c1")
                    .replace("{torrent}", "t1")
                    .replace("{action}", "pause")
                    .replace("{device}", "d1")
                    .replace("{item}", "it-1")
                )
                status, body = await anon.call(method.upper(), concrete, {})
                if op["tags"] == ["wizard"] and method == "get":
                    # says only that setup is complete (as /api/session does)
                    assert status == 200 and body["complete"] is True and body["answers"] == {}
                elif "security" in op:
                    # wizard routes answer 410 once setup is complete, before any session check
                    expect = 410 if op["tags"] == ["wizard"] else 401
                    assert status == expect, (method, path, status, body)
                    checked += 1
                else:
                    assert status != 401, (method, path)
        assert checked >= 14
        # the WebSocket too
        async with anon.http.get(anon.base + "/api/ws") as r:
            assert r.status == 401
    finally:
        await anon.close()


async def test_wrong_passwords_are_throttled(client: Client) -> None:
    await complete_setup(client)
    await client.call("POST", "/api/logout")
    await client.session()
    statuses = []
    for _ in range(20):
        status, body = await client.call(
            "POST", "/api/login", {"username": "admin", "password": "wrong password"}
        )
        statuses.append(status)
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429] * 15
    assert int(body["retry_after"]) >= 29 and "try again in" in body["error"]["message"]
    # even the right password waits out the lock
    status, _ = await client.call("POST", "/api/login", {"username": "admin", "password": PASSWORD})
    assert status == 429


async def test_settings_validate_and_survive_a_restart(
    client: Client, supervisor: SupervisorProcess
) -> None:
    await complete_setup(client)
    status, body = await client.call("PATCH", "/api/settings", {"thermal": {"release_c": 80}})
    assert status == 400 and "thermal.release_c" in body["error"]["fields"]
    status, body = await client.call("PATCH", "/api/settings", {"nonsense": 1})
    assert status == 400 and body["error"]["fields"] == {"nonsense": "unknown setting"}
    status, body = await client.call(
        "PATCH", "/api/settings", {"thermal": {"throttle_c": 78}, "dlna": {"serve_lan": True}}
    )
    assert status == 200 and body["thermal"]["throttle_c"] == 78
    status, body = await client.call(
        "PATCH", "/api/settings", {"thermal": {"critical_c": 95}}, csrf=False
    )
    assert status == 403
    supervisor.stop()
    supervisor.start()
    status, body = await client.call("GET", "/api/settings")  # session survived the restart
    assert status == 200
    assert body["thermal"] == {"throttle_c": 78, "release_c": 70, "critical_c": 90}
    assert body["dlna"]["serve_lan"] is True
    # malformed JSON body: a clear 400, nothing changed
    async with client.http.patch(
        client.base + "/api/settings",
        data=b"{not json",
        headers={"X-CSRF-Token": client.csrf, "Content-Type": "application/json"},
    ) as r:
        assert r.status == 400 and "not valid JSON" in (await r.json())["error"]["message"]


async def test_websocket_streams_system_and_logs(client: Client) -> None:
    await complete_setup(client)
    async with client.http.ws_connect(client.base.replace("http", "ws") + "/api/ws") as ws:
        first = await ws.receive_json(timeout=10)
        assert first["type"] == "system"
        cores = {c["core"] for c in first["data"]["clusters"]}
        assert cores == {"cortex-a520", "cortex-a720"}
        # a settings change produces a log line and an event on the socket
        status, _ = await client.call("PATCH", "/api/settings", {"dlna": {"serve_lan": True}})
        assert status == 200
        seen: set[str] = set()
        for _ in range(20):
            msg = await ws.receive_json(timeout=10)
            seen.add(msg["type"] if msg["type"] != "event" else msg["data"]["name"])
            if {"log", "settings.changed", "system"} <= seen and len(seen) >= 3:
                break
        assert {"log", "settings.changed"} <= seen
    status, logs = await client.call("GET", "/api/logs?lines=50")
    assert any("settings changed" in ln["message"] for ln in logs["lines"])


async def test_security_headers_and_openapi(client: Client, supervisor: SupervisorProcess) -> None:
    async with client.http.get(supervisor.url + "/api/session") as r:
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert r.headers["X-Frame-Options"] == "DENY"
        cookie = r.headers.get("Set-Cookie", "")
    # a fresh client gets a cookie that scripts cannot read and other sites cannot send
    fresh = aiohttp.ClientSession()
    try:
        async with fresh.get(supervisor.url + "/api/session") as r:
            cookie = r.headers["Set-Cookie"]
    finally:
        await fresh.close()
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    _, doc = await client.call("GET", "/api/openapi.json")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    # the served document, the human one (docs/api.md) and the server agree route for route
    text = (REPO / "docs/api.md").read_text()
    in_docs = set(re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/api/[^` ?]+)", text))
    assert documented == in_docs
    assert len(documented) == 30


async def test_preseeded_setup_skips_the_wizard(tmp_path: Path) -> None:
    from sokoul_appliance.passwords import hash_password

    state = tmp_path / "state"
    state.mkdir()
    (state / "first-boot.json").write_text(
        json.dumps({"completed": True, "hostname": "sokoul-1e5f"})
    )
    (state / "preseed.json").write_text(
        json.dumps({"admin_password_hash": hash_password(PASSWORD)})
    )
    sv = SupervisorProcess(state)
    c = Client(sv.url)
    try:
        sv.start()
        assert sv.health()["setup"]["mode"] == "preseeded"
        assert not (state / "preseed.json").exists()  # the secret lives only in the database
        s = await c.session()
        assert s["setup_complete"] is True
        status, _ = await c.call("GET", "/api/wizard")
        assert status == 200
        status, _ = await c.step(
            "admin", {"username": "evil", "password": "x" * 10, "password_again": "x" * 10}
        )
        assert status == 410
        status, body = await c.call(
            "POST", "/api/login", {"username": "admin", "password": PASSWORD}
        )
        assert status == 200, body
        c.csrf = body["csrf_token"]
        _, settings = await c.call("GET", "/api/settings")
        assert settings["hostname"] == "sokoul-1e5f"
    finally:
        await c.close()
        sv.stop()


async def test_library_lists_searches_and_streams(tmp_path: Path) -> None:
    """The supervisor's library room scans the media tier of a (copied) simulated board, the
    panel API pages and searches it, and /stream serves the file's bytes by object id."""
    import hashlib
    import shutil

    from sokoul_appliance.passwords import hash_password
    from tests.integration.supervisor_proc import SIM_ACPI
    from tests.media_samples import make_video, need_ffmpeg

    need_ffmpeg()
    root = tmp_path / "root"
    shutil.copytree(SIM_ACPI, root, symlinks=True)
    lib = root / "srv/media/library"
    movie = make_video(lib / "Movies/Big Buck Bunny (2008)/Big.Buck.Bunny.2008.1080p.mp4")
    make_video(lib / "Shows/Sintel Stories/Season 01/Sintel.Stories.S01E02.720p.mkv")
    state = tmp_path / "state"
    state.mkdir()
    (state / "preseed.json").write_text(
        json.dumps({"admin_password_hash": hash_password(PASSWORD)})
    )
    sv = SupervisorProcess(state, root=root)
    c = Client(sv.url)
    try:
        sv.start()
        await c.session()
        status, body = await c.call(
            "POST", "/api/login", {"username": "admin", "password": PASSWORD}
        )
        assert status == 200, body
        c.csrf = body["csrf_token"]
        items: list[dict[str, Any]] = []
        for _ in range(100):  # the first scan runs in the background
            _, page = await c.call("GET", "/api/library")
            items = page["items"]
            if len(items) == 2 and all(i.get("duration") for i in items):
                break
            await asyncio.sleep(0.2)
        assert sorted(i["kind"] for i in items) == ["episode", "movie"], items
        assert page["total"] == 2
        # one ffprobe per core of the background slice (the board's 4 A520s), at most one
        # per CPU of this machine, at least 2
        assert page["library"]["probe_concurrency"] == max(2, min(4, os.cpu_count() or 1))
        _, found = await c.call("GET", "/api/library?q=bunny")
        assert [i["title"] for i in found["items"]] == ["Big Buck Bunny"]
        assert found["items"][0]["year"] == 2008
        _, movies = await c.call("GET", "/api/library?kind=episode")
        assert [i["show_title"] for i in movies["items"]] == ["Sintel Stories"]
        status, _ = await c.call("GET", "/api/library?limit=9999")
        assert status == 400
        item = found["items"][0]
        assert "/" not in item["id"] and str(lib) not in json.dumps(found)
        # TVs have no session: /stream is public, by object id only
        async with aiohttp.ClientSession() as tv, tv.get(f"{sv.url}/stream/{item['id']}") as r:
            assert r.status == 200
            assert (
                hashlib.sha256(await r.read()).digest()
                == hashlib.sha256(movie.read_bytes()).digest()
            )
        async with aiohttp.ClientSession() as tv, tv.get(f"{sv.url}/stream/..%2F..%2Fetc") as r:
            assert r.status == 404
    finally:
        await c.close()
        sv.stop()
