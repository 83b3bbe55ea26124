"""Browser sessions.

The cookie holds 32 random bytes; the database holds only their SHA-256. Logged-in sessions are
persisted (a supervisor restart keeps people logged in, and the wizard resumes after kill -9);
anonymous sessions (before login, for the CSRF token) live in memory only, bounded in number.
Lookups are served from memory; the database is written on login, logout and at most hourly
per session to record activity.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

from sokoul_appliance.store.database import Store

COOKIE = "sokoul_session"
LOGGED_IN_IDLE = 30 * 24 * 3600
ANONYMOUS_IDLE = 12 * 3600
TOUCH_EVERY = 3600
MAX_ANONYMOUS = 2000


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    token_hash: str
    username: str | None
    csrf_token: str
    last_seen: float

    @property
    def authenticated(self) -> bool:
        return self.username is not None


class Sessions:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._anonymous: OrderedDict[str, Session] = OrderedDict()
        self._logged_in: dict[str, Session] = {}

    async def load(self) -> None:
        cutoff = time.time() - LOGGED_IN_IDLE
        async with self._store.transaction() as db:
            await db.execute("DELETE FROM sessions WHERE last_seen < ?", (cutoff,))
        for row in await self._store.fetchall(
            "SELECT token_hash, username, csrf_token, last_seen FROM sessions"
        ):
            self._logged_in[row["token_hash"]] = Session(
                row["token_hash"], row["username"], row["csrf_token"], row["last_seen"]
            )

    def new_anonymous(self) -> tuple[str, Session]:
        cookie = secrets.token_urlsafe(32)
        session = Session(_digest(cookie), None, secrets.token_urlsafe(32), time.time())
        self._anonymous[session.token_hash] = session
        while len(self._anonymous) > MAX_ANONYMOUS:
            self._anonymous.popitem(last=False)
        return cookie, session

    async def lookup(self, cookie: str | None) -> Session | None:
        if not cookie or len(cookie) > 100:
            return None
        key = _digest(cookie)
        now = time.time()
        session = self._logged_in.get(key)
        if session is not None:
            if now - session.last_seen > LOGGED_IN_IDLE:
                await self._drop(session)
                return None
            if now - session.last_seen > TOUCH_EVERY:
                session = replace(session, last_seen=now)
                self._logged_in[key] = session
                async with self._store.transaction() as db:
                    await db.execute(
                        "UPDATE sessions SET last_seen = ? WHERE token_hash = ?", (now, key)
                    )
            return session
        session = self._anonymous.get(key)
        if session is not None and now - session.last_seen > ANONYMOUS_IDLE:
            del self._anonymous[key]
            return None
        return session

    async def log_in(self, username: str, previous: Session | None) -> tuple[str, Session]:
        """A fresh session id and CSRF token for ``username`` (the old session ends)."""
        if previous is not None:
            await self._drop(previous)
        cookie = secrets.token_urlsafe(32)
        now = time.time()
        session = Session(_digest(cookie), username, secrets.token_urlsafe(32), now)
        async with self._store.transaction() as db:
            await db.execute(
                "INSERT INTO sessions(token_hash, username, csrf_token, created_at, last_seen) "
                "VALUES (?, ?, ?, ?, ?)",
                (session.token_hash, username, session.csrf_token, now, now),
            )
        self._logged_in[session.token_hash] = session
        return cookie, session

    async def log_out(self, session: Session) -> None:
        await self._drop(session)

    async def end_all_for(self, username: str, keep: Session | None = None) -> None:
        """After a password change: every other session of that user ends."""
        for s in [s for s in self._logged_in.values() if s.username == username]:
            if keep is None or s.token_hash != keep.token_hash:
                await self._drop(s)

    async def forget_users_except(self, username: str) -> None:
        for s in [s for s in self._logged_in.values() if s.username != username]:
            self._logged_in.pop(s.token_hash, None)

    async def _drop(self, session: Session) -> None:
        self._anonymous.pop(session.token_hash, None)
        if self._logged_in.pop(session.token_hash, None) is not None:
            async with self._store.transaction() as db:
                await db.execute("DELETE FROM sessions WHERE token_hash = ?", (session.token_hash,))
