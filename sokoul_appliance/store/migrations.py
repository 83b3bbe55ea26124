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
    # 2: storage room: drives we formatted/adopted, item ages, the migration journal, seeding GC
    """
    CREATE TABLE storage_drives (
        role TEXT PRIMARY KEY,          -- 'media' | 'cold'
        name TEXT NOT NULL,             -- kernel name when recorded (may change across boots)
        model TEXT,
        serial TEXT,
        uuid TEXT,                      -- filesystem UUID (NULL while formatting)
        label TEXT NOT NULL,
        state TEXT NOT NULL,            -- 'formatting' | 'ready'
        recorded_at REAL NOT NULL
    );
    CREATE TABLE storage_items (
        item TEXT PRIMARY KEY,          -- relative to the tier root: 'library/Film (2020)'
        tier TEXT NOT NULL,             -- 'media' | 'cold'
        last_watched REAL               -- unix time, NULL when never watched
    );
    CREATE TABLE storage_migrations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        item TEXT NOT NULL,
        direction TEXT NOT NULL,        -- 'to_cold' | 'to_media'
        state TEXT NOT NULL,            -- 'copying' | 'placed' | 'done' | 'failed'
        size_bytes INTEGER NOT NULL DEFAULT 0,
        copied_bytes INTEGER NOT NULL DEFAULT 0,
        manifest TEXT,                  -- JSON {relative file: sha256} once verified
        error TEXT,
        started_at REAL NOT NULL,
        finished_at REAL
    );
    CREATE INDEX storage_migrations_open ON storage_migrations(state);
    CREATE TABLE storage_gc (
        path TEXT PRIMARY KEY,          -- appliance path under /srv/media/downloads
        torrent TEXT NOT NULL,
        marked_at REAL NOT NULL,
        removed_at REAL
    );
    CREATE TABLE storage_actions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    """,
    # 3: library room: media items (opaque ids), shows, folders, FTS5 search
    """
    CREATE TABLE library_items (
        num INTEGER PRIMARY KEY,        -- rowid; library_fts rows share it
        id TEXT NOT NULL UNIQUE,        -- opaque object id ('it-' + random hex), kept across
                                        -- rescans, renames (same inode) and tier moves
        rel_path TEXT NOT NULL UNIQUE,  -- relative to the library area: 'Movies/X (2010)/x.mkv'
        root TEXT NOT NULL,             -- appliance path of the library area holding it now
        folder_id TEXT NOT NULL,
        kind TEXT NOT NULL,             -- 'movie' | 'episode' | 'other'
        title TEXT NOT NULL,
        year INTEGER,
        show_id TEXT,                   -- episodes: library_shows.id
        season INTEGER,
        episode INTEGER,
        episode_title TEXT,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        inode INTEGER,
        duration REAL,
        container TEXT,
        video_codec TEXT,
        width INTEGER,
        height INTEGER,
        media TEXT,                     -- MediaInfo JSON (streams), NULL when the probe failed
        sidecars TEXT NOT NULL DEFAULT '[]',  -- JSON [{file, format, language}]
        probe_error TEXT,
        available INTEGER NOT NULL DEFAULT 1, -- 0 while its tier is not mounted
        added_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX library_items_kind ON library_items(kind, title);
    CREATE INDEX library_items_show ON library_items(show_id, season, episode);
    CREATE INDEX library_items_added ON library_items(added_at);
    CREATE INDEX library_items_folder ON library_items(folder_id);
    CREATE TABLE library_shows (
        id TEXT PRIMARY KEY,            -- 'sh-' + hash of the normalized title
        title TEXT NOT NULL,
        year INTEGER
    );
    CREATE TABLE library_folders (
        id TEXT PRIMARY KEY,            -- 'fo-' + hash of rel_path ('fo-root' for the top)
        rel_path TEXT NOT NULL UNIQUE,
        parent_id TEXT,
        name TEXT NOT NULL
    );
    CREATE INDEX library_folders_parent ON library_folders(parent_id);
    CREATE VIRTUAL TABLE library_fts USING fts5(
        title, show, episode_title, file_name, tokenize='unicode61 remove_diacritics 2'
    );
    """,
    # 4: library room: pages of a 20k-item library in index order (DLNA Browse, the panel)
    """
    CREATE INDEX library_items_browse ON library_items(
        kind, available, title COLLATE NOCASE, year, season, episode, rel_path
    );
    CREATE INDEX library_items_recent ON library_items(available, added_at);
    CREATE INDEX library_items_folder_available ON library_items(folder_id, available);
    """,
    # 5: library room: optional TMDB enrichment (ids first; details and the cached poster's name)
    """
    ALTER TABLE library_items ADD COLUMN tmdb_id INTEGER;   -- movies: TMDB movie id
    ALTER TABLE library_shows ADD COLUMN tmdb_id INTEGER;   -- shows: TMDB tv id
    CREATE TABLE library_tmdb (
        kind TEXT NOT NULL,             -- 'movie' | 'tv'
        tmdb_id INTEGER NOT NULL,
        title TEXT NOT NULL,
        year INTEGER,
        overview TEXT,
        poster_path TEXT,               -- TMDB's ('/abc.jpg'), NULL when it has none
        poster_file TEXT,               -- name in the poster cache once downloaded
        fetched_at REAL NOT NULL,
        PRIMARY KEY (kind, tmdb_id)
    );
    CREATE TABLE library_tmdb_misses (
        kind TEXT NOT NULL,             -- 'movie' | 'tv'
        key TEXT NOT NULL,              -- normalized title + '|' + year
        missed_at REAL NOT NULL,        -- asked again a day later
        PRIMARY KEY (kind, key)
    );
    """,
    # 6: library room: where a TV stopped playing an item (Samsung's X_SetBookmark, seconds)
    """
    CREATE TABLE library_bookmarks (
        item_id TEXT PRIMARY KEY,       -- library_items.id
        seconds INTEGER NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
)
