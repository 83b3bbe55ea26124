"""Parse and validate a wg-quick style WireGuard config, with one clear error per bad line.

Script hooks (PreUp/PostUp/PreDown/PostDown) are refused: the supervisor would run them as root,
and the appliance builds its own routing and kill switch.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass, field

MAX_BYTES = 64 * 1024

_INTERFACE_KEYS = {"privatekey", "address", "dns", "listenport", "mtu", "table", "fwmark"}
_PEER_KEYS = {"publickey", "presharedkey", "allowedips", "endpoint", "persistentkeepalive"}
_SCRIPT_KEYS = {"preup", "postup", "predown", "postdown", "saveconfig"}
_HOST_RE = re.compile(r"^(?=.{1,253}$)([a-zA-Z0-9-]{1,63}\.)*[a-zA-Z0-9-]{1,63}$")


class WireGuardConfigError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors))


@dataclass
class Peer:
    public_key: str = ""
    preshared_key: str | None = None
    allowed_ips: list[str] = field(default_factory=list)
    endpoint: str | None = None
    persistent_keepalive: int | None = None


@dataclass
class WireGuardConfig:
    private_key: str = ""
    addresses: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    listen_port: int | None = None
    mtu: int | None = None
    peers: list[Peer] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        """What may be shown to a person (no keys)."""
        return {
            "addresses": self.addresses,
            "dns": self.dns,
            "peers": [{"endpoint": p.endpoint, "allowed_ips": p.allowed_ips} for p in self.peers],
        }


def _key(value: str) -> bool:
    try:
        return len(base64.b64decode(value, validate=True)) == 32 and len(value) == 44
    except (binascii.Error, ValueError):
        return False


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse(text: str) -> WireGuardConfig:
    if len(text.encode()) > MAX_BYTES:
        raise WireGuardConfigError(["the file is larger than 64 KiB; is it a WireGuard config?"])
    errors: list[str] = []
    cfg = WireGuardConfig()
    section: str | None = None
    peer: Peer | None = None
    seen_interface = False
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            name = line[1:-1].strip().lower()
            if name == "interface":
                if seen_interface:
                    errors.append(f"line {n}: a second [Interface] section")
                seen_interface = True
                section, peer = "interface", None
            elif name == "peer":
                section, peer = "peer", Peer()
                cfg.peers.append(peer)
            else:
                errors.append(
                    f"line {n}: unknown section [{line[1:-1]}] (expected [Interface] or [Peer])"
                )
                section, peer = None, None
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        lkey = key.lower()
        if not sep or not key:
            errors.append(f"line {n}: expected 'Key = Value'")
            continue
        if section is None:
            errors.append(f"line {n}: {key} outside an [Interface] or [Peer] section")
            continue
        if lkey in _SCRIPT_KEYS:
            errors.append(
                f"line {n}: {key} runs commands as root and is not accepted; remove it "
                "(the appliance sets up routing and the kill switch itself)"
            )
            continue
        if section == "interface":
            if lkey not in _INTERFACE_KEYS:
                errors.append(f"line {n}: unknown [Interface] setting {key}")
            elif lkey == "privatekey":
                if not _key(value):
                    errors.append(f"line {n}: PrivateKey is not a base64 32-byte key")
                cfg.private_key = value
            elif lkey == "address":
                for a in _split(value):
                    try:
                        cfg.addresses.append(str(ipaddress.ip_interface(a)))
                    except ValueError:
                        errors.append(f"line {n}: Address {a!r} is not an IP address/prefix")
            elif lkey == "dns":
                for d in _split(value):
                    try:
                        cfg.dns.append(str(ipaddress.ip_address(d)))
                    except ValueError:
                        if _HOST_RE.match(d):
                            cfg.dns.append(d)  # a search domain
                        else:
                            errors.append(f"line {n}: DNS {d!r} is not an IP address or domain")
            elif lkey in ("listenport", "mtu"):
                lo, hi = (1, 65535) if lkey == "listenport" else (576, 9000)
                if not value.isdigit() or not lo <= int(value) <= hi:
                    errors.append(f"line {n}: {key} must be a number from {lo} to {hi}")
                elif lkey == "listenport":
                    cfg.listen_port = int(value)
                else:
                    cfg.mtu = int(value)
            # Table and FwMark are accepted and ignored: the appliance owns policy routing
        else:
            assert peer is not None
            if lkey not in _PEER_KEYS:
                errors.append(f"line {n}: unknown [Peer] setting {key}")
            elif lkey in ("publickey", "presharedkey"):
                if not _key(value):
                    errors.append(f"line {n}: {key} is not a base64 32-byte key")
                if lkey == "publickey":
                    peer.public_key = value
                else:
                    peer.preshared_key = value
            elif lkey == "allowedips":
                for a in _split(value):
                    try:
                        peer.allowed_ips.append(str(ipaddress.ip_network(a, strict=False)))
                    except ValueError:
                        errors.append(f"line {n}: AllowedIPs {a!r} is not an IP network")
            elif lkey == "endpoint":
                split = split_endpoint(value)
                if split is None:
                    errors.append(f"line {n}: Endpoint must be host:port, got {value!r}")
                elif ":" in split[0] and not value.startswith("["):
                    errors.append(
                        f"line {n}: Endpoint {value!r} has an IPv6 address: write it in "
                        "brackets, e.g. [2001:db8::1]:51820"
                    )
                peer.endpoint = value
            elif lkey == "persistentkeepalive":
                if value.lower() != "off" and (not value.isdigit() or int(value) > 65535):
                    errors.append(f"line {n}: PersistentKeepalive must be seconds or 'off'")
                elif value.isdigit():
                    peer.persistent_keepalive = int(value)
    if not seen_interface:
        errors.append("no [Interface] section")
    else:
        if not cfg.private_key:
            errors.append("[Interface] has no PrivateKey")
        if not cfg.addresses:
            errors.append("[Interface] has no Address (the tunnel address your provider gave)")
    if not cfg.peers:
        errors.append("no [Peer] section (the VPN server)")
    for i, p in enumerate(cfg.peers, 1):
        if not p.public_key:
            errors.append(f"peer {i} has no PublicKey")
        if not p.allowed_ips:
            errors.append(f"peer {i} has no AllowedIPs")
        if not p.endpoint:
            errors.append(f"peer {i} has no Endpoint (the VPN server's address:port)")
    if errors:
        raise WireGuardConfigError(errors)
    return cfg


def split_endpoint(value: str) -> tuple[str, int] | None:
    """'vpn.example.net:51820' -> ('vpn.example.net', 51820); '[2001:db8::1]:51820' ->
    ('2001:db8::1', 51820); None when it is not host:port."""
    host, _, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif "[" in host or "]" in host:
        return None
    ok_host = bool(host) and (_HOST_RE.match(host) or _is_ip(host))
    if not ok_host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def setconf_text(cfg: WireGuardConfig, default_keepalive: int | None = 25) -> str:
    """The config as ``wg setconf`` reads it: the wg-quick-only fields (Address, DNS, MTU, Table,
    FwMark) stripped, as ``wg-quick strip`` does. A peer without PersistentKeepalive gets
    ``default_keepalive`` seconds, so a handshake stays fresh on an idle tunnel (health tells a
    live tunnel from a dead one by its age) and the internet side's NAT keeps the mapping."""
    lines = ["[Interface]", f"PrivateKey = {cfg.private_key}"]
    if cfg.listen_port is not None:
        lines.append(f"ListenPort = {cfg.listen_port}")
    for p in cfg.peers:
        lines += ["", "[Peer]", f"PublicKey = {p.public_key}"]
        if p.preshared_key:
            lines.append(f"PresharedKey = {p.preshared_key}")
        lines.append(f"AllowedIPs = {', '.join(p.allowed_ips)}")
        if p.endpoint:
            lines.append(f"Endpoint = {p.endpoint}")
        keepalive = p.persistent_keepalive if p.persistent_keepalive else default_keepalive
        if keepalive:
            lines.append(f"PersistentKeepalive = {keepalive}")
    return "\n".join(lines) + "\n"


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
