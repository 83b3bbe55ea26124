"""Network room: port roles, live config (pyroute2), netplan persistence, nftables, the DHCP
server for the streaming network, and change-with-rollback. See docs/network.md."""
