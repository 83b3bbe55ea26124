"""The VPN test topology on top of tests/netns.py, and its small servers.

    appliance ──inet0/lan0── router ──wan0/eth0── vpn (wireguard-go server; 10.200.0.1 on lo)
        │ (wireguard-go of the appliance; its UDP socket lives here)
        └─ the tunnel interface, moved into ──> torrent (lo + the tunnel only)

Addresses: appliance 198.51.100.2/24 + 2001:db8:a::2/64, router .1 / ::1 on that side and
203.0.113.1/24 + 2001:db8:b::1/64 on the VPN side, vpn 203.0.113.2 / 2001:db8:b::2. The tunnel
is 10.99.0.0/24 + fd99::/64 (server .1, appliance .2); 10.200.0.1 is routed only inside the vpn
namespace. The router counts, by kind, every packet that is *not* the WireGuard carrier
(UDP to 203.0.113.2:51820, or :51999 where a test
makes the server silent): what the torrent namespace could leak.

Run as a script inside a namespace it serves: ``natpmp ADDR LOG`` (a NAT-PMP gateway double
that hands out port 40000 with a 60 s lifetime and logs each request as a JSON line) or
``whoami ADDR PORT`` (HTTP: answers the client's address).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from netns import Lab, Netns, wait_until

HERE = Path(__file__).resolve()
SERVER_PORT = 51820
LEAK_KINDS = ("tcp4", "udp4", "dns", "tcp6", "udp6", "carrier")

ROUTER_COUNTERS = """table inet sokoul_test_count {
	counter tcp4 { }
	counter udp4 { }
	counter dns { }
	counter tcp6 { }
	counter udp6 { }
	counter carrier { }
	chain pre {
		type filter hook prerouting priority -300; policy accept;
		ip daddr 203.0.113.2 udp dport { 51820, 51999 } counter name "carrier" accept
		ip saddr 203.0.113.2 udp sport 51820 accept
		iifname "wan0" accept
		meta l4proto { tcp, udp } th dport 53 counter name "dns" accept
		meta nfproto ipv4 meta l4proto tcp counter name "tcp4" accept
		meta nfproto ipv4 meta l4proto udp counter name "udp4" accept
		meta nfproto ipv6 meta l4proto tcp counter name "tcp6" accept
		meta nfproto ipv6 meta l4proto udp counter name "udp6" accept
	}
}
"""


def wg_key() -> tuple[str, str]:
    private = subprocess.run(["wg", "genkey"], check=True, capture_output=True, text=True)
    public = subprocess.run(
        ["wg", "pubkey"], input=private.stdout, check=True, capture_output=True, text=True
    )
    return private.stdout.strip(), public.stdout.strip()


@dataclass
class Topology:
    lab: Lab
    appliance: Netns
    router: Netns
    vpn: Netns
    torrent_name: str
    client_ifname: str
    server_ifname: str
    client_private: str
    server_public: str
    tmp: Path

    def client_config(self, endpoint: str = f"203.0.113.2:{SERVER_PORT}") -> str:
        return f"""[Interface]
PrivateKey = {self.client_private}
Address = 10.99.0.2/32, fd99::2/128
DNS = 10.99.0.1

[Peer]
PublicKey = {self.server_public}
AllowedIPs = 0.0.0.0/0, ::/0
Endpoint = {endpoint}
"""

    @property
    def torrent(self) -> Netns:
        return Netns(self.torrent_name)

    def router_counters(self) -> dict[str, int]:
        out = self.router.run("nft", "-j", "list", "counters", "table", "inet", "sokoul_test_count")
        counts = {}
        for item in json.loads(out.stdout)["nftables"]:
            if "counter" in item:
                counts[item["counter"]["name"]] = int(item["counter"]["packets"])
        return counts

    def reset_router_counters(self) -> None:
        self.router.run("nft", "reset", "counters", "table", "inet", "sokoul_test_count")

    def start_server(self, ns: Netns, args: list[str], proto: str, port: int) -> None:
        """Start one of this file's servers in ``ns`` and wait until it listens."""
        self.lab.start(ns, ["python3", str(HERE), *args])
        flag = "-Hltn" if proto == "tcp" else "-Hlun"
        if not wait_until(
            lambda: ns.run("ss", flag, f"sport = :{port}").stdout.strip() != "", timeout=15
        ):
            raise RuntimeError(f"server {args[0]} did not listen on {proto} {port}")

    def leaks(self) -> dict[str, int]:
        return {k: v for k, v in self.router_counters().items() if k != "carrier"}

    def add_leak_path(self) -> None:
        """A mistake the kill switch must catch: a veth from the torrent namespace straight to
        the router, with default routes (IPv4 and IPv6) through it."""
        t = self.torrent
        self.lab.veth(t, "leak0", self.router, "leak0")
        t.add_address("leak0", "192.0.2.2/24")
        t.run("ip", "-6", "addr", "add", "2001:db8:c::2/64", "dev", "leak0", "nodad")
        self.router.add_address("leak0", "192.0.2.1/24")
        self.router.run("ip", "-6", "addr", "add", "2001:db8:c::1/64", "dev", "leak0", "nodad")
        t.run("ip", "route", "replace", "default", "via", "192.0.2.1", "dev", "leak0")
        t.run("ip", "-6", "route", "replace", "default", "via", "2001:db8:c::1", "dev", "leak0")


def build(lab: Lab, tmp: Path) -> Topology:
    sfx = lab.suffix
    app, router, vpn = lab.namespace("appliance"), lab.namespace("router"), lab.namespace("vpn")
    torrent_name = f"torrent-{sfx}"
    lab.namespaces.append(Netns(torrent_name))  # made by the code under test; Lab deletes it
    for ns in (app, router, vpn):
        ns.run("sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0")
        ns.run("sysctl", "-q", "-w", "net.ipv6.conf.default.accept_dad=0")
    lab.veth(app, "inet0", router, "lan0")
    lab.veth(router, "wan0", vpn, "eth0")
    app.add_address("inet0", "198.51.100.2/24")
    app.run("ip", "-6", "addr", "add", "2001:db8:a::2/64", "dev", "inet0", "nodad")
    router.add_address("lan0", "198.51.100.1/24")
    router.run("ip", "-6", "addr", "add", "2001:db8:a::1/64", "dev", "lan0", "nodad")
    router.add_address("wan0", "203.0.113.1/24")
    router.run("ip", "-6", "addr", "add", "2001:db8:b::1/64", "dev", "wan0", "nodad")
    vpn.add_address("eth0", "203.0.113.2/24")
    vpn.run("ip", "-6", "addr", "add", "2001:db8:b::2/64", "dev", "eth0", "nodad")
    router.run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    router.run("sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1")
    app.run("ip", "route", "add", "default", "via", "198.51.100.1")
    app.run("ip", "-6", "route", "add", "default", "via", "2001:db8:a::1")
    vpn.run("ip", "route", "add", "default", "via", "203.0.113.1")
    vpn.run("ip", "-6", "route", "add", "default", "via", "2001:db8:b::1")
    router.run("nft", "-f", "-", input=ROUTER_COUNTERS)
    # the far side: an address routed only inside the vpn namespace
    vpn.run("ip", "addr", "add", "10.200.0.1/32", "dev", "lo")

    client_private, client_public = wg_key()
    server_private, server_public = wg_key()
    server_if = f"wgs{sfx}"
    env = {**os.environ, "WG_PROCESS_FOREGROUND": "1"}
    lab.start(vpn, ["wireguard-go", server_if], log=tmp / "wg-server.log", env=env)
    sock = Path(f"/var/run/wireguard/{server_if}.sock")
    deadline = time.monotonic() + 10
    while not sock.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the wireguard-go server made no interface")
        time.sleep(0.05)
    key_file = tmp / "server.key"
    key_file.write_text(server_private)
    key_file.chmod(0o600)
    vpn.run(
        "wg", "set", server_if, "listen-port", str(SERVER_PORT), "private-key", str(key_file),
        "peer", client_public, "allowed-ips", "10.99.0.2/32,fd99::2/128",
    )  # fmt: skip
    vpn.add_address(server_if, "10.99.0.1/24")
    vpn.run("ip", "-6", "addr", "add", "fd99::1/64", "dev", server_if, "nodad")
    return Topology(
        lab, app, router, vpn, torrent_name, f"wgt{sfx}", server_if, client_private,
        server_public, tmp,
    )  # fmt: skip


# -- traffic from the torrent namespace --------------------------------------------------
PROBE = r"""
import json, socket, struct
out = {}
def attempt(name, fn):
    try:
        fn(); out[name] = "sent"
    except OSError as e:
        out[name] = e.__class__.__name__ + ": " + (e.strerror or str(e))
def tcp(addr, fam):
    def go():
        s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(1.5)
        try: s.connect(addr)
        finally: s.close()
    return go
def udp(addr, fam, payload=b"x" * 32):
    def go():
        s = socket.socket(fam, socket.SOCK_DGRAM)
        try: s.sendto(payload, addr)
        finally: s.close()
    return go
query = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
query += b"\x07example\x03com\x00\x00\x01\x00\x01"
for i in range(3):
    attempt("tcp4", tcp(("203.0.113.2", 8080), socket.AF_INET))
    attempt("udp4", udp(("203.0.113.2", 9999), socket.AF_INET))
    attempt("dns_udp", udp(("203.0.113.2", 53), socket.AF_INET, query))
    attempt("dns_tcp", tcp(("203.0.113.2", 53), socket.AF_INET))
    attempt("tcp6", tcp(("2001:db8:b::2", 8080), socket.AF_INET6))
    attempt("udp6", udp(("2001:db8:b::2", 9999), socket.AF_INET6))
    attempt("dns6", udp(("2001:db8:b::2", 53), socket.AF_INET6, query))
try:
    out["resolve"] = socket.getaddrinfo("example.com", 80)[0][4][0]
except OSError as e:
    out["resolve"] = "failed: " + str(e)
print(json.dumps(out))
"""


def send_probes(ns: Netns) -> dict[str, str]:
    result = ns.run("python3", "-c", PROBE, timeout=60)
    return dict(json.loads(result.stdout))


# -- servers (run as a script inside a namespace) -------------------------------------------------
def serve_natpmp(addr: str, log: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 5351))
    start = time.time()
    while True:
        data, peer = s.recvfrom(64)
        epoch = int(time.time() - start)
        with open(log, "a") as f:
            f.write(json.dumps({"from": peer[0], "hex": data.hex()}) + "\n")
        if len(data) == 2 and data[1] == 0:
            s.sendto(struct.pack("!BBHI4s", 0, 128, 0, epoch, bytes([203, 0, 113, 77])), peer)
        elif len(data) == 12:
            _, op, _, internal, external, lifetime = struct.unpack("!BBHHHI", data)
            port = external or 40000
            s.sendto(
                struct.pack("!BBHIHHI", 0, 128 + op, 0, epoch, internal, port, min(lifetime, 60)),
                peer,
            )


def serve_whoami(addr: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen()
    while True:
        c, peer = s.accept()
        with c:
            c.settimeout(5)
            try:
                c.recv(4096)
                body = f'{{"ip": "{peer[0]}"}}'.encode()
                c.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\nConnection: close\r\n\r\n"
                    + body
                )
            except OSError:
                pass


def serve_tcp_once(addr: str, port: int, log: str) -> None:
    """Accept connections; log each peer address and the bytes received (base64)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen()
    while True:
        c, peer = s.accept()
        with c:
            c.settimeout(5)
            data = b""
            try:
                while chunk := c.recv(65536):
                    data += chunk
            except OSError:
                pass
            with open(log, "a") as f:
                f.write(json.dumps({"peer": peer[0], "b64": base64.b64encode(data).decode()}))
                f.write("\n")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "natpmp":
        serve_natpmp(sys.argv[2], sys.argv[3])
    elif mode == "whoami":
        serve_whoami(sys.argv[2], int(sys.argv[3]))
    elif mode == "tcp":
        serve_tcp_once(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        raise SystemExit(f"unknown mode {mode}")
