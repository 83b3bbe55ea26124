"""The `vpn` room: WireGuard split tunnel for the torrent engine (see docs/vpn.md)."""
