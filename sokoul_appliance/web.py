"""HTTP surface: /api/health (JSON) and /metrics (Prometheus)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sokoul_appliance.health import HealthReporter
from sokoul_appliance.metrics import SupervisorMetrics

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(health: HealthReporter, metrics: SupervisorMetrics) -> web.Application:
    @web.middleware
    async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            metrics.http_requests.labels(name, f"{exc.status // 100}xx").inc()
            raise
        metrics.http_requests.labels(name, f"{response.status // 100}xx").inc()
        return response

    async def get_health(request: web.Request) -> web.Response:
        return web.json_response(health.report())

    async def get_metrics(request: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application(middlewares=[count_requests])
    app.router.add_get("/api/health", get_health)
    app.router.add_get("/metrics", get_metrics)
    return app
