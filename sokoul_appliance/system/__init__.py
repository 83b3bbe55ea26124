"""The `system` room: the appliance's identity (hostname, timezone)."""
