"""One WebSocket per open panel: system samples every 2 s, log lines and events as they happen."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from sokoul_appliance.events import (
    CastDeviceChanged,
    CastDeviceRemoved,
    DownloadsSampled,
    LogLine,
    ManagerStateChanged,
    SettingsChanged,
    SetupCompleted,
    SystemSampled,
)
from sokoul_appliance.web.errors import ApiError

if TYPE_CHECKING:
    from sokoul_appliance.web.context import WebContext

log = logging.getLogger("sokoul.web")


def _message(event: object) -> dict[str, Any] | None:
    if isinstance(event, LogLine):
        return {"type": "log", "data": event.to_json()}
    if isinstance(event, SettingsChanged):
        return {"type": "event", "data": {"name": "settings.changed", "keys": list(event.keys)}}
    if isinstance(event, SetupCompleted):
        return {"type": "event", "data": {"name": "setup.completed", "source": event.source}}
    if isinstance(event, CastDeviceChanged):
        return {"type": "event", "data": {"name": "cast.device", "device": event.device}}
    if isinstance(event, CastDeviceRemoved):
        return {"type": "event", "data": {"name": "cast.removed", "id": event.device_id}}
    if isinstance(event, DownloadsSampled):
        return {"type": "event", "data": {"name": "downloads", "torrents": list(event.torrents)}}
    if isinstance(event, ManagerStateChanged):
        return {
            "type": "event",
            "data": {
                "name": "manager.state",
                "manager": event.name,
                "state": event.state,
                "detail": event.detail,
            },
        }
    return None


async def live_updates(
    request: web.Request,
    ctx: WebContext,
    system_body: Callable[[], Awaitable[dict[str, Any]]],
) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    if origin is not None and origin.split("://", 1)[-1] != request.host:
        raise ApiError(403, "WebSocket from another site refused")
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=4096)
    await ws.prepare(request)
    ctx.metrics.websockets.inc()
    types = (
        LogLine,
        SettingsChanged,
        SetupCompleted,
        ManagerStateChanged,
        SystemSampled,
        CastDeviceChanged,
        CastDeviceRemoved,
        DownloadsSampled,
    )
    try:
        with ctx.bus.subscribe(*types) as sub, ctx.hardware.watch():
            await ws.send_json({"type": "system", "data": await system_body()})

            async def drain_client() -> None:
                async for msg in ws:  # the client sends nothing; this notices it closing
                    if msg.type == WSMsgType.ERROR:
                        break

            reader = asyncio.create_task(drain_client())
            try:
                while not reader.done():
                    getter = asyncio.ensure_future(sub.get())
                    done, _ = await asyncio.wait(
                        {getter, reader}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if getter not in done:
                        getter.cancel()
                        break
                    event = getter.result()
                    if isinstance(event, SystemSampled):
                        msg = {"type": "system", "data": await system_body()}
                    else:
                        msg_or_none = _message(event)
                        if msg_or_none is None:
                            continue
                        msg = msg_or_none
                    await ws.send_json(msg)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
    except (ConnectionResetError, RuntimeError) as e:
        log.debug("websocket closed: %s", e)
    finally:
        ctx.metrics.websockets.dec()
        await ws.close()
    return ws
