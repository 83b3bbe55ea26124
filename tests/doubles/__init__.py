"""Test doubles served on real transports (a private dbus-daemon, ...), shared by test tiers."""
