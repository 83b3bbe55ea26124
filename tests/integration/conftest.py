"""Fixtures shared by the torrent tests (engine, manager, streaming over HTTP, unit mode,
"Play now" in the browser)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def content() -> Iterator[Any]:
    """The generated multi-file torrent and its files (tests/integration/test_torrent_engine.py
    `Content`), once per module."""
    from tests.integration.test_torrent_engine import Content, private_dir

    d = private_dir("seed")
    try:
        yield Content(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def work() -> Iterator[Path]:
    """A private folder for engines, seeders and downloads (kept with SOKOUL_TEST_KEEP=1)."""
    from tests.integration.test_torrent_engine import private_dir

    d = private_dir("work")
    try:
        yield d
    finally:
        if not os.environ.get("SOKOUL_TEST_KEEP"):
            shutil.rmtree(d, ignore_errors=True)
