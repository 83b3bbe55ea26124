"""The setup wizard and the control panel in a real Chromium against the real supervisor.

The supervisor runs as a subprocess on the simulated Orange Pi 6 Plus tree
(hw/orangepi-6-plus/sim/acpi); Chromium is Debian's (/usr/bin/chromium), driven by Playwright's
sync API and never downloaded. Every wizard step and every panel page is screenshotted to
out/test-artifacts/screenshots/. Console errors and CSP violations fail the tests.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sync_api = pytest.importorskip("playwright.sync_api")
Browser = sync_api.Browser
Page = sync_api.Page
expect = sync_api.expect

REPO = Path(__file__).resolve().parents[2]
PYTHON = REPO / ".venv/bin/python"
SIM_ROOT = REPO / "hw/orangepi-6-plus/sim/acpi"
CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO / "out/test-artifacts/screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct horse battery"
PANEL_PAGES = [
    "home",
    "library",
    "downloads",
    "devices",
    "network",
    "storage",
    "system",
    "logs",
    "settings",
]
STATE_WORDS = {
    "ok": "OK",
    "degraded": "Degraded",
    "not_configured": "Not configured",
    "unavailable": "Unavailable",
    "waiting": "Waiting",
    "starting": "Starting",
    "error": "Error",
}

pytestmark = pytest.mark.timeout(420)


# ------------------------------------------------------------------ the supervisor


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SupervisorProcess:
    """`python -m sokoul_appliance` on the simulated board; stopped by its PID."""

    def __init__(self, state: Path, log_path: Path) -> None:
        self.state = state
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        cmd = [
            str(PYTHON),
            "-m",
            "sokoul_appliance",
            "--root",
            str(SIM_ROOT),
            "--board",
            "orangepi-6-plus",
            "--state",
            str(self.state),
            "--listen",
            f"127.0.0.1:{self.port}",
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("NOTIFY_SOCKET", None)
        env.pop("WATCHDOG_USEC", None)
        with self.log_path.open("ab") as log:
            log.write(f"--- start: {' '.join(cmd)}\n".encode())
            self.proc = subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"supervisor exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            with (
                contextlib.suppress(OSError, ValueError),
                urllib.request.urlopen(f"{self.url}/api/health", timeout=2) as r,
            ):
                if r.status == 200 and json.loads(r.read()).get("status"):
                    return
            time.sleep(0.2)
        raise AssertionError(f"no /api/health within 60 s:\n{self.log_tail()}")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[SupervisorProcess]:
    assert SIM_ROOT.is_dir(), f"simulated board tree missing: {SIM_ROOT}"
    state = tmp_path / "state"
    state.mkdir()
    sup = SupervisorProcess(state, tmp_path / "supervisor.log")
    try:
        sup.start()
        yield sup
    finally:
        sup.stop()


# ------------------------------------------------------------------ the browser


class Console:
    """Console errors, uncaught exceptions and CSP violations seen by one page."""

    # Runs before the page's own scripts (through the DevTools protocol, so the CSP does not
    # apply to it): every CSP violation becomes a console error the collector sees.
    INIT = """
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error("CSP violation: " + e.violatedDirective + " blocked " +
                    (e.blockedURI || "inline") + " at " + e.sourceFile + ":" + e.lineNumber);
    });
    """

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.expected: list[str] = []
        page.add_init_script(self.INIT)
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _on_console(self, msg: Any) -> None:
        if msg.type not in ("error", "assert"):
            return
        text = msg.text
        loc = msg.location or {}
        entry = f"{text} ({loc.get('url', '')})"
        for i, pattern in enumerate(self.expected):
            if re.search(pattern, entry):
                # an error response the test caused on purpose (e.g. a 400 to check messages)
                del self.expected[i]
                return
        self.errors.append(entry)

    @contextlib.contextmanager
    def expecting(self, pattern: str) -> Iterator[None]:
        """Allow exactly one console error matching pattern (a deliberate failing request)."""
        self.expected.append(pattern)
        yield

    def assert_clean(self, where: str) -> None:
        assert not self.errors, f"console errors / CSP violations on {where}: {self.errors}"


def new_page(
    browser: Browser, width: int = 1280, height: int = 900, scheme: str = "light"
) -> tuple[Any, Page, Console]:
    context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
    page = context.new_page()
    page.set_default_timeout(20_000)
    console = Console(page)
    return context, page, console


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def tid(page: Page, testid: str) -> Any:
    return page.get_by_test_id(testid)


def api_get(page: Page, sup: SupervisorProcess, path: str) -> Any:
    """GET with the browser's own session cookie."""
    resp = page.request.get(f"{sup.url}{path}")
    assert resp.ok, f"GET {path}: {resp.status} {resp.text()}"
    return resp.json()


def fail_one_login(sup: SupervisorProcess) -> None:
    """One wrong password from a separate client (its own cookie jar): a WARNING log line."""
    jar = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    with jar.open(f"{sup.url}/api/session", timeout=5) as r:
        csrf = json.loads(r.read())["csrf_token"]
    req = urllib.request.Request(
        f"{sup.url}/api/login",
        data=json.dumps({"username": "admin", "password": "wrong password"}).encode(),
        headers={"Content-Type": "application/json", "X-CSRF-Token": csrf},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as exc:
        jar.open(req, timeout=5)
    assert exc.value.code == 401


def patch_settings(page: Page, sup: SupervisorProcess, body: dict[str, Any]) -> Any:
    csrf = api_get(page, sup, "/api/session")["csrf_token"]
    r = page.request.patch(
        f"{sup.url}/api/settings",
        data=json.dumps(body),
        headers={"Content-Type": "application/json", "X-CSRF-Token": csrf},
    )
    assert r.ok, f"PATCH /api/settings: {r.status} {r.text()}"
    return r.json()


def wireguard_conf() -> str:
    def key() -> str:
        return base64.b64encode(secrets.token_bytes(32)).decode()

    return (
        "[Interface]\n"
        f"PrivateKey = {key()}\n"
        "Address = 10.64.0.2/32\n"
        "DNS = 10.64.0.1\n"
        "\n"
        "[Peer]\n"
        f"PublicKey = {key()}\n"
        "AllowedIPs = 0.0.0.0/0\n"
        "Endpoint = 127.0.0.1:51820\n"
    )


def wait_step(page: Page, step: str) -> None:
    expect(tid(page, f"wizard-step-{step}")).to_be_visible()
    expect(page).to_have_url(re.compile(rf"#/wizard/{step}$"))


def go_page(page: Page, name: str) -> None:
    """Open a panel page and wait until its data is on screen."""
    page.evaluate("name => { location.hash = '#/' + name; }", name)
    section = tid(page, f"page-{name}")
    expect(section).to_have_attribute("data-loaded", "true")


# ------------------------------------------------------------------ wizard steps in the browser


def do_admin(page: Page) -> None:
    wait_step(page, "admin")
    expect(page.locator("input[name=username]")).to_have_value("admin")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=password_again]", PASSWORD + "x")
    tid(page, "wizard-next").click()
    # checked in the browser before anything is sent
    expect(tid(page, "field-error-password_again")).to_be_visible()
    page.fill("input[name=password_again]", PASSWORD)
    tid(page, "wizard-next").click()


def do_system(
    page: Page, console: Console, options: dict[str, Any], hostname: str, timezone: str
) -> None:
    wait_step(page, "system")
    # pre-filled with the appliance's default name (from its MAC after first boot)
    default = options["defaults"]["hostname"]
    assert default
    expect(page.locator("input[name=hostname]")).to_have_value(default)
    expect(page.locator("select[name=timezone]")).to_have_value(options["defaults"]["timezone"])
    # a server-side validation error shows its message on top and next to the field
    page.fill("input[name=hostname]", "not_a valid host!")
    with console.expecting(r"status of 400"):
        tid(page, "wizard-next").click()
        expect(tid(page, "field-error-hostname")).to_be_visible()
    expect(tid(page, "form-error")).to_be_visible()
    expect(page.locator("input[name=hostname]")).to_have_attribute("aria-invalid", "true")
    page.fill("input[name=hostname]", hostname)
    page.select_option("select[name=timezone]", timezone)
    tid(page, "wizard-next").click()


def do_network(page: Page, options: dict[str, Any], internet: str, streaming: str) -> None:
    wait_step(page, "network")
    for p in options["ports"]:
        card = page.locator("label.choice", has=tid(page, f"port-internet-{p['name']}"))
        expect(card).to_contain_text(p["name"])
        expect(card).to_contain_text(p["mac"])
        expect(card).to_contain_text(p["pci_path"])
    expect(page.locator("input[name=streaming_subnet]")).to_have_value(
        options["defaults"]["streaming_subnet"]
    )
    tid(page, f"port-internet-{internet}").check()
    tid(page, f"port-streaming-{streaming}").check()


def do_storage(page: Page, console: Console, system: dict[str, Any], media: dict[str, Any]) -> None:
    wait_step(page, "storage")
    for d in (system, media):
        card = page.locator("label.choice", has=tid(page, f"drive-system-{d['name']}"))
        expect(card).to_contain_text(d["model"])
        expect(card).to_contain_text(d["serial"])
    tid(page, f"drive-system-{system['name']}").check()
    tid(page, f"drive-media-{media['name']}").check()
    box = tid(page, "format-confirm-box")
    expect(box).to_be_hidden()
    tid(page, "input-format_media").check()
    expect(box).to_be_visible()
    expect(box).to_contain_text("Everything on this drive will be erased")
    expect(tid(page, "confirm-text")).to_have_text(media["confirm_text"])
    # a wrong confirmation is refused by the server, next to the field
    page.fill("input[name=confirm]", media["serial"])
    with console.expecting(r"status of 400"):
        tid(page, "wizard-next").click()
        expect(tid(page, "field-error-confirm")).to_be_visible()
    page.fill("input[name=confirm]", media["confirm_text"])


def do_vpn(page: Page, conf_file: Path) -> None:
    wait_step(page, "vpn")
    tid(page, "vpn-conf").check()
    # read a .conf file client-side into the text area
    tid(page, "input-wireguard_file").set_input_files(str(conf_file))
    expect(tid(page, "input-wireguard_conf")).to_have_value(conf_file.read_text())


def do_content(page: Page, tmdb_key: str, torznab: list[str]) -> None:
    wait_step(page, "content")
    page.fill("input[name=tmdb_api_key]", tmdb_key)
    page.fill("textarea[name=torznab_urls]", "\n".join(torznab))


# ------------------------------------------------------------------ tests


def test_wizard_end_to_end_then_every_panel_page(
    browser: Browser, supervisor: SupervisorProcess, tmp_path: Path
) -> None:
    context, page, console = new_page(browser)
    try:
        page.goto(supervisor.url + "/")
        wait_step(page, "admin")
        expect(tid(page, "wizard-indicator").locator("li")).to_have_count(7)
        shot(page, "wizard-1-admin")
        do_admin(page)

        wait_step(page, "system")
        wiz = api_get(page, supervisor, "/api/wizard")
        options = wiz["options"]
        ports = options["ports"]
        drives = options["drives"]
        assert len(ports) == 2, ports
        assert len(drives) == 2, drives
        shot(page, "wizard-2-system")
        do_system(page, console, options, "sokoul-browser", "Europe/Paris")

        internet, streaming = ports[0]["name"], ports[1]["name"]
        do_network(page, options, internet, streaming)
        shot(page, "wizard-3-network")
        tid(page, "wizard-next").click()

        system_drive = next((d for d in drives if d["holds_system"]), drives[0])
        media_drive = next(d for d in drives if d["name"] != system_drive["name"])
        do_storage(page, console, system_drive, media_drive)
        shot(page, "wizard-4-storage")
        tid(page, "wizard-next").click()

        conf = wireguard_conf()
        conf_file = tmp_path / "provider.conf"
        conf_file.write_text(conf)
        do_vpn(page, conf_file)
        shot(page, "wizard-5-vpn")
        tid(page, "wizard-next").click()

        tmdb_key = "0123456789abcdef0123456789abcdef"
        torznab = ["http://127.0.0.1:9117/api/v2.0/indexers/all/results/torznab/"]
        do_content(page, tmdb_key, torznab)
        shot(page, "wizard-6-content")
        tid(page, "wizard-next").click()

        wait_step(page, "summary")
        summary = page.locator("[data-testid=wizard-form]")
        for text in (
            "admin",
            "sokoul-browser",
            "Europe/Paris",
            internet,
            streaming,
            system_drive["name"],
            media_drive["name"],
            torznab[0],
        ):
            expect(summary).to_contain_text(text)
        body = page.locator("body").inner_text()
        private_key = conf.split("PrivateKey = ")[1].split("\n")[0]
        assert private_key not in body and tmdb_key not in body and PASSWORD not in body
        shot(page, "wizard-7-summary")
        console.assert_clean("the wizard")

        tid(page, "wizard-apply").click()
        expect(tid(page, "wizard-results")).to_be_visible()
        items = tid(page, "result-item")
        expect(items.first).to_be_visible()
        statuses = [items.nth(i).get_attribute("data-status") for i in range(items.count())]
        assert statuses and set(statuses) <= {"applied", "stored", "failed"}, statuses
        for i, status in enumerate(statuses):
            item = items.nth(i)
            assert item.locator(".result-detail").inner_text().strip(), f"item {i} has no detail"
            if status == "stored":
                expect(item).to_contain_text("will be applied when")
                expect(item).to_contain_text("is available in a later version")
        shot(page, "wizard-8-results")
        tid(page, "wizard-open-panel").click()
        go_page(page, "home")

        # log out, then back in with the password chosen in the wizard
        go_page(page, "settings")
        tid(page, "logout").click()
        expect(tid(page, "login-form")).to_be_visible()
        assert api_get(page, supervisor, "/api/session")["authenticated"] is False
        shot(page, "login")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", PASSWORD)
        tid(page, "login-submit").click()
        expect(tid(page, "page-home")).to_have_attribute("data-loaded", "true")
        console.assert_clean("logout / login")

        check_every_page(page, supervisor, console, ports, drives)
        check_settings_round_trip(page, supervisor, console)
        check_phone_home(page, console)
        console.assert_clean("the panel")
        check_live_reconnect(page, supervisor, console)
    finally:
        context.close()


def check_state_line(page: Page, name: str, data: dict[str, Any]) -> None:
    section = tid(page, f"page-{name}")
    expect(section.get_by_test_id("state-badge").first).to_have_text(STATE_WORDS[data["state"]])
    expect(section.get_by_test_id("state-detail").first).to_have_text(data["detail"])


def check_every_page(
    page: Page,
    sup: SupervisorProcess,
    console: Console,
    ports: list[dict[str, Any]],
    drives: list[dict[str, Any]],
) -> None:
    # Home: one card per subsystem with its state word and detail; uptime and version
    go_page(page, "home")
    ov = api_get(page, sup, "/api/overview")
    assert ov["subsystems"], ov
    for s in ov["subsystems"]:
        card = tid(page, f"subsystem-{s['name']}")
        expect(card.get_by_test_id("state-badge")).to_have_text(STATE_WORDS[s["state"]])
        expect(card).to_contain_text(s["detail"])
    expect(tid(page, "overview-version")).to_have_text(ov["version"])
    expect(tid(page, "overview-hostname")).to_have_text("sokoul-browser")
    expect(tid(page, "overview-uptime")).to_have_text(re.compile(r"\d+ (s|min|h|d)"))
    # the simulated board says so on every page
    assert ov["simulated"] is True
    expect(tid(page, "sim-banner")).to_be_visible()
    expect(tid(page, "sim-banner")).to_contain_text("nothing on this machine")
    shot(page, "panel-home")

    # Library, Downloads, Devices: the subsystem's own state and its (possibly empty) lists
    for name, path, lists in (
        ("library", "/api/library", {"items": "library-row"}),
        ("downloads", "/api/downloads", {"torrents": "download-row"}),
        ("devices", "/api/devices", {"renderers": "renderer-row", "chromecasts": "chromecast-row"}),
    ):
        go_page(page, name)
        data = api_get(page, sup, path)
        check_state_line(page, name, data)
        for key, row in lists.items():
            expect(tid(page, row)).to_have_count(len(data[key]))
        shot(page, f"panel-{name}")

    # Downloads: the engine runs; a malformed magnet gets its reason next to the form
    deadline = time.monotonic() + 60
    while api_get(page, sup, "/api/downloads")["state"] != "ok":
        assert time.monotonic() < deadline, "the torrent engine did not come up"
        time.sleep(0.3)
    go_page(page, "home")
    go_page(page, "downloads")
    expect(tid(page, "state-badge").first).to_have_text("OK")
    tid(page, "input-magnet").fill("magnet:?xt=urn:btih:not-a-hash")
    with console.expecting(r"status of 400"):
        tid(page, "download-add").click()
        expect(tid(page, "download-form").locator(".field-error")).to_be_visible()
    shot(page, "panel-downloads-error")

    # Network: both ports with their roles, and the plan from the wizard
    go_page(page, "network")
    net = api_get(page, sup, "/api/network")
    check_state_line(page, "network", net)
    rows = tid(page, "port-row")
    expect(rows).to_have_count(len(ports))
    for p in net["ports"]:
        row = page.locator(f"[data-testid=port-row][data-name='{p['name']}']")
        expect(row).to_contain_text(p["mac"])
        expect(row).to_contain_text(p["role"].capitalize() if p["role"] else "No role")
    if net["plan"]:
        expect(tid(page, "network-plan")).to_contain_text(net["plan"]["internet_port"])
        expect(tid(page, "network-plan")).to_contain_text(net["plan"]["streaming_subnet"])
    for p in ports:
        expect(tid(page, "ports-table")).to_contain_text(p["name"])
    # the VPN the wizard configured: checked, shown, not brought up on a simulated board
    expect(tid(page, "vpn-state")).to_have_text("Down")
    expect(tid(page, "vpn-facts")).to_contain_text("Simulated board (read-only)")
    # the firewall the plan gives, and a change refused on a simulated board
    expect(tid(page, "rule-row")).to_have_count(len(net["manager"]["firewall"]["rules"]))
    expect(page.locator("[data-testid=rule-row]", has_text="ssh")).to_contain_text("Blocked")
    tid(page, "input-internet-mode").select_option("static")
    tid(page, "input-internet-address").fill("192.168.1.20/24")
    with console.expecting(r"status of 409"):
        tid(page, "internet-apply").click()
        expect(tid(page, "internet-form")).to_contain_text("simulated board")
    # the port roles can be chosen again from the panel (after a preseed too): the same port
    # twice is refused next to the field; on a simulated board the change is refused as well
    roles = tid(page, "roles-form")
    port_names = [p["name"] for p in net["ports"]]
    tid(page, "input-internet-port").select_option(port_names[0])
    tid(page, "input-streaming-port").select_option(port_names[0])
    tid(page, "roles-apply").click()
    expect(roles).to_contain_text("the streaming port must be the other port")
    tid(page, "input-streaming-port").select_option(port_names[1])
    with console.expecting(r"status of 409"):
        tid(page, "roles-apply").click()
        expect(roles).to_contain_text("simulated board")
    shot(page, "panel-network")

    # Storage: both drive models, one usage bar per file system
    go_page(page, "storage")
    st = api_get(page, sup, "/api/storage")
    check_state_line(page, "storage", st)
    for d in drives:
        expect(tid(page, "drives-table")).to_contain_text(d["model"])
        expect(tid(page, "drives-table")).to_contain_text(d["serial"])
    expect(tid(page, "fs-row")).to_have_count(len(st["filesystems"]))
    assert st["filesystems"], "the supervisor reports at least the root file system"
    expect(tid(page, "fs-row").first.locator("meter")).to_be_visible()
    # the storage manager's view: the system tier, and setting up a drive is refused on a
    # simulated board with the reason shown next to the form
    expect(page.locator("[data-testid=tier-row][data-role=system]")).to_have_count(1)
    spare = next(d for d in drives if not d["holds_system"])
    tid(page, "format-drive").select_option(spare["name"])
    tid(page, "format-role").select_option("cold")
    tid(page, "format-confirm").fill(spare["confirm_text"])
    with console.expecting(r"status of 409"):
        tid(page, "format-submit").click()
        expect(tid(page, "format-form")).to_contain_text("simulated board")
    # the tiering rules are household settings (saved even on a simulated board): a wrong
    # value is named next to its field, a right one is saved and read back by the manager
    expect(tid(page, "input-storage-free_watermark_percent")).to_have_value("15")
    expect(tid(page, "input-storage-cleanup_watched_days")).to_be_disabled()
    tid(page, "input-storage-free_watermark_percent").fill("95")
    with console.expecting(r"status of 400"):
        tid(page, "rules-save").click()
        expect(tid(page, "rules-form")).to_contain_text("between 1 and 90")
    tid(page, "input-storage-free_watermark_percent").fill("20")
    tid(page, "input-storage-cleanup").check()
    tid(page, "input-storage-cleanup_watched_days").fill("60")
    tid(page, "rules-save").click()
    expect(tid(page, "rules-saved")).to_have_text("Saved.")
    assert api_get(page, sup, "/api/settings")["storage"] == {
        "free_watermark_percent": 20,
        "cold_after_days": 30,
        "cleanup_watched_days": 60,
    }
    rules = api_get(page, sup, "/api/storage")["manager"]["rules"]
    assert rules == {"free_watermark": 0.2, "min_idle_days": 30.0, "cleanup_watched_days": 60.0}
    shot(page, "panel-storage")

    # System: the fixture's CPU clusters (the CIX P1 in ACPI mode has five frequency domains
    # over 12 CPUs; discovery merges them into 4 A520 + 4 mid + 4 big A720), thermal zones,
    # fans; live updates
    go_page(page, "system")
    sysinfo = api_get(page, sup, "/api/system")
    clusters = sysinfo["clusters"]
    assert len(clusters) == 3, clusters
    assert sorted(cl["role"] for cl in clusters) == ["big", "little", "mid"], clusters
    assert sorted(c for cl in clusters for c in cl["cpus"]) == list(range(12)), clusters
    assert {cl["core"] for cl in clusters} == {"cortex-a720", "cortex-a520"}, clusters
    expect(tid(page, "cluster-row")).to_have_count(3)
    for c in clusters:
        row = page.locator(
            f"[data-testid=cluster-row][data-cpus='{','.join(map(str, c['cpus']))}']"
        )
        expect(row).to_contain_text(c["core"])
        expect(row).to_contain_text(f"{c['max_khz'] / 1e6:.2f} GHz")
    expect(tid(page, "zone-row")).to_have_count(len(sysinfo["thermal_zones"]))
    expect(tid(page, "fan-row")).to_have_count(len(sysinfo["fans"]))
    # the CPU-slice plan from the clusters, shown as computed-not-applied on a simulated board
    slices = {x["slice"]: x for x in sysinfo["slices"]["slices"]}
    by_role = {cl["role"]: sorted(cl["cpus"]) for cl in clusters}
    assert slices["sokoul-background.slice"]["cpus"] == by_role["little"]
    assert slices["sokoul-heavy.slice"]["cpus"] == by_role["big"]
    assert slices["sokoul-interactive.slice"]["cpus"] == by_role["mid"]
    expect(tid(page, "slice-row")).to_have_count(3)
    assert sysinfo["thermal"]["state"] == "normal"  # the fixture's zones sit at 40-46 °C
    expect(tid(page, "thermal-state")).to_have_text("Normal")
    expect(tid(page, "thermal-facts")).to_contain_text("throttle 75 °C")
    expect(
        page.locator("[data-testid=slice-row][data-slice='sokoul-background.slice']")
    ).to_contain_text("Not applied")
    expect(tid(page, "slices-detail")).to_contain_text("Simulated board (read-only)")
    expect(tid(page, "live-indicator")).to_have_attribute("data-state", "on", timeout=15_000)
    expect(tid(page, "page-system")).to_have_attribute(
        "data-live-updates", re.compile(r"^[1-9]\d*$"), timeout=15_000
    )
    expect(tid(page, "cluster-row")).to_have_count(3)
    shot(page, "panel-system")

    # Logs: recent lines, a failed login (a WARNING) written before the page opened, then a
    # line that arrives live over the WebSocket while the page is open; the level filter
    fail_one_login(sup)
    go_page(page, "logs")
    lines = tid(page, "log-line")
    expect(lines.filter(has_text="failed login")).to_have_count(1)
    before = lines.count()
    assert before >= 2
    changes_before = lines.filter(has_text="settings changed: dlna").count()
    expect(tid(page, "live-indicator")).to_have_attribute("data-state", "on", timeout=15_000)
    patch_settings(page, sup, {"dlna": {"serve_lan": False}})
    expect(lines.filter(has_text="settings changed: dlna")).to_have_count(
        changes_before + 1, timeout=15_000
    )
    assert lines.count() > before
    page.select_option("[data-testid=log-level]", "WARNING")
    shown = page.locator("[data-testid=log-line]:not([hidden])")
    expect(shown.filter(has_text="failed login")).to_have_count(1)
    for i in range(shown.count()):
        assert shown.nth(i).get_attribute("data-level") in ("WARNING", "ERROR", "CRITICAL")
    expect(tid(page, "log-count")).to_contain_text(f"{shown.count()} of {lines.count()} lines")
    page.select_option("[data-testid=log-level]", "")
    expect(page.locator("[data-testid=log-line]:not([hidden])")).to_have_count(lines.count())
    shot(page, "panel-logs")
    console.assert_clean("the panel pages")


def check_settings_round_trip(page: Page, sup: SupervisorProcess, console: Console) -> None:
    go_page(page, "settings")
    before = api_get(page, sup, "/api/settings")
    th = before["thermal"]
    expect(tid(page, "input-thermal-throttle_c")).to_have_value(str(th["throttle_c"]))
    expect(tid(page, "input-hostname")).to_have_value("sokoul-browser")
    shot(page, "panel-settings")

    # release above throttle: refused, shown next to the field
    tid(page, "input-thermal-release_c").fill(str(th["critical_c"] - 1))
    tid(page, "input-thermal-throttle_c").fill(str(th["critical_c"] - 2))
    with console.expecting(r"status of 400"):
        tid(page, "settings-save").click()
        expect(tid(page, "settings-form").locator(".field-error").first).to_be_visible()
    expect(tid(page, "settings-form").get_by_test_id("form-error")).to_be_visible()
    shot(page, "panel-settings-error")

    new_throttle = th["release_c"] + 2
    assert th["release_c"] < new_throttle < th["critical_c"]
    tid(page, "input-thermal-release_c").fill(str(th["release_c"]))
    tid(page, "input-thermal-throttle_c").fill(str(new_throttle))
    tid(page, "settings-save").click()
    expect(tid(page, "settings-saved")).to_have_text("Saved.")
    page.reload()
    expect(tid(page, "page-settings")).to_have_attribute("data-loaded", "true")
    expect(tid(page, "input-thermal-throttle_c")).to_have_value(str(new_throttle))
    assert api_get(page, sup, "/api/settings")["thermal"]["throttle_c"] == new_throttle

    # change password: a wrong current password is refused next to its field
    page.fill("input[name=current_password]", "not the password")
    page.fill("input[name=new_password]", "another long password")
    page.fill("input[name=new_password_again]", "another long password")
    with console.expecting(r"status of 400"):
        tid(page, "password-save").click()
        expect(tid(page, "password-form").locator(".field-error").first).to_be_visible()
    expect(tid(page, "password-form").get_by_test_id("form-error")).to_be_visible()
    expect(tid(page, "password-saved")).to_have_text("")
    console.assert_clean("settings")


def check_phone_home(page: Page, console: Console) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    go_page(page, "home")
    nav = tid(page, "nav")
    toggle = tid(page, "menu-toggle")
    expect(toggle).to_be_visible()
    expect(nav).to_be_hidden()
    # nothing wider than the phone's screen
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"page is {overflow} px wider than a 390 px phone"
    shot(page, "phone-home")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(nav).to_be_visible()
    shot(page, "phone-menu-open")
    tid(page, "nav-system").click()
    expect(tid(page, "page-system")).to_have_attribute("data-loaded", "true")
    expect(nav).to_be_hidden()
    shot(page, "phone-system")
    page.set_viewport_size({"width": 1280, "height": 900})
    console.assert_clean("the phone-size panel")


def check_live_reconnect(page: Page, sup: SupervisorProcess, console: Console) -> None:
    """The one WebSocket comes back by itself after the supervisor restarts."""
    go_page(page, "system")
    live = tid(page, "live-indicator")
    expect(live).to_have_attribute("data-state", "on", timeout=15_000)
    sup.stop()
    expect(live).not_to_have_attribute("data-state", "on", timeout=15_000)
    expect(live).to_contain_text(re.compile("Offline|Connecting"))
    sup.start()
    expect(live).to_have_attribute("data-state", "on", timeout=40_000)
    updates = int(tid(page, "page-system").get_attribute("data-live-updates") or "0")
    expect(tid(page, "page-system")).not_to_have_attribute(
        "data-live-updates", str(updates), timeout=15_000
    )
    # the browser itself logs the refused reconnection attempts while the server was away;
    # anything else is a real error
    away = re.compile(r"WebSocket connection to .*/api/ws. failed|ERR_CONNECTION_REFUSED")
    other = [e for e in console.errors if not away.search(e)]
    assert not other, other
    console.errors.clear()


def test_wizard_resumes_after_kill_9(browser: Browser, supervisor: SupervisorProcess) -> None:
    context, page, console = new_page(browser)
    try:
        page.goto(supervisor.url + "/")
        do_admin(page)
        wait_step(page, "system")
        wiz = api_get(page, supervisor, "/api/wizard")
        do_system(page, console, wiz["options"], "sokoul-resume", "America/New_York")
        ports = wiz["options"]["ports"]
        internet, streaming = ports[1]["name"], ports[0]["name"]  # the non-default order
        do_network(page, wiz["options"], internet, streaming)
        tid(page, "wizard-next").click()
        wait_step(page, "storage")

        supervisor.kill9()
        supervisor.start()
        page.reload()
        # the logged-in session is persisted: no login needed after the crash
        wait_step(page, "storage")
        expect(tid(page, "login-form")).to_have_count(0)
        indicator = tid(page, "wizard-indicator")
        expect(indicator.locator("li[aria-current=step]")).to_have_attribute("data-step", "storage")
        shot(page, "resume-storage")

        tid(page, "wizard-back").click()
        wait_step(page, "network")
        expect(tid(page, f"port-internet-{internet}")).to_be_checked()
        expect(tid(page, f"port-streaming-{streaming}")).to_be_checked()
        shot(page, "resume-network")
        tid(page, "wizard-back").click()
        wait_step(page, "system")
        expect(page.locator("input[name=hostname]")).to_have_value("sokoul-resume")
        expect(page.locator("select[name=timezone]")).to_have_value("America/New_York")
        shot(page, "resume-system")
        # going forward again keeps the place: Next from system lands on network, not beyond
        tid(page, "wizard-next").click()
        wait_step(page, "network")
        console.assert_clean("the resumed wizard")
    finally:
        context.close()


def finish_wizard_by_api(page: Page, sup: SupervisorProcess) -> None:
    """Answer every step through the browser's own session (the UI is tested elsewhere)."""
    csrf = api_get(page, sup, "/api/session")["csrf_token"]

    def put(step: str, body: dict[str, Any]) -> dict[str, Any]:
        nonlocal csrf
        r = page.request.put(
            f"{sup.url}/api/wizard/steps/{step}",
            data=json.dumps(body),
            headers={"Content-Type": "application/json", "X-CSRF-Token": csrf},
        )
        assert r.ok, f"{step}: {r.status} {r.text()}"
        out: dict[str, Any] = r.json()
        if "session" in out:
            csrf = out["session"]["csrf_token"]
        return out

    put("admin", {"username": "admin", "password": PASSWORD, "password_again": PASSWORD})
    options = api_get(page, sup, "/api/wizard")["options"]
    ports, drives = options["ports"], options["drives"]
    put("system", {"hostname": "sokoul-csp", "timezone": "Etc/UTC"})
    put(
        "network",
        {
            "internet_port": ports[0]["name"],
            "streaming_port": ports[1]["name"],
            "streaming_subnet": "10.0.1.1/24",
        },
    )
    system = next((d for d in drives if d["holds_system"]), drives[0])
    put(
        "storage",
        {"system_drive": system["name"], "media_drive": None, "format_media": False, "confirm": ""},
    )
    put("vpn", {"wireguard_conf": None})
    put("content", {"tmdb_api_key": None, "torznab_urls": []})
    put("summary", {})
    r = page.request.post(
        f"{sup.url}/api/wizard/apply",
        data="{}",
        headers={"Content-Type": "application/json", "X-CSRF-Token": csrf},
    )
    assert r.ok, f"apply: {r.status} {r.text()}"


def test_no_console_errors_or_csp_violations_on_any_page(
    browser: Browser, supervisor: SupervisorProcess
) -> None:
    """Every route opened directly by URL (a reload or a bookmark), light and dark, desktop
    and phone: no console error, no uncaught exception, no CSP violation."""
    context, page, console = new_page(browser, scheme="dark")
    try:
        page.goto(supervisor.url + "/")
        wait_step(page, "admin")
        console.assert_clean("the first wizard step")
        finish_wizard_by_api(page, supervisor)
        for size in ((1280, 900), (390, 844)):
            page.set_viewport_size({"width": size[0], "height": size[1]})
            for name in PANEL_PAGES:
                page.goto("about:blank")
                page.goto(f"{supervisor.url}/#/{name}")
                expect(tid(page, f"page-{name}")).to_have_attribute("data-loaded", "true")
                console.assert_clean(f"#/{name} at {size[0]}x{size[1]}")
            shot(page, f"dark-{size[0]}x{size[1]}-settings")
        # the static files carry no inline script, style attribute or handler attribute
        html = page.request.get(f"{supervisor.url}/").text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
        assert not re.search(r"\sstyle\s*=", html), "style attribute"
        assert not re.search(r"\son[a-z]+\s*=", html), "event-handler attribute"
        csp = page.request.get(f"{supervisor.url}/").headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp, csp
        # a logged-out browser lands on the login form, also clean
        page.request.post(
            f"{supervisor.url}/api/logout",
            data="{}",
            headers={
                "Content-Type": "application/json",
                "X-CSRF-Token": api_get(page, supervisor, "/api/session")["csrf_token"],
            },
        )
        page.goto("about:blank")
        page.goto(f"{supervisor.url}/#/system")
        expect(tid(page, "login-form")).to_be_visible()
        expect(page).to_have_url(re.compile(r"#/login$"))
        console.assert_clean("the login page")

        # wrong passwords: each refusal on top of the form; after 5 in a row the wait is shown
        for attempt in range(1, 7):
            page.fill("input[name=password]", f"wrong {attempt}")
            status = "429" if attempt == 6 else "401"
            with console.expecting(rf"status of {status}"):
                tid(page, "login-submit").click()
                expect(tid(page, "form-error")).to_be_visible()
                if attempt == 6:
                    expect(tid(page, "form-error")).to_contain_text(
                        re.compile(r"try again in \d+ ?s")
                    )
            page.wait_for_function(
                "() => !document.querySelector('[data-testid=login-submit]').disabled"
            )
        shot(page, "login-throttled")
        console.assert_clean("the throttled login")
    finally:
        context.close()
