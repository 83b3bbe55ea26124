"""Logging: structured lines to stdout (journald adds its own timestamps and reads the
``<N>`` priority prefix), and the recent records kept in memory for the panel's Logs page.
The supervisor itself never writes log files (no chatty disk writes on the appliance)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections import deque
from collections.abc import Callable

from sokoul_appliance.events import LogLine

_PRIORITY = {"CRITICAL": 2, "ERROR": 3, "WARNING": 4, "INFO": 6, "DEBUG": 7}


class JournalFormatter(logging.Formatter):
    """``<6>sokoul.web: message`` under systemd; a timestamped line elsewhere."""

    def __init__(self, journal: bool) -> None:
        super().__init__()
        self._journal = journal

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        if self._journal:
            prio = _PRIORITY.get(record.levelname, 6)
            return "\n".join(f"<{prio}>{record.name}: {ln}" for ln in message.splitlines())
        stamp = self.formatTime(record, "%H:%M:%S")
        return f"{stamp} {record.levelname:<7} {record.name}: {message}"


class RecentLogs(logging.Handler):
    """Keeps the last ``size`` records and forwards each to ``publish`` on the event loop."""

    def __init__(self, size: int = 1000) -> None:
        super().__init__(logging.INFO)
        self.lines: deque[LogLine] = deque(maxlen=size)
        self._publish: Callable[[LogLine], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def attach(self, loop: asyncio.AbstractEventLoop, publish: Callable[[LogLine], None]) -> None:
        self._loop, self._publish = loop, publish

    def detach(self) -> None:
        self._loop, self._publish = None, None

    def emit(self, record: logging.LogRecord) -> None:
        line = LogLine(record.created, record.levelname, record.name, record.getMessage())
        self.lines.append(line)
        loop, publish = self._loop, self._publish
        if loop is None or publish is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            publish(line)
        else:
            loop.call_soon_threadsafe(publish, line)

    def recent(self, count: int) -> list[LogLine]:
        return list(self.lines)[-count:] if count > 0 else []


def configure(level: int = logging.INFO) -> RecentLogs:
    """Root logging for the supervisor process; returns the in-memory buffer."""
    root = logging.getLogger()
    root.setLevel(level)
    for h in list(root.handlers):
        root.removeHandler(h)
    out = logging.StreamHandler(sys.stdout)
    out.setFormatter(JournalFormatter(journal=bool(os.environ.get("JOURNAL_STREAM"))))
    root.addHandler(out)
    recent = RecentLogs()
    root.addHandler(recent)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return recent
