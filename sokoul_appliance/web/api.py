"""The JSON API's handlers (docs/api.md). Each reads or changes state only through the
manager that owns it."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import math
from typing import Any

from aiohttp import web

from sokoul_appliance import __version__
from sokoul_appliance.auth.accounts import check_new_password
from sokoul_appliance.auth.sessions import Session
from sokoul_appliance.cast import CastManager, CastRequestError
from sokoul_appliance.dlna.artwork import find_artwork
from sokoul_appliance.network.manager import NetworkChangeError, NetworkReadOnlyError
from sokoul_appliance.storage import StorageUnavailable
from sokoul_appliance.storage.formatting import FormatRefused
from sokoul_appliance.store.settings import SettingsError, flatten_patch, public_field
from sokoul_appliance.torrent.client import EngineError, EngineUnavailable
from sokoul_appliance.web.context import WebContext
from sokoul_appliance.web.errors import ApiError, read_json
from sokoul_appliance.web.openapi import document
from sokoul_appliance.web.realtime import live_updates
from sokoul_appliance.web.security import (
    clear_session_cookie,
    current_session,
    set_session_cookie,
)
from sokoul_appliance.wizard.flow import WizardError

log = logging.getLogger("sokoul.web")


def _session_json(ctx: WebContext, session: Session | None) -> dict[str, Any]:
    return {
        "authenticated": bool(session and session.authenticated),
        "username": session.username if session else None,
        "csrf_token": session.csrf_token if session else None,
        "setup_complete": ctx.wizard.complete,
        "simulated": ctx.simulated,
    }


def _settings_error(e: SettingsError) -> ApiError:
    fields = {public_field(k): v for k, v in e.fields.items()}
    return ApiError(400, "please correct the highlighted settings", fields)


class Api:
    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx
        self._openapi = document()

    def require_login(self, request: web.Request) -> Session:
        session = current_session(request)
        if session is None or not session.authenticated:
            raise ApiError(401, "log in first")
        return session

    # -- public -----------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response(self.ctx.health.report())

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(self._openapi)

    async def session(self, request: web.Request) -> web.Response:
        session = current_session(request)
        if session is not None:
            return web.json_response(_session_json(self.ctx, session))
        cookie, session = self.ctx.sessions.new_anonymous()
        response = web.json_response(_session_json(self.ctx, session))
        set_session_cookie(response, cookie, persistent=False)
        return response

    async def login(self, request: web.Request) -> web.Response:
        ctx = self.ctx
        if not ctx.wizard.complete and not ctx.wizard.needs_login():
            raise ApiError(409, "no account exists yet: start the setup wizard")
        client = request.remote or "unknown"
        wait = ctx.throttle.retry_after(client)
        if wait is not None:
            ctx.metrics.logins.labels("throttled").inc()
            seconds = math.ceil(wait)
            raise ApiError(
                429,
                f"too many failed logins, try again in {seconds} s",
                headers={"Retry-After": str(seconds)},
            )
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, 'send {"username": ..., "password": ...}')
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise ApiError(
                400,
                "username and password are required",
                {"username": "required", "password": "required"},
            )
        if not await ctx.accounts.verify(username, password):
            ctx.metrics.logins.labels("wrong").inc()
            ctx.throttle.failure(client)
            log.warning("failed login for %r from %s", username[:32], client)
            raise ApiError(401, "wrong username or password")
        ctx.throttle.success(client)
        ctx.metrics.logins.labels("ok").inc()
        cookie, session = await ctx.sessions.log_in(username, current_session(request))
        log.info("%s logged in from %s", username, client)
        response = web.json_response(_session_json(ctx, session))
        set_session_cookie(response, cookie, persistent=True)
        return response

    # -- account ----------------------------------------------------------------------------

    async def logout(self, request: web.Request) -> web.Response:
        session = self.require_login(request)
        await self.ctx.sessions.log_out(session)
        response = web.json_response(_session_json(self.ctx, None))
        clear_session_cookie(response)
        return response

    async def change_password(self, request: web.Request) -> web.Response:
        session = self.require_login(request)
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, "send current_password and new_password")
        assert session.username is not None
        current, new = body.get("current_password"), body.get("new_password")
        fields: dict[str, str] = {}
        if not isinstance(current, str) or not await self.ctx.accounts.verify(
            session.username, current
        ):
            fields["current_password"] = "this is not the current password"
        try:
            check_new_password(new)
        except ValueError as e:
            fields["new_password"] = str(e)
        if fields:
            raise ApiError(400, "the password was not changed", fields)
        assert isinstance(new, str)
        await self.ctx.accounts.set_password(session.username, new, source="panel")
        await self.ctx.sessions.end_all_for(session.username, keep=session)
        log.info("password changed for %s", session.username)
        return web.json_response({})

    # -- wizard -----------------------------------------------------------------------------

    async def wizard_state(self, request: web.Request) -> web.Response:
        session = current_session(request)
        return web.json_response(self.ctx.wizard.view(bool(session and session.authenticated)))

    async def wizard_answer(self, request: web.Request) -> web.Response:
        wizard = self.ctx.wizard
        step = request.match_info["step"]
        if wizard.complete:
            raise ApiError(410, "setup is complete; change settings in the control panel")
        session = current_session(request)
        if wizard.needs_login() and not (session and session.authenticated):
            raise ApiError(401, "log in first")
        body = await read_json(request)
        try:
            username = await wizard.answer(step, body)
        except WizardError as e:
            raise ApiError(e.status, str(e), e.fields) from None
        except SettingsError as e:
            raise _settings_error(e) from None
        if username is None:
            return web.json_response(wizard.view(True))
        # the admin step: the browser that made the account is now logged in as it
        cookie, new = await self.ctx.sessions.log_in(username, session)
        await self.ctx.sessions.forget_users_except(username)
        response = web.json_response({**wizard.view(True), "session": _session_json(self.ctx, new)})
        set_session_cookie(response, cookie, persistent=True)
        return response

    async def wizard_apply(self, request: web.Request) -> web.Response:
        if self.ctx.wizard.complete:
            raise ApiError(410, "setup is complete; change settings in the control panel")
        self.require_login(request)
        try:
            results = await self.ctx.wizard.apply()
        except WizardError as e:
            raise ApiError(e.status, str(e), e.fields) from None
        return web.json_response({"complete": True, "results": [r.to_json() for r in results]})

    # -- panel ------------------------------------------------------------------------------

    def _subsystem(self, name: str) -> dict[str, str]:
        for s in self.ctx.subsystems:
            if s.name == name:
                state, detail = s.status()
                return {"state": state, "detail": detail}
        return {"state": "unavailable", "detail": "not part of this build yet"}

    async def overview(self, request: web.Request) -> web.Response:
        self.require_login(request)
        ctx = self.ctx
        subsystems = []
        for s in ctx.subsystems:
            state, detail = s.status()
            subsystems.append({"name": s.name, "title": s.title, "state": state, "detail": detail})
        report = ctx.health.report()
        return web.json_response(
            {
                "hostname": ctx.settings.get("system.hostname"),
                "version": __version__,
                "board": ctx.hardware.board,
                "simulated": report["simulated"],
                "uptime_seconds": report["uptime_seconds"],
                "subsystems": subsystems,
            }
        )

    async def system_body(self) -> dict[str, Any]:
        sample = dict(await self.ctx.hardware.sample())
        problems = sample.pop("problems", None) or []
        state = self._subsystem("board")
        if problems:
            state = {"state": "degraded", "detail": "; ".join(problems[:3])}
        return {
            "board": self.ctx.hardware.board,
            "hostname": self.ctx.settings.get("system.hostname"),
            **sample,
            "slices": self.ctx.cores.snapshot(),
            "thermal": self.ctx.thermal.snapshot(),
            **state,
        }

    async def system(self, request: web.Request) -> web.Response:
        self.require_login(request)
        return web.json_response(await self.system_body())

    async def network(self, request: web.Request) -> web.Response:
        self.require_login(request)
        plan = self.ctx.settings.get("network.plan")
        ports = []
        for p in self.ctx.hardware.ports():
            role = None
            if plan:
                role = {plan["internet_port"]: "internet", plan["streaming_port"]: "streaming"}.get(
                    p["name"]
                )
            ports.append({**p, "role": role})
        manager = self.ctx.network.snapshot()
        return web.json_response(
            {
                "ports": ports,
                "plan": plan,
                "manager": manager,
                "vpn": self.ctx.vpn.snapshot(),
                "state": manager["state"],
                "detail": manager["detail"],
            }
        )

    async def network_change(self, request: web.Request) -> web.Response:
        self.require_login(request)
        body = await read_json(request)
        changes = body.get("changes") if isinstance(body, dict) else None
        if not isinstance(changes, dict):
            raise ApiError(400, 'send {"changes": {"network.<setting>": value, ...}}')
        try:
            trial = await self.ctx.network.apply_change(changes)
        except NetworkReadOnlyError as e:
            raise ApiError(409, str(e)) from None
        except NetworkChangeError as e:
            raise ApiError(400 if e.fields else 409, str(e), e.fields) from None
        log.info("network change %s on trial: %s", trial["id"], ", ".join(sorted(changes)))
        return web.json_response(trial)

    async def network_confirm(self, request: web.Request) -> web.Response:
        self.require_login(request)
        try:
            change = await self.ctx.network.confirm(request.match_info["change"])
        except NetworkChangeError as e:
            raise ApiError(409, str(e)) from None
        return web.json_response(change)

    async def network_revert(self, request: web.Request) -> web.Response:
        self.require_login(request)
        try:
            change = await self.ctx.network.revert(request.match_info["change"])
        except NetworkChangeError as e:
            raise ApiError(409, str(e)) from None
        return web.json_response(change)

    async def storage(self, request: web.Request) -> web.Response:
        self.require_login(request)
        plan = self.ctx.settings.get("storage.plan")
        manager = self.ctx.storage.snapshot()
        in_use = {d["name"]: d["role"] for d in manager["drives"]}
        drives = []
        for d in self.ctx.hardware.drives():
            role = in_use.get(d["name"])
            if role is None and plan:
                role = {plan["system_drive"]: "system", plan.get("media_drive"): "media"}.get(
                    d["name"]
                )
            drives.append({**d, "role": role})
        size, free = self.ctx.health.root_usage()  # one statvfs: microseconds
        return web.json_response(
            {
                "drives": drives,
                "plan": plan,
                "filesystems": [{"mount": "/", "size_bytes": size, "free_bytes": free}],
                "manager": manager,
                "state": manager["state"],
                "detail": manager["detail"],
            }
        )

    async def storage_format(self, request: web.Request) -> web.Response:
        self.require_login(request)
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, 'send {"drive", "role", "confirm"}')
        drive, role, confirm = body.get("drive"), body.get("role"), body.get("confirm")
        fields = {}
        if not isinstance(drive, str):
            fields["drive"] = "the drive's name, e.g. nvme1n1"
        if role not in ("media", "cold"):
            fields["role"] = "media or cold"
        if not isinstance(confirm, str):
            fields["confirm"] = "type the drive's model and serial"
        if fields:
            raise ApiError(400, "please correct the highlighted fields", fields)
        assert isinstance(drive, str) and isinstance(role, str) and isinstance(confirm, str)
        try:
            await self.ctx.storage.format_drive(drive, role, confirm)
        except (FormatRefused, StorageUnavailable) as e:
            raise ApiError(409, str(e), {"confirm": str(e)}) from None
        log.info("%s formatted as the %s drive", drive, role)
        return web.json_response(self.ctx.storage.snapshot())

    async def storage_release(self, request: web.Request) -> web.Response:
        self.require_login(request)
        body = await read_json(request)
        role = body.get("role") if isinstance(body, dict) else None
        if role not in ("media", "cold"):
            raise ApiError(400, "role must be media or cold", {"role": "media or cold"})
        try:
            await self.ctx.storage.release(role)
        except StorageUnavailable as e:
            raise ApiError(409, str(e)) from None
        return web.json_response(self.ctx.storage.snapshot())

    async def library(self, request: web.Request) -> web.Response:
        self.require_login(request)
        q = request.query
        kind = q.get("kind") or None
        if kind not in (None, "movie", "episode", "other"):
            raise ApiError(
                400, "kind must be movie, episode or other", {"kind": "movie/episode/other"}
            )
        try:
            offset = int(q.get("offset", "0"))
            limit = int(q.get("limit", "60"))
        except ValueError:
            raise ApiError(400, "offset and limit must be numbers") from None
        if not (offset >= 0 and 1 <= limit <= 500):
            raise ApiError(400, "offset >= 0 and limit 1-500", {"limit": "1-500"})
        total, items = await self.ctx.library.items(
            kind=kind, query=(q.get("q") or None), offset=offset, limit=limit
        )
        tmdb = await self.ctx.library.tmdb_details(items)
        resume = await self.ctx.library.bookmarks([i.id for i in items])
        root = self.ctx.library.host.root

        def art_beside() -> list[bool]:
            # the scan's own relative paths under the host root (as the DLNA layer does)
            return [find_artwork(root / i.appliance_path.lstrip("/")) is not None for i in items]

        beside = await asyncio.to_thread(art_beside)
        out = []
        for item, has_art in zip(items, beside, strict=True):
            d = item.to_dict()
            facts = tmdb.get(item.id, {})
            d["tmdb_id"] = facts.get("tmdb_id")
            d["overview"] = facts.get("overview")
            has_poster = has_art or bool(facts.get("poster_file"))
            d["poster"] = f"/api/library/{item.id}/poster" if has_poster else None
            d["resume_seconds"] = resume.get(item.id)  # where a TV stopped (X_SetBookmark)
            out.append(d)
        return web.json_response(
            {
                "total": total,
                "items": out,
                "library": self.ctx.library.snapshot(),
                **self._subsystem("library"),
            }
        )

    async def library_poster(self, request: web.Request) -> web.StreamResponse:
        """An item's poster: an image beside its file first, else the cached TMDB one.
        Ids only, never paths."""
        self.require_login(request)
        item = await self.ctx.library.item(request.match_info["item"])
        if item is None:
            raise ApiError(404, "no such library item")
        video = self.ctx.library.host.root / item.appliance_path.lstrip("/")
        cached = await self.ctx.library.tmdb_poster(item)
        art = await asyncio.to_thread(find_artwork, video, cached)
        if art is None:
            raise ApiError(404, "this item has no poster")
        return web.FileResponse(
            art.path, headers={"Content-Type": art.mime, "Cache-Control": "private, max-age=3600"}
        )

    async def downloads(self, request: web.Request) -> web.Response:
        self.require_login(request)
        snap = self.ctx.torrents.snapshot()
        return web.json_response(
            {
                "torrents": snap["torrents"],
                "engine": snap["engine"],
                "limits": snap["limits"],
                "paused_by": snap["paused_by"],
                "state": snap["state"],
                "detail": snap["detail"],
            }
        )

    async def downloads_add(self, request: web.Request) -> web.Response:
        self.require_login(request)
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, 'send {"magnet": ...}, {"torrent": base64} or {"url": ...}')
        magnet, torrent, url = body.get("magnet"), body.get("torrent"), body.get("url")
        given = [k for k, v in (("magnet", magnet), ("torrent", torrent), ("url", url)) if v]
        if len(given) != 1 or not all(isinstance(body[k], str) for k in given):
            raise ApiError(400, "give exactly one of magnet, torrent (base64) or url")
        raw: bytes | None = None
        if isinstance(torrent, str):
            try:
                raw = base64.b64decode(torrent, validate=True)
            except (binascii.Error, ValueError):
                raise ApiError(400, "torrent must be the .torrent file in base64",
                               {"torrent": "not base64"}) from None  # fmt: skip
        try:
            tid = await self.ctx.torrents.add(
                magnet=magnet if isinstance(magnet, str) else None,
                torrent=raw,
                url=url if isinstance(url, str) else None,
            )
        except StorageUnavailable as e:
            raise ApiError(409, f"downloads have no place: {e}") from None
        except (EngineError, EngineUnavailable) as e:
            raise ApiError(400, str(e), {given[0]: str(e)}) from None
        log.info("download added (%s)", given[0])
        return web.json_response({"id": tid})

    async def downloads_action(self, request: web.Request) -> web.Response:
        self.require_login(request)
        tid, action = request.match_info["torrent"], request.match_info["action"]
        body = await read_json(request) if request.can_read_body else {}
        try:
            if action == "play":
                file = body.get("file") if isinstance(body, dict) else None
                if file is not None and (isinstance(file, bool) or not isinstance(file, int)):
                    raise ApiError(400, "file must be a file number", {"file": "a number"})
                return web.json_response(await self.ctx.torrents.play(tid, file))
            if action == "pause":
                await self.ctx.torrents.pause(tid)
            elif action == "resume":
                await self.ctx.torrents.resume(tid)
            elif action == "remove":
                delete = bool(isinstance(body, dict) and body.get("delete_files"))
                await self.ctx.torrents.remove(tid, delete_files=delete)
            else:
                raise ApiError(404, f"no action {action!r} (pause, resume, remove, play)")
        except (EngineError, EngineUnavailable) as e:
            raise ApiError(409, str(e)) from None
        return web.json_response({})

    def _dlna_list(self, method: str) -> list[Any]:
        """A list the DLNA server gives (empty without one): ``description_urls`` (what a TV
        fetches after SSDP) or ``clients`` (the TVs and players that browsed lately)."""
        for s in self.ctx.subsystems:
            get = getattr(s, method, None)
            if s.name == "dlna" and callable(get):
                return list(get())
        return []

    async def devices(self, request: web.Request) -> web.Response:
        self.require_login(request)
        dlna_state, cast = self._subsystem("dlna"), self._subsystem("cast")
        urls = self._dlna_list("description_urls")
        dlna: dict[str, Any] = {**dlna_state, "description_urls": urls}
        worst = dlna_state if dlna_state["state"] != "ok" else cast
        chromecasts = self.ctx.cast.snapshot() if self.ctx.cast is not None else []
        return web.json_response(
            {
                "renderers": self._dlna_list("clients"),
                "chromecasts": chromecasts,
                "dlna": dlna,
                "cast": cast,
                **worst,
            }
        )

    def _cast_manager(self) -> CastManager:
        if self.ctx.cast is None:
            raise ApiError(503, "casting is not part of this build")
        return self.ctx.cast

    async def cast_start(self, request: web.Request) -> web.Response:
        self.require_login(request)
        manager = self._cast_manager()
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, 'send {"device": id, "item": id}')
        device, item, subs = body.get("device"), body.get("item"), body.get("subtitles", True)
        fields = {k: "required" for k, v in (("device", device), ("item", item)) if not v}
        if fields or not isinstance(device, str) or not isinstance(item, str):
            raise ApiError(400, "give the device and the item to cast", fields or None)
        if not isinstance(subs, bool):
            raise ApiError(400, "subtitles is true or false", {"subtitles": "a boolean"})
        try:
            return web.json_response(await manager.cast(device, item, subtitles=subs))
        except CastRequestError as e:
            raise ApiError(e.status, str(e)) from None

    async def cast_control(self, request: web.Request) -> web.Response:
        self.require_login(request)
        manager = self._cast_manager()
        device, action = request.match_info["device"], request.match_info["action"]
        body = await read_json(request) if request.can_read_body else {}
        value = body.get("value") if isinstance(body, dict) else None
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ApiError(400, "value must be a number", {"value": "a number"})
        try:
            return web.json_response(
                await manager.control(device, action, None if value is None else float(value))
            )
        except CastRequestError as e:
            raise ApiError(e.status, str(e)) from None

    async def logs(self, request: web.Request) -> web.Response:
        self.require_login(request)
        raw = request.query.get("lines", "200")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            raise ApiError(400, "lines must be a number from 1 to 1000", {"lines": "1-1000"})
        lines = self.ctx.logs.recent(int(raw))
        return web.json_response({"lines": [ln.to_json() for ln in lines]})

    async def get_settings(self, request: web.Request) -> web.Response:
        self.require_login(request)
        return web.json_response(self.ctx.settings.public_view())

    async def patch_settings(self, request: web.Request) -> web.Response:
        self.require_login(request)
        body = await read_json(request)
        try:
            await self.ctx.settings.update(flatten_patch(body))
        except SettingsError as e:
            raise _settings_error(e) from None
        log.info("settings changed: %s", ", ".join(sorted(body)))
        return web.json_response(self.ctx.settings.public_view())

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        self.require_login(request)
        return await live_updates(request, self.ctx, self.system_body)
