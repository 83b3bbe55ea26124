"""The `web` room: aiohttp app serving the wizard + panel UI, the JSON API and /metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sokoul_appliance.web.api import Api
from sokoul_appliance.web.context import WebContext
from sokoul_appliance.web.errors import MAX_BODY
from sokoul_appliance.web.routes import ROUTES
from sokoul_appliance.web.security import build_middlewares

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(ctx: WebContext) -> web.Application:
    api = Api(ctx)
    app = web.Application(
        middlewares=build_middlewares(ctx.sessions, ctx.metrics),  # type: ignore[arg-type]
        client_max_size=MAX_BODY,
    )
    for route in ROUTES:
        handler: Handler = getattr(api, route.handler)
        app.router.add_route(route.method, route.path, handler)

    async def get_metrics(request: web.Request) -> web.Response:
        body = generate_latest(ctx.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    index = ctx.static_dir / "index.html"

    async def get_index(request: web.Request) -> web.FileResponse:
        if not index.is_file():
            raise web.HTTPNotFound(text="the panel's files are missing from this installation")
        return web.FileResponse(index, headers={"Cache-Control": "no-cache"})

    # /stream and /subtitles: public like a DLNA server's (TVs have no session); object ids
    # only, never paths
    app.add_routes(ctx.stream.routes())
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/", get_index)
    if ctx.static_dir.is_dir():
        app.router.add_static("/static/", ctx.static_dir, follow_symlinks=False)
    return app
