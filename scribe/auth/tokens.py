"""Access tokens: HS256 JWTs with subject, scopes and expiry, minted by `scribe token create`."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass

import jwt

from scribe.errors import ScribeError

ISSUER = "scribe"
CLINICIAN_SCOPES = ("user/*.*",)
DEFAULT_TTL_S = 3600
MAX_TTL_S = 30 * 24 * 3600


_PLAIN_NAME = re.compile(r"[A-Za-z0-9._@:/+-]{1,255}")


class AuthError(ScribeError):
    """A credential that is missing, malformed, expired or signed with another key.

    `subject` is who the caller claimed to be (for the audit trail), kept only when it looks like
    a plain id, so nothing a caller invents ends up in the audit log verbatim.
    """

    exit_code = 2

    def __init__(self, message: str, *, subject: str | None = None, subject_kind: str = "user") -> None:
        super().__init__(message)
        self.subject = subject if subject and _PLAIN_NAME.fullmatch(subject) else None
        self.subject_kind = subject_kind if self.subject else "anonymous"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's subject and what it may do."""

    subject: str
    scopes: tuple[str, ...]
    expires_at: int

    @property
    def kind(self) -> str:
        """`system` for a backend client (only system/ scopes), `user` for a clinician or administrator."""
        return "system" if self.scopes and all(s.startswith("system/") for s in self.scopes) else "user"

    def has_scope(self, needed: str) -> bool:
        """SMART-style match: `user/*.*` covers `user/Encounter.rs`; `system/X.rs` covers `system/X.r`."""
        kind, _, want = needed.partition("/")
        want_type, _, want_access = want.partition(".")
        for scope in self.scopes:
            s_kind, _, granted = scope.partition("/")
            g_type, _, g_access = granted.partition(".")
            if s_kind != kind or g_type not in ("*", want_type):
                continue
            if g_access == "*" or set(want_access) <= set(g_access):
                return True
        return False


def create_token(
    key: bytes,
    subject: str,
    scopes: tuple[str, ...] = CLINICIAN_SCOPES,
    ttl_s: int = DEFAULT_TTL_S,
    audience: str | None = None,
) -> str:
    if not subject.strip():
        raise AuthError("a token needs a subject (--sub)")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise AuthError(f"token lifetime must be between 1 and {MAX_TTL_S} seconds")
    for scope in scopes:
        kind, _, rest = scope.partition("/")
        if kind not in ("user", "system", "patient") or "." not in rest:
            raise AuthError(f"malformed scope {scope!r}: expected e.g. user/*.* or system/DocumentReference.rs")
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": subject,
        "scope": " ".join(scopes),
        "iat": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, key, algorithm="HS256")


def verify_token(key: bytes, token: str, audience: str | None = None) -> Principal:
    """Check signature, issuer, expiry (and audience when configured); every failure is one AuthError."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            issuer=ISSUER,
            audience=audience,
            options={"require": ["exp", "sub", "iss"], "verify_aud": audience is not None},
        )
    except jwt.PyJWTError as exc:
        subject, kind = claimed_identity(token)
        message = "token expired" if isinstance(exc, jwt.ExpiredSignatureError) else f"invalid token: {exc}"
        raise AuthError(message, subject=subject, subject_kind=kind) from None
    return Principal(str(claims["sub"]), tuple(str(claims.get("scope", "")).split()), int(claims["exp"]))


def claimed_identity(token: str) -> tuple[str | None, str]:
    """The subject (and its kind) a token claims, unverified: only for saying who failed to authenticate."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None, "anonymous"
    subject, scopes = claims.get("sub"), claims.get("scope")
    if not isinstance(subject, str):
        return None, "anonymous"
    return subject, Principal(subject, tuple(scopes.split()) if isinstance(scopes, str) else (), 0).kind
