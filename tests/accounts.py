"""The suite's tokens and the accounts they name: one signing secret (`KEY`), `token`/`bearer` to mint with it, and
`enrol`. Who a token names must exist: scribe honours a token it signed only for an active user account or, for a
system token, an active registered client of that id (scribe/auth/subjects.py). Every test that mints a token
makes its subject here, the way an operator would have."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import jwt

from scribe.auth.jwks import jwks_json, parse_jwks
from scribe.auth.tokens import Principal, create_token
from scribe.auth.users import find_user, save_user
from scribe.config import Settings
from scribe.store import Database, open_database
from scribe.store.models import Client

# A token minted when its test module is imported must outlive the whole run (the suite takes over ten minutes).
SUITE_TTL_S = 24 * 3600
# The secret every app and `scribe serve` the tests start signs with (Settings.secret_key / SCRIBE_SECRET_KEY).
KEY = "s" * 40
CLINICIAN = ("user/*.*",)


def token(
    subject: str = "dr-a", scopes: tuple[str, ...] = CLINICIAN, ttl_s: int = SUITE_TTL_S, audience: str | None = None
) -> str:
    """A token signed with `KEY` (a clinician's unless `scopes` say otherwise)."""
    return create_token(KEY.encode(), subject, scopes, ttl_s, audience=audience)


def bearer(
    subject: str = "dr-a", scopes: tuple[str, ...] = CLINICIAN, ttl_s: int = SUITE_TTL_S, audience: str | None = None
) -> dict[str, str]:
    """The `Authorization` header carrying `token(...)`."""
    return {"Authorization": f"Bearer {token(subject, scopes, ttl_s, audience)}"}


@lru_cache(maxsize=1)
def _public_keys() -> str:
    from tests.test_auth_keys import ec_key, jwks

    return jwks_json(parse_jwks(jwks(ec_key("enrolled", "ES384")), strict=True))


def enrol(database: Database | Path, *credentials: str | Mapping[str, str]) -> None:
    """Create, unless it exists, the clinician account (user scopes) or the registered client with that client_id
    (system scopes) each credential names: a token, or headers carrying `Authorization: Bearer <token>`.

    `database` may be a server's data directory (its SQLite database, e.g. of a `scribe serve` subprocess). The
    token is read without checking its signature: the test made it.
    """
    if isinstance(database, Path):
        opened = open_database(Settings(data_dir=database))
        try:
            enrol(opened, *credentials)
        finally:
            opened.engine.dispose()
        return
    for credential in credentials:
        token = credential if isinstance(credential, str) else credential["Authorization"].removeprefix("Bearer ")
        claims = jwt.decode(token, options={"verify_signature": False})
        scopes = tuple(str(claims.get("scope", "")).split())
        subject = claims["sub"]
        if Principal(subject, scopes, 0).kind == "user":
            if find_user(database, subject) is None:
                save_user(database, subject, None)
            continue
        with database.session() as session, session.begin():
            if session.get(Client, subject) is None:
                session.add(
                    Client(
                        client_id=subject,
                        name=subject,
                        jwks=_public_keys(),
                        scopes=" ".join(scopes),
                        active=True,
                        created_at=datetime.now(UTC),
                    )
                )
