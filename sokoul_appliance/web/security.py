"""Sessions on every request, CSRF on every state change, security headers on every answer."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from sokoul_appliance.auth.sessions import COOKIE, LOGGED_IN_IDLE, Session, Sessions
from sokoul_appliance.metrics import SupervisorMetrics
from sokoul_appliance.web.errors import ApiError

log = logging.getLogger("sokoul.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def current_session(request: web.Request) -> Session | None:
    session: Session | None = request.get("session")
    return session


def set_session_cookie(response: web.StreamResponse, cookie: str, persistent: bool) -> None:
    response.set_cookie(
        COOKIE,
        cookie,
        httponly=True,
        samesite="Strict",
        path="/",
        max_age=LOGGED_IN_IDLE if persistent else None,
    )


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/")


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.host


def build_middlewares(sessions: Sessions, metrics: SupervisorMetrics) -> list[object]:
    @web.middleware
    async def headers_and_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        try:
            response = await handler(request)
        except ApiError as e:
            response = e.response()
        except web.HTTPException as e:
            if e.status >= 400 and request.path.startswith("/api/"):
                response = ApiError(e.status, e.reason).response()
            else:
                raise
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            response = ApiError(500, "internal error; the Logs page has the details").response()
        if not response.prepared:
            for k, v in HEADERS.items():
                response.headers.setdefault(k, v)
            if request.path.startswith("/api/"):
                response.headers.setdefault("Cache-Control", "no-store")
        metrics.http_requests.labels(name, f"{response.status // 100}xx").inc()
        metrics.http_seconds.labels(name).observe(time.perf_counter() - started)
        return response

    @web.middleware
    async def session_and_csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
        request["session"] = await sessions.lookup(request.cookies.get(COOKIE))
        if request.method not in SAFE_METHODS:
            session = current_session(request)
            sent = request.headers.get("X-CSRF-Token", "")
            if (
                session is None
                or not sent
                or not hmac.compare_digest(sent.encode(), session.csrf_token.encode())
                or not _same_origin(request)
            ):
                metrics.csrf_refusals.inc()
                raise ApiError(
                    403,
                    "missing or wrong CSRF token: reload the page (it fetches /api/session) "
                    "and try again",
                )
        return await handler(request)

    return [headers_and_errors, session_and_csrf]
