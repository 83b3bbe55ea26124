"""Numbered schema migrations. Append only: never edit a migration that has shipped.

``PRAGMA user_version`` records the last one applied; each runs in its own transaction.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: settings, accounts, sessions, wizard answers
    """
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,            -- JSON
        updated_at REAL NOT NULL
    );
    CREATE TABLE users (
        username TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,    -- scrypt$N$r$p$salt$hash
        created_at REAL NOT NULL,
        source TEXT NOT NULL            -- 'wizard' | 'preseed'
    );
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,    -- sha256 of the cookie value; the cookie is never stored
        username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
        csrf_token TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_seen REAL NOT NULL
    );
    CREATE TABLE wizard_answers (
        step TEXT PRIMARY KEY,
        answer TEXT NOT NULL,           -- JSON
        answered_at REAL NOT NULL
    );
    """,
)
