"""The engine socket protocol: framing, request parsing, argument checks, replies."""

from __future__ import annotations

import pytest

from sokoul_appliance.torrent import protocol
from sokoul_appliance.torrent.protocol import ProtocolError, Request


def test_encode_is_one_compact_line_and_decodes_back() -> None:
    msg = {"id": 3, "op": "add", "magnet": "magnet:?xt=urn:btih:" + "a" * 40}
    line = protocol.encode(msg)
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and b" " not in line
    assert protocol.decode(line) == msg


@pytest.mark.parametrize(
    ("line", "error"),
    [(b"not json\n", "not JSON"), (b"[1, 2]\n", "JSON object"), (b"\xff\xfe\n", "not JSON")],
)
def test_decode_refuses_what_is_not_a_json_object(line: bytes, error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        protocol.decode(line)


def test_parse_request_splits_id_op_and_args() -> None:
    req = protocol.parse_request({"id": 9, "op": "pause", "torrent": "ab"})
    assert req == Request(9, "pause", {"torrent": "ab"})


@pytest.mark.parametrize(
    ("obj", "error"),
    [
        ({"op": "ping"}, "integer 'id'"),
        ({"id": True, "op": "ping"}, "integer 'id'"),
        ({"id": "1", "op": "ping"}, "integer 'id'"),
        ({"id": 1, "op": "explode"}, "unknown op 'explode'"),
        ({"id": 1}, "unknown op None"),
    ],
)
def test_parse_request_refusals(obj: dict[str, object], error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        protocol.parse_request(obj)


def test_every_documented_op_is_known() -> None:
    for op in ("add", "pause", "resume", "remove", "limits", "torrent_limits", "file_priorities",
               "files", "status", "subscribe", "settings", "open_stream", "read",
               "close_stream", "save", "ping", "connect"):  # fmt: skip
        assert op in protocol.OPS


def test_argument_checks() -> None:
    req = Request(1, "read", {"torrent": "ab", "offset": 10, "flag": True, "t": 2, "neg": -1})
    assert req.str_arg("torrent") == "ab"
    assert req.int_arg("offset") == 10
    assert req.int_arg("length", 5) == 5
    assert req.float_arg("t", 30.0) == 2.0
    assert req.bool_arg("flag") is True and req.bool_arg("other") is False
    with pytest.raises(ProtocolError, match="'neg' must be an integer >= 0"):
        req.int_arg("neg")
    with pytest.raises(ProtocolError, match="'flag' must be an integer"):
        req.int_arg("flag")  # a bool is not a number here
    with pytest.raises(ProtocolError, match="'missing' must be a non-empty string"):
        req.str_arg("missing")
    with pytest.raises(ProtocolError, match="true or false"):
        req.bool_arg("offset")


def test_replies() -> None:
    assert protocol.reply_ok(4, {"a": 1}) == {"id": 4, "ok": True, "result": {"a": 1}}
    assert protocol.reply_error(None, "bad") == {"id": None, "ok": False, "error": "bad"}
