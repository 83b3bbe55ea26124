"""The torrent speed-limit settings: bytes per second, 0 = unlimited, validated and reachable
through the PATCH body's nested shape."""

from __future__ import annotations

import pytest

from sokoul_appliance.store.settings import (
    KEYS,
    SettingsError,
    check_rate_limit,
    flatten_patch,
    public_field,
)

pytestmark = pytest.mark.unit


def test_limits_default_to_unlimited() -> None:
    assert KEYS["torrent.download_limit"].default == 0
    assert KEYS["torrent.upload_limit"].default == 0


@pytest.mark.parametrize("good", [0, 1, 65536, 50 * 1024 * 1024, 10**10])
def test_whole_bytes_per_second_are_accepted(good: int) -> None:
    assert check_rate_limit(good) == good


@pytest.mark.parametrize("bad", [-1, 1.5, "1M", None, True, 10**10 + 1])
def test_anything_else_is_refused_with_a_reason(bad: object) -> None:
    with pytest.raises(ValueError, match="bytes per second"):
        check_rate_limit(bad)


def test_patch_body_reaches_the_keys() -> None:
    body = {"torrent": {"download_limit": 1024, "upload_limit": 0}}
    assert flatten_patch(body) == {"torrent.download_limit": 1024, "torrent.upload_limit": 0}
    assert public_field("torrent.upload_limit") == "torrent.upload_limit"
    with pytest.raises(SettingsError) as e:
        flatten_patch({"torrent": {"ratio": 2}})
    assert e.value.fields == {"torrent.ratio": "unknown setting"}
