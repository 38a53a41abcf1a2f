"""Who a token scribe signed may name: a local user account, or a registered SMART client for a system token.

Checked on every request, not only when the token is minted, so deleting or disabling the subject ends
every token it holds at once; `scribe token create` asks the same question before it prints a token.
"""

from __future__ import annotations

from scribe.auth.smart import find_client
from scribe.auth.tokens import CLINICIAN_SCOPES, DEFAULT_TTL_S, Principal, create_token
from scribe.auth.users import find_user
from scribe.errors import BadInputError
from scribe.store import Database


def subject_refusal(database: Database, subject: str, kind: str, *, unknown_ok: bool = False) -> str | None:
    """Why a token naming `subject` (a `user`, or a `system` client) must be refused now, or None if it stands.

    `unknown_ok`: the identity provider vouches for users scribe has no account for; only a disabled one is refused.
    """
    if kind == "user":
        account = find_user(database, subject)
        if account is None:
            return None if unknown_ok else "unknown user"
        return None if account.active else "account disabled"
    client = find_client(database, subject)
    if client is None:
        return None if unknown_ok else "unknown client"
    return None if client.active else "client disabled"


def mint_token(
    database: Database,
    key: bytes,
    subject: str,
    scopes: tuple[str, ...] = CLINICIAN_SCOPES,
    ttl_s: int = DEFAULT_TTL_S,
    audience: str | None = None,
) -> str:
    """A token for `subject`, as `scribe token create` prints it; a BadInputError unless the subject is an active
    user (user scopes) or an active registered client (system scopes) of `database`, since no other would work."""
    token = create_token(key, subject, scopes, ttl_s, audience=audience)  # refuses a malformed subject or scope first
    kind = Principal(subject, scopes, 0).kind
    reason = subject_refusal(database, subject, kind)
    if reason is not None:
        hint = (
            "`scribe users list` shows the accounts"
            if kind == "user"
            else "system/ scopes need a client id from `scribe clients list`"
        )
        raise BadInputError(f"cannot mint a token for {subject!r}: {reason} ({hint})")
    return token
