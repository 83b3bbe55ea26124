"""The route table: one entry per API route, with who may call it and what it takes.

The server registers exactly these routes and `/api/openapi.json` is generated from the same
table, so the document cannot drift from what is served.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PUBLIC = "public"  # anyone
SESSION = "session"  # a logged-in session
WIZARD = "wizard"  # open while setup is not complete; the handler applies the step rules


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: str  # name of the Api method
    access: str
    summary: str
    tag: str
    body: dict[str, Any] | None = None  # JSON schema of the request body
    response: str = "application/json"  # media type of a 200 answer


def _obj(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": list(required),
        "additionalProperties": False,
    }


STR = {"type": "string"}
NULLABLE_STR = {"type": ["string", "null"]}
BOOL = {"type": "boolean"}
NUM = {"type": "number"}

WIZARD_STEP_BODIES: dict[str, dict[str, Any]] = {
    "admin": _obj(
        {"username": STR, "password": STR, "password_again": STR},
        ("username", "password", "password_again"),
    ),
    "system": _obj({"hostname": STR, "timezone": STR}, ("hostname", "timezone")),
    "network": _obj(
        {"internet_port": STR, "streaming_port": STR, "streaming_subnet": STR},
        ("internet_port", "streaming_port"),
    ),
    "storage": _obj(
        {"system_drive": STR, "media_drive": NULLABLE_STR, "format_media": BOOL, "confirm": STR},
        ("system_drive",),
    ),
    "vpn": _obj({"wireguard_conf": NULLABLE_STR}),
    "content": _obj(
        {"tmdb_api_key": NULLABLE_STR, "torznab_urls": {"type": "array", "items": STR}}
    ),
    "summary": _obj({}),
}

ROUTES: tuple[Route, ...] = (
    Route("GET", "/api/health", "health", PUBLIC, "Health of every manager", "system"),
    Route("GET", "/api/openapi.json", "openapi", PUBLIC, "This API's OpenAPI document", "system"),
    Route("GET", "/api/session", "session", PUBLIC, "Session state and CSRF token", "auth"),
    Route(
        "POST",
        "/api/login",
        "login",
        PUBLIC,
        "Log in (throttled after 5 failures)",
        "auth",
        _obj({"username": STR, "password": STR}, ("username", "password")),
    ),
    Route("POST", "/api/logout", "logout", SESSION, "Log out", "auth"),
    Route(
        "POST",
        "/api/account/password",
        "change_password",
        SESSION,
        "Change the admin password",
        "auth",
        _obj({"current_password": STR, "new_password": STR}, ("current_password", "new_password")),
    ),
    Route("GET", "/api/wizard", "wizard_state", WIZARD, "Setup wizard state", "wizard"),
    Route(
        "PUT",
        "/api/wizard/steps/{step}",
        "wizard_answer",
        WIZARD,
        "Answer one wizard step (admin, system, network, storage, vpn, content, summary)",
        "wizard",
        {"oneOf": list(WIZARD_STEP_BODIES.values())},
    ),
    Route("POST", "/api/wizard/apply", "wizard_apply", WIZARD, "Apply the setup", "wizard"),
    Route("GET", "/api/overview", "overview", SESSION, "Every subsystem at a glance", "panel"),
    Route("GET", "/api/system", "system", SESSION, "Clusters, thermal zones, fans", "panel"),
    Route("GET", "/api/network", "network", SESSION, "Ports and their roles", "panel"),
    Route("GET", "/api/storage", "storage", SESSION, "Drives and filesystems", "panel"),
    Route(
        "POST",
        "/api/network/changes",
        "network_change",
        SESSION,
        "Apply a network change on trial: rolled back after 90 s unless confirmed",
        "panel",
        _obj({"changes": {"type": "object"}}, ("changes",)),
    ),
    Route(
        "POST",
        "/api/network/changes/{change}/confirm",
        "network_confirm",
        SESSION,
        "Keep the network change on trial",
        "panel",
    ),
    Route(
        "POST",
        "/api/network/changes/{change}/revert",
        "network_revert",
        SESSION,
        "Undo the network change on trial now",
        "panel",
    ),
    Route(
        "POST",
        "/api/storage/format",
        "storage_format",
        SESSION,
        "Format a drive for the media or cold role (typed model + serial required)",
        "panel",
        _obj({"drive": STR, "role": STR, "confirm": STR}, ("drive", "role", "confirm")),
    ),
    Route(
        "POST",
        "/api/storage/release",
        "storage_release",
        SESSION,
        "Stop using the media or cold drive (its data stays on it)",
        "panel",
        _obj({"role": STR}, ("role",)),
    ),
    Route("GET", "/api/library", "library", SESSION, "Library items", "panel"),
    Route(
        "GET",
        "/api/library/{item}/poster",
        "library_poster",
        SESSION,
        "An item's poster (an image beside its file, else the cached TMDB one; 404 without)",
        "panel",
        response="image/*",
    ),
    Route("GET", "/api/downloads", "downloads", SESSION, "Downloads", "panel"),
    Route(
        "POST",
        "/api/downloads",
        "downloads_add",
        SESSION,
        "Add a download (magnet, .torrent in base64, or .torrent URL)",
        "panel",
        _obj({"magnet": STR, "torrent": STR, "url": STR}),
    ),
    Route(
        "POST",
        "/api/downloads/{torrent}/{action}",
        "downloads_action",
        SESSION,
        "Pause, resume, remove or play a download (remove: {delete_files: bool}; "
        "play: {file: n} optional, answers {stream: '/stream/dl-…'})",
        "panel",
    ),
    Route("GET", "/api/devices", "devices", SESSION, "DLNA renderers and Chromecasts", "panel"),
    Route(
        "POST",
        "/api/cast",
        "cast_start",
        SESSION,
        "Cast a library item (it-…) or a streamed download (dl-…) to a Chromecast",
        "panel",
        _obj({"device": STR, "item": STR, "subtitles": BOOL}, ("device", "item")),
    ),
    Route(
        "POST",
        "/api/cast/{device}/{action}",
        "cast_control",
        SESSION,
        "Control a cast: play, pause, stop, seek {value: seconds}, volume {value: 0-1}",
        "panel",
        _obj({"value": NUM}),
    ),
    Route("GET", "/api/logs", "logs", SESSION, "Recent supervisor log lines", "panel"),
    Route("GET", "/api/settings", "get_settings", SESSION, "Settings", "panel"),
    Route(
        "PATCH",
        "/api/settings",
        "patch_settings",
        SESSION,
        "Change settings (any subset)",
        "panel",
        _obj(
            {
                "hostname": STR,
                "timezone": STR,
                "thermal": _obj({"throttle_c": NUM, "release_c": NUM, "critical_c": NUM}),
                "content": _obj(
                    {"tmdb_api_key": STR, "torznab_urls": {"type": "array", "items": STR}}
                ),
                "dlna": _obj({"serve_lan": BOOL}),
                "torrent": _obj({"download_limit": NUM, "upload_limit": NUM}),
                "storage": _obj(
                    {
                        "free_watermark_percent": NUM,
                        "cold_after_days": NUM,
                        "cleanup_watched_days": NUM,
                    }
                ),
            }
        ),
    ),
    Route("GET", "/api/ws", "websocket", SESSION, "Live updates (WebSocket)", "panel"),
)
