"""The `vpn` room: WireGuard configuration (the tunnel manager comes with the network issue)."""
