"""Accounts: scrypt password hashes in SQLite; hashing runs in a worker thread, two at a time."""

from __future__ import annotations

import asyncio
import re
import time

from sokoul_appliance.passwords import hash_password, verify_password
from sokoul_appliance.store.database import Store

USERNAME_RE = re.compile(r"^[a-z0-9_-]{1,32}$")
MIN_PASSWORD = 8


def check_new_password(password: object) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise ValueError(f"use at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise ValueError("use at most 1024 characters")
    return password


class Accounts:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._kdf = asyncio.Semaphore(2)  # scrypt takes 32 MiB and ~0.1 s each
        self._dummy_hash: str | None = None

    async def _hash(self, password: str) -> str:
        async with self._kdf:
            return await asyncio.to_thread(hash_password, password)

    async def _verify(self, password: str, stored: str) -> bool:
        async with self._kdf:
            return await asyncio.to_thread(verify_password, password, stored)

    async def set_password(self, username: str, password: str, *, source: str) -> None:
        """Create the account or replace its password."""
        stored = await self._hash(password)
        await self.set_hash(username, stored, source=source)

    async def set_hash(self, username: str, stored: str, *, source: str) -> None:
        async with self._store.transaction() as db:
            await db.execute(
                "INSERT INTO users(username, password_hash, created_at, source) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(username) DO UPDATE SET "
                "password_hash=excluded.password_hash",
                (username, stored, time.time(), source),
            )

    async def rename_only_account(self, username: str) -> None:
        """The wizard's admin step answered again with a new name (sessions follow via FK)."""
        async with self._store.transaction() as db:
            await db.execute("DELETE FROM users WHERE username != ?", (username,))

    async def verify(self, username: str, password: str) -> bool:
        row = await self._store.fetchone(
            "SELECT password_hash FROM users WHERE username = ?", (username,)
        )
        if row is None:
            # same work for an unknown name, so timing does not tell which names exist
            if self._dummy_hash is None:
                self._dummy_hash = await self._hash("not-a-real-password")
            await self._verify(password, self._dummy_hash)
            return False
        return await self._verify(password, str(row["password_hash"]))
