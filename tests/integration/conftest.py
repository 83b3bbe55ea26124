"""Fixtures shared by integration tests: the torrent tests' seeded torrent and work folder, and
the browser (Debian's chromium) for the panel tests."""

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


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium driven by Playwright (never a downloaded browser), once per module."""
    from playwright import sync_api

    from tests.integration.test_panel_browser import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (./build.sh test does)")
    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()
