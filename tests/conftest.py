"""Shared test setup: import paths for the builder and first boot, markers by folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
for extra in (REPO, REPO / "image", REPO / "first_boot"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test's tier is its folder: tests/unit, tests/integration, tests/image."""
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in ("unit", "integration", "image"):
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture
def repo() -> Path:
    return REPO
