"""Newline-delimited JSON over a Unix socket between the supervisor and the torrent engine.

Request:  ``{"id": 7, "op": "add", "magnet": "magnet:?xt=..."}``
Reply:    ``{"id": 7, "ok": true, "result": {...}}`` or ``{"id": 7, "ok": false, "error": "..."}``
(an error may carry ``"code": "timeout"``)
Event:    ``{"event": "status", "torrents": [...]}`` (only on a connection that sent
``subscribe``; events carry no id).

One message per line; a line is at most ``MAX_LINE`` bytes (a .torrent file travels base64).
Pure module: no libtorrent, no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MAX_LINE = 32 * 1024 * 1024

OPS = frozenset(
    {
        "add",
        "pause",
        "resume",
        "remove",
        "limits",
        "torrent_limits",
        "file_priorities",
        "files",
        "status",
        "subscribe",
        "settings",
        "open_stream",
        "read",
        "close_stream",
        "save",
        "ping",
        "connect",
    }
)


class ProtocolError(ValueError):
    """A message that is not valid protocol; the text is meant for the sender."""


@dataclass(frozen=True)
class Request:
    id: int
    op: str
    args: dict[str, Any] = field(default_factory=dict)

    def str_arg(self, name: str, default: str | None = None) -> str:
        value = self.args.get(name, default)
        if not isinstance(value, str) or not value:
            raise ProtocolError(f"{self.op}: '{name}' must be a non-empty string")
        return value

    def int_arg(self, name: str, default: int | None = None, minimum: int = 0) -> int:
        value = self.args.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ProtocolError(f"{self.op}: '{name}' must be an integer >= {minimum}")
        return int(value)

    def float_arg(self, name: str, default: float, minimum: float = 0.0) -> float:
        value = self.args.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise ProtocolError(f"{self.op}: '{name}' must be a number >= {minimum}")
        return float(value)

    def bool_arg(self, name: str, default: bool = False) -> bool:
        value = self.args.get(name, default)
        if not isinstance(value, bool):
            raise ProtocolError(f"{self.op}: '{name}' must be true or false")
        return value


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError(f"not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("a message is a JSON object")
    return obj


def parse_request(obj: dict[str, Any]) -> Request:
    rid = obj.get("id")
    if isinstance(rid, bool) or not isinstance(rid, int):
        raise ProtocolError("a request carries an integer 'id'")
    op = obj.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise ProtocolError(f"unknown op {op!r}; known: {', '.join(sorted(OPS))}")
    args = {k: v for k, v in obj.items() if k not in ("id", "op")}
    return Request(rid, op, args)


def reply_ok(rid: int, result: Any = None) -> dict[str, Any]:
    return {"id": rid, "ok": True, "result": result}


def reply_error(rid: int | None, error: str, code: str | None = None) -> dict[str, Any]:
    """``code`` lets the caller tell kinds apart without parsing the text ("timeout": a stream
    read whose pieces did not arrive in time)."""
    msg: dict[str, Any] = {"id": rid, "ok": False, "error": error}
    if code is not None:
        msg["code"] = code
    return msg
