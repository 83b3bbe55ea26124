"""Admin password hashing: scrypt, stored as ``scrypt$N$r$p$salt_b64$hash_b64``.

Standard library only, so the same file also runs on its own to make the hash a preseed file
wants: ``python3 passwords.py`` (it is copied onto the image's ESP as sokoul-hash-password.py).
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import os
import sys

N, R, P, DKLEN = 2**15, 8, 1, 32
_MAXMEM = 64 * 1024 * 1024


def hash_password(password: str, *, n: int = N, r: int = R, p: int = P) -> str:
    if not password:
        raise ValueError("the password must not be empty")
    salt = os.urandom(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=DKLEN, maxmem=_MAXMEM
    )
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest, validate=True)
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt, validate=True),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=_MAXMEM,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def main() -> int:
    first = getpass.getpass("New admin password: ")
    if first != getpass.getpass("Again: "):
        print("The two passwords differ; nothing printed.", file=sys.stderr)
        return 1
    try:
        print(hash_password(first))
    except ValueError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
