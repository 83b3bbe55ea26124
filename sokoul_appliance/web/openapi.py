"""OpenAPI 3.1 document generated from the route table."""

from __future__ import annotations

from typing import Any

from sokoul_appliance import __version__
from sokoul_appliance.web.routes import PUBLIC, ROUTES, WIZARD

ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "required": ["message"],
        }
    },
}


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for r in ROUTES:
        op: dict[str, Any] = {
            "operationId": r.handler,
            "summary": r.summary,
            "tags": [r.tag],
            "responses": {
                "200": {"description": "OK", "content": {r.response: {}}},
                "4XX": {
                    "description": "An error a person can act on",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                },
            },
        }
        if r.access != PUBLIC:
            op["security"] = [{"session": []}]
        if r.access == WIZARD:
            op["description"] = (
                "Open while setup is not complete (410 afterwards); after the admin step, "
                "a logged-in session is required."
            )
        if r.method not in ("GET", "HEAD"):
            op.setdefault("parameters", []).append(
                {
                    "name": "X-CSRF-Token",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                }
            )
        for name in ("step", "change", "torrent", "action", "item"):
            if "{" + name + "}" in r.path:
                op.setdefault("parameters", []).append(
                    {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                )
        if r.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": r.body}},
            }
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SOKOUL Appliance supervisor API",
            "version": __version__,
            "description": "Used by the setup wizard and the control panel (docs/api.md).",
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR},
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "sokoul_session"}
            },
        },
    }
