"""Password hashes: stdlib scrypt with a per-user salt, stored as `scrypt$n$r$p$salt$hash`.

The parameters travel with each hash, so they can be raised later without breaking old
accounts; comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from scribe.errors import BadInputError

N, R, P = 2**15, 8, 1  # ~32 MiB and ~0.2 s per hash on one of our CPU cores
SALT_BYTES = 16
HASH_BYTES = 32
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=128 * r * (n + p + 2) + 2**20
    )


def hash_password(password: str, *, n: int = N, r: int = R, p: int = P) -> str:
    """A new salted hash of `password` in the `scrypt$n$r$p$salt$hash` encoding."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, n, r, p, HASH_BYTES)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """True only if `password` produced `encoded`; a malformed or implausible encoding is simply False."""
    try:
        scheme, n_text, r_text, p_text, salt_text, digest_text = encoded.split("$")
        n, r, p = int(n_text), int(r_text), int(p_text)
        salt, expected = base64.b64decode(salt_text, validate=True), base64.b64decode(digest_text, validate=True)
    except ValueError:
        return False
    # bounds keep a tampered row from making one sign-in cost gigabytes of memory
    if scheme != "scrypt" or not (2**10 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        return False
    if not salt or not 16 <= len(expected) <= 64:
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p, len(expected)), expected)


def check_password_policy(password: str) -> None:
    """Refuse passwords a CLI user or form could set by accident: empty, short, absurdly long."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadInputError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise BadInputError(f"the password must be at most {MAX_PASSWORD_LENGTH} characters")
