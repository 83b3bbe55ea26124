"""The `store` room: the supervisor's SQLite database (WAL, numbered migrations, settings)."""
