"""aiosqlite connection with WAL, foreign keys, full sync, and the numbered migrations."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from sokoul_appliance.store.migrations import MIGRATIONS

log = logging.getLogger("sokoul.store")


class StoreError(Exception):
    """The database cannot be opened or migrated; the message says what to do."""


class Store:
    """One connection (aiosqlite runs it on its own thread; the event loop never blocks)."""

    name = "store"
    title = "Database"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self.schema_version = 0
        # one connection: transactions from different tasks take turns (never nest them)
        self._tx_lock = asyncio.Lock()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the store is not started")
        return self._db

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        old_umask = os.umask(0o077)  # the database holds password hashes and sessions
        try:
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
        finally:
            os.umask(old_umask)
        db = self._db
        db.row_factory = aiosqlite.Row
        try:
            mode = await self.scalar("PRAGMA journal_mode=WAL")
            if str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: SQLite refused WAL mode (got {mode!r})")
            await db.execute("PRAGMA synchronous=FULL")
            await db.execute("PRAGMA foreign_keys=ON")
            await db.execute("PRAGMA busy_timeout=5000")
            await self._migrate()
        except BaseException as e:
            await db.close()
            self._db = None
            if not isinstance(e, aiosqlite.DatabaseError):
                raise
            raise StoreError(
                f"{self.path} is not a usable SQLite database ({e}); move it aside and "
                "restart to begin with an empty one"
            ) from e

    async def _migrate(self) -> None:
        current = int(await self.scalar("PRAGMA user_version") or 0)
        if current > len(MIGRATIONS):
            raise StoreError(
                f"{self.path} has schema version {current}, newer than this supervisor knows "
                f"({len(MIGRATIONS)}); it was written by a newer version"
            )
        for number in range(current + 1, len(MIGRATIONS) + 1):
            async with self.transaction() as db:
                for statement in _statements(MIGRATIONS[number - 1]):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version={number}")
            log.info("database migrated to schema %d", number)
        self.schema_version = len(MIGRATIONS)

    def status(self) -> tuple[str, str]:
        if self._db is None:
            return "error", "The database is not open."
        return "ok", f"SQLite (WAL), schema version {self.schema_version}."

    async def stop(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any error): all or nothing."""
        db = self.db
        async with self._tx_lock:
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")

    async def scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        async with self.db.execute(sql, params) as cur:
            row = await cur.fetchone()
        return None if row is None else row[0]

    async def fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[aiosqlite.Row]:
        async with self.db.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def fetchone(self, sql: str, params: tuple[Any, ...] = ()) -> aiosqlite.Row | None:
        async with self.db.execute(sql, params) as cur:
            row: aiosqlite.Row | None = await cur.fetchone()
            return row


def _statements(script: str) -> list[str]:
    """Split a migration into statements: comments dropped first, then split at ';' (our
    migrations hold no ';' or '--' inside string literals)."""
    code = "\n".join(line.split("--", 1)[0] for line in script.splitlines())
    return [sql.strip() for sql in code.split(";") if sql.strip()]
