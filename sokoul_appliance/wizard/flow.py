"""The setup wizard: ordered steps, each answer validated as a whole and stored as it is made.

The current step is derived, never stored: the first step without an answer. So kill -9 or a
power cut mid-wizard resumes exactly there with every earlier answer kept (each answer is one
SQLite transaction). Apply hands each choice to the manager that owns it; choices whose manager
is not part of this build are saved and reported as "stored", never as applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sokoul_appliance.auth.accounts import USERNAME_RE, Accounts, check_new_password
from sokoul_appliance.bus import EventBus
from sokoul_appliance.events import SetupCompleted
from sokoul_appliance.network.roles import DEFAULT_STREAMING_SUBNET, check_plan
from sokoul_appliance.store.database import Store
from sokoul_appliance.store.settings import (
    Settings,
    check_hostname,
    check_secret,
    check_timezone,
    check_urls,
    timezones,
)
from sokoul_appliance.system.identity import SystemIdentity
from sokoul_appliance.vpn.wgconf import WireGuardConfigError, parse

log = logging.getLogger("sokoul.wizard")

STEPS = ("admin", "system", "network", "storage", "vpn", "content", "summary")
DEFAULT_SUBNET = DEFAULT_STREAMING_SUBNET


class HardwareView(Protocol):
    def ports(self) -> list[dict[str, Any]]: ...
    def drives(self) -> list[dict[str, Any]]: ...


APPLY_WAIT = 10.0


class StatusLike(Protocol):
    def status(self) -> tuple[str, str]: ...


class StorageApplier(Protocol):
    read_only: bool

    async def apply_plan(self) -> None: ...
    def status(self) -> tuple[str, str]: ...


class WizardError(Exception):
    """status 400 (fields), 409 (order), 410 (closed), 404 (no such step)."""

    def __init__(self, status: int, message: str, fields: dict[str, str] | None = None) -> None:
        self.status = status
        self.fields = fields or {}
        super().__init__(message)


@dataclass(frozen=True)
class ApplyResult:
    item: str
    status: str  # applied | stored | failed
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"item": self.item, "status": self.status, "detail": self.detail}


def _expect_object(body: Any, allowed: Sequence[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise WizardError(400, "the answer must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise WizardError(
            400, "unknown fields in the answer", {k: "unknown field" for k in unknown}
        )
    return body


class Wizard:
    name = "wizard"
    title = "Setup"

    def __init__(
        self,
        store: Store,
        settings: Settings,
        accounts: Accounts,
        hardware: HardwareView,
        identity: SystemIdentity,
        bus: EventBus,
        storage: StorageApplier | None = None,
        managers: dict[str, StatusLike] | None = None,
    ) -> None:
        self._storage = storage
        self._managers = managers or {}
        self._store = store
        self._settings = settings
        self._accounts = accounts
        self._hardware = hardware
        self._identity = identity
        self._bus = bus
        self._answers: dict[str, dict[str, Any]] = {}
        self.default_hostname = "sokoul"

    async def load(self, default_hostname: str | None) -> None:
        await asyncio.to_thread(timezones)  # reads the tz database once, off the event loop
        if default_hostname:
            self.default_hostname = default_hostname
        for row in await self._store.fetchall("SELECT step, answer FROM wizard_answers"):
            if row["step"] in STEPS:
                self._answers[row["step"]] = json.loads(row["answer"])

    @property
    def complete(self) -> bool:
        return self._settings.get("setup.completed_by") is not None

    @property
    def current_step(self) -> str | None:
        for step in STEPS:
            if step not in self._answers:
                return step
        return None

    def status(self) -> tuple[str, str]:
        by = self._settings.get("setup.completed_by")
        if by == "preseed":
            return "ok", "Set up from the preseed file at first boot."
        if by:
            return "ok", "Setup complete."
        step = self.current_step
        if step is None:
            return "not_configured", "All steps answered; waiting for Apply."
        return "not_configured", f"Setup wizard open (next step: {step})."

    # -- the view ---------------------------------------------------------------------------

    def _public_answers(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for step, answer in self._answers.items():
            shown = dict(answer)
            if step == "vpn":
                conf = self._settings.get("vpn.wireguard_conf")
                shown = {"wireguard_conf": {"set": bool(conf)}}
                if conf:
                    with contextlib.suppress(WireGuardConfigError):
                        shown["summary"] = parse(conf).summary()
            elif step == "content":
                shown = {
                    "tmdb_api_key": {"set": bool(self._settings.get("content.tmdb_api_key"))},
                    "torznab_urls": answer.get("torznab_urls", []),
                }
            out[step] = shown
        return out

    def view(self, authenticated: bool) -> dict[str, Any]:
        if self.complete:
            return {"complete": True, "steps": list(STEPS), "current_step": None, "answers": {}}
        base: dict[str, Any] = {
            "complete": False,
            "steps": list(STEPS),
            "current_step": self.current_step,
            "answers": {},
        }
        if "admin" in self._answers and not authenticated:
            # the admin account exists: the rest of the wizard belongs to its owner
            return {**base, "login_required": True}
        return {
            **base,
            "answers": self._public_answers() if authenticated else {},
            "options": {
                "timezones": list(timezones()),
                "ports": self._hardware.ports(),
                "drives": self._hardware.drives(),
                "defaults": {
                    "hostname": self.default_hostname,
                    "timezone": "Etc/UTC",
                    "streaming_subnet": DEFAULT_SUBNET,
                },
            },
        }

    def needs_login(self) -> bool:
        """Once the admin account exists, the rest of the wizard belongs to its session."""
        return "admin" in self._answers

    # -- answering --------------------------------------------------------------------------

    def _check_order(self, step: str) -> None:
        if self.complete:
            raise WizardError(410, "setup is complete; change settings in the control panel")
        if step not in STEPS:
            raise WizardError(404, f"no wizard step {step!r} (steps: {', '.join(STEPS)})")
        missing = [s for s in STEPS[: STEPS.index(step)] if s not in self._answers]
        if missing:
            raise WizardError(409, f"answer the {missing[0]} step first")

    async def answer(self, step: str, body: Any) -> str | None:
        """Validate and store one step. Returns the username after the admin step."""
        self._check_order(step)
        handler = getattr(self, f"_answer_{step}")
        result: str | None = await handler(body)
        return result

    async def _store_answer(self, step: str, answer: dict[str, Any]) -> None:
        async with self._store.transaction() as db:
            await db.execute(
                "INSERT INTO wizard_answers(step, answer, answered_at) VALUES (?, ?, ?) "
                "ON CONFLICT(step) DO UPDATE SET answer=excluded.answer, "
                "answered_at=excluded.answered_at",
                (step, json.dumps(answer), time.time()),
            )
        self._answers[step] = answer
        log.info("wizard step %s answered", step)

    async def _answer_admin(self, body: Any) -> str:
        b = _expect_object(body, ("username", "password", "password_again"))
        errors: dict[str, str] = {}
        username = b.get("username")
        if not isinstance(username, str) or not USERNAME_RE.match(username):
            errors["username"] = "use 1-32 lowercase letters, digits, '-' or '_'"
        password = b.get("password")
        try:
            check_new_password(password)
        except ValueError as e:
            errors["password"] = str(e)
        if not errors and b.get("password_again") != password:
            errors["password_again"] = "the two passwords differ"
        if errors:
            raise WizardError(400, "please correct the highlighted fields", errors)
        assert isinstance(username, str) and isinstance(password, str)
        await self._accounts.set_password(username, password, source="wizard")
        await self._accounts.rename_only_account(username)
        await self._store_answer("admin", {"username": username})
        return username

    async def _answer_system(self, body: Any) -> None:
        b = _expect_object(body, ("hostname", "timezone"))
        errors: dict[str, str] = {}
        answer: dict[str, Any] = {}
        for name, check in (("hostname", check_hostname), ("timezone", check_timezone)):
            try:
                answer[name] = check(b.get(name))
            except ValueError as e:
                errors[name] = str(e)
        if errors:
            raise WizardError(400, "please correct the highlighted fields", errors)
        await self._store_answer("system", answer)

    async def _answer_network(self, body: Any) -> None:
        b = _expect_object(body, ("internet_port", "streaming_port", "streaming_subnet"))
        plan, errors = check_plan(b, [p["name"] for p in self._hardware.ports()])
        if errors:
            raise WizardError(400, "please correct the highlighted fields", errors)
        await self._store_answer("network", plan)

    async def _answer_storage(self, body: Any) -> None:
        b = _expect_object(body, ("system_drive", "media_drive", "format_media", "confirm"))
        drives = {d["name"]: d for d in self._hardware.drives()}
        errors: dict[str, str] = {}
        system, media = b.get("system_drive"), b.get("media_drive")
        fmt = b.get("format_media", False)
        if system not in drives:
            errors["system_drive"] = f"pick one of: {', '.join(drives) or 'no drive found'}"
        if media is not None and media not in drives:
            errors["media_drive"] = f"pick one of: {', '.join(drives)} (or none)"
        elif media is not None and media == system:
            errors["media_drive"] = "the media drive must be a different drive"
        if not isinstance(fmt, bool):
            errors["format_media"] = "true or false"
        elif fmt and media is None:
            errors["format_media"] = "choose a media drive to format"
        elif fmt and media in drives and not errors:
            drive = drives[media]
            if drive.get("holds_system"):
                errors["media_drive"] = (
                    f"{media} holds the running system and cannot be formatted as media"
                )
            elif b.get("confirm") != drive["confirm_text"]:
                errors["confirm"] = (
                    f"type the drive's model and serial exactly: {drive['confirm_text']}"
                )
        if errors:
            raise WizardError(400, "please correct the highlighted fields", errors)
        answer = {"system_drive": system, "media_drive": media, "format_media": fmt}
        if fmt:
            d = drives[media]
            answer["confirmed"] = {"model": d.get("model"), "serial": d.get("serial")}
        await self._store_answer("storage", answer)

    async def _answer_vpn(self, body: Any) -> None:
        b = _expect_object(body, ("wireguard_conf",))
        conf = b.get("wireguard_conf")
        if conf is not None and not isinstance(conf, str):
            raise WizardError(400, "wireguard_conf must be text or null", {"wireguard_conf": ""})
        conf = (conf or "").strip() or None
        if conf is not None:
            try:
                parse(conf)
            except WireGuardConfigError as e:
                raise WizardError(
                    400,
                    "the WireGuard config has problems: " + "; ".join(e.errors),
                    {"wireguard_conf": "; ".join(e.errors)},
                ) from None
        await self._settings.update({"vpn.wireguard_conf": conf})
        await self._store_answer("vpn", {"configured": conf is not None})

    async def _answer_content(self, body: Any) -> None:
        b = _expect_object(body, ("tmdb_api_key", "torznab_urls"))
        errors: dict[str, str] = {}
        key = b.get("tmdb_api_key")
        urls: list[str] = []
        try:
            key = check_secret(key or "")
        except ValueError as e:
            errors["tmdb_api_key"] = str(e)
        try:
            urls = check_urls(b.get("torznab_urls") or [])
        except ValueError as e:
            errors["torznab_urls"] = str(e)
        if errors:
            raise WizardError(400, "please correct the highlighted fields", errors)
        await self._settings.update({"content.tmdb_api_key": key, "content.torznab_urls": urls})
        await self._store_answer("content", {"torznab_urls": urls})

    async def _answer_summary(self, body: Any) -> None:
        _expect_object(body, ())
        await self._store_answer("summary", {"seen": True})

    # -- apply ------------------------------------------------------------------------------

    async def apply(self) -> list[ApplyResult]:
        if self.complete:
            raise WizardError(410, "setup is complete; change settings in the control panel")
        if self.current_step is not None:
            raise WizardError(409, f"answer the {self.current_step} step first")
        a = self._answers
        results = [
            ApplyResult(
                "Admin account",
                "applied",
                f"Account {a['admin']['username']} created; you are logged in.",
            )
        ]
        system = a["system"]
        await self._settings.update(
            {"system.hostname": system["hostname"], "system.timezone": system["timezone"]}
        )
        outcome = await self._identity.apply(system["hostname"], system["timezone"])
        results.append(ApplyResult("Hostname and timezone", outcome.status, outcome.detail))
        net = a["network"]
        await self._settings.update({"network.plan": net})
        results.append(
            await self._outcome(
                "Network ports",
                "network",
                f"internet on {net['internet_port']}, streaming on {net['streaming_port']} "
                f"({net['streaming_subnet']}, DHCP for TVs)",
            )
        )
        storage = a["storage"]
        await self._settings.update({"storage.plan": storage})
        results.append(await self._apply_storage(storage))
        if self._settings.get("vpn.wireguard_conf"):
            results.append(await self._outcome("WireGuard VPN", "vpn", "config checked"))
        else:
            results.append(ApplyResult("WireGuard VPN", "applied", "No VPN configured."))
        key_set = bool(self._settings.get("content.tmdb_api_key"))
        urls = self._settings.get("content.torznab_urls")
        results.append(
            ApplyResult(
                "Content sources",
                "stored",
                "Saved: "
                + (
                    "TMDB key set (the library looks titles and posters up on TMDB after its scans)"
                    if key_set
                    else "no TMDB key (titles come from the file names)"
                )
                + f"; {len(urls)} Torznab indexer(s) (searching them is not part of this "
                "build yet).",
            )
        )
        await self._settings.update({"setup.completed_by": "wizard"})
        self._bus.publish(SetupCompleted("wizard"))
        log.info("setup wizard applied: %s", ", ".join(f"{r.item}={r.status}" for r in results))
        return results

    async def _outcome(self, item: str, manager: str, saved: str) -> ApplyResult:
        """The choice is saved; the manager that owns it applies it on the settings change.
        Wait (up to APPLY_WAIT s) for its verdict and report that, not a hope."""
        source = self._managers.get(manager)
        if source is None:
            return ApplyResult(
                item, "stored", f"Saved: {saved}. Its manager is not part of this build yet."
            )
        deadline = time.monotonic() + APPLY_WAIT
        state, detail = source.status()
        while state in ("waiting", "not_configured", "degraded") and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            state, detail = source.status()
        if state == "ok":
            return ApplyResult(item, "applied", detail)
        if state == "error":
            return ApplyResult(item, "failed", detail)
        return ApplyResult(item, "stored", f"Saved: {saved}. {detail}")

    async def _apply_storage(self, storage: dict[str, Any]) -> ApplyResult:
        media = storage["media_drive"]
        saved = f"system on {storage['system_drive']}"
        saved += f", media on {media}" if media else ", no media drive"
        if storage["format_media"]:
            saved += f" (format confirmed for {media})"
        if self._storage is None:
            return ApplyResult(
                "Drives",
                "stored",
                f"Saved: {saved}. The storage manager is not running; no drive was formatted.",
            )
        if self._storage.read_only:
            return ApplyResult(
                "Drives",
                "stored",
                f"Saved: {saved}. Simulated board (read-only): no drive was formatted or mounted.",
            )
        try:
            await self._storage.apply_plan()
        except Exception as e:  # the storage room's message is written for a person
            log.error("applying the storage plan failed: %s", e)
            return ApplyResult("Drives", "failed", f"{saved}: {e}")
        state, detail = self._storage.status()
        status = "applied" if state in ("ok", "not_configured") else "failed"
        return ApplyResult("Drives", status, detail)

    async def complete_from_preseed(self, admin_hash: str, hostname: str | None) -> None:
        await self._accounts.set_hash("admin", admin_hash, source="preseed")
        changes: dict[str, Any] = {"setup.completed_by": "preseed"}
        if hostname:
            changes["system.hostname"] = check_hostname(hostname)
        await self._settings.update(changes)
        self._bus.publish(SetupCompleted("preseed"))
        log.info("setup completed from the first-boot preseed (admin account 'admin')")
