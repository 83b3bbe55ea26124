"""JSON errors every API route answers with: {"error": {"message": ..., "fields": {...}}}."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

MAX_BODY = 256 * 1024


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields or {}
        self.headers = headers or {}

    def response(self) -> web.Response:
        error: dict[str, Any] = {"message": self.message}
        if self.fields:
            error["fields"] = self.fields
        return web.json_response({"error": error}, status=self.status, headers=self.headers)


async def read_json(request: web.Request) -> Any:
    """The request's JSON body, or a 400/413/415 a person can act on."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, f"the request body is larger than {MAX_BODY // 1024} KiB")
    if request.content_type != "application/json":
        raise ApiError(415, "send the body as JSON (Content-Type: application/json)")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise ApiError(413, f"the request body is larger than {MAX_BODY // 1024} KiB")
    try:
        return json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the body is not valid JSON: {e}") from None
