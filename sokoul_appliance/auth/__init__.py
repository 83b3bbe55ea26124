"""The `auth` room: the admin account, browser sessions, login throttling."""
