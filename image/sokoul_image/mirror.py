"""Which Debian mirror to build from: the build host's own apt configuration, unless overridden.

The project names no mirror host itself: it uses what the machine's apt is set up with, the same
way `apt-get` on that machine would.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Mirrors:
    debian: str | None
    security: str | None


def _entries(root: Path) -> list[str]:
    uris: list[str] = []
    apt = root / "etc/apt"
    one_line = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]
    for path in one_line:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)", line)
            if m:
                uris.append(m.group(1))
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        text = path.read_text(errors="replace")
        for stanza in re.split(r"\n\s*\n", text):
            if re.search(r"^Enabled:\s*no", stanza, re.M | re.I):
                continue
            if "debian-archive-keyring" not in stanza and "Signed-By" in stanza:
                continue
            m = re.search(r"^URIs:\s*(.+)$", stanza, re.M)
            if m:
                uris.extend(m.group(1).split())
    return uris


def host_mirrors(root: Path = Path("/")) -> Mirrors:
    """The Debian archive and security URIs from the host's apt sources (env overrides win)."""
    debian = os.environ.get("SOKOUL_MIRROR")
    security = os.environ.get("SOKOUL_SECURITY_MIRROR")
    for uri in _entries(root):
        u = uri.rstrip("/")
        if u.endswith("/debian-security"):
            security = security or u
        elif u.endswith("/debian"):
            debian = debian or u
    return Mirrors(debian=debian, security=security)
