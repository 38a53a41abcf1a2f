"""SMART Backend Services: EHR integrations trade a signed client assertion for a short access token.

Clients are registered with their public keys (`scribe clients add`). An assertion is good once:
its `jti` goes into `used_assertions` until it expires, and the table's primary key, not any
process's memory, refuses a replay, so it holds across nodes.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from scribe.auth.jwks import PublicKey, jwks_json, parse_jwks, signed_header
from scribe.auth.tokens import AuthError, create_token
from scribe.errors import BadInputError
from scribe.store import Database
from scribe.store.models import Client, UsedAssertion
from scribe.text import clean_text

log = logging.getLogger("scribe.auth")

GRANT_TYPE = "client_credentials"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ("RS384", "ES384")
MAX_ASSERTION_LIFETIME_S = 300
CLOCK_SKEW_S = 15
ACCESS_TOKEN_TTL_S = 300
MAX_JTI_LENGTH = 128
# An unsigned draft is not part of the legal record: a client sees drafts (with their Binary and Provenance) only
# when it also holds this. A pseudo resource type, so it fits the SMART scope grammar clients and
# `scribe clients add` already speak; `system/*.rs` includes it, as it includes AuditEvent.
DRAFTS_SCOPE = "system/DraftDocumentReference.rs"
# What scribe's FHIR API offers integrations; listed in /.well-known/smart-configuration.
SYSTEM_SCOPES = (
    "system/DocumentReference.rs",
    "system/Binary.r",
    "system/Provenance.rs",
    "system/AuditEvent.rs",
    DRAFTS_SCOPE,
)
DEFAULT_CLIENT_SCOPES = ("system/DocumentReference.rs",)
CAPABILITIES = ("client-confidential-asymmetric", "permission-v1", "permission-v2")

_V1_ACCESS = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(r"(?P<context>system|user|patient)/(?P<type>\*|[A-Z][A-Za-z]{0,63})\.(?P<access>[a-z*]+)")


class OAuthError(AuthError):
    """A token request refused with an RFC 6749 error code: 401 for invalid_client, else 400."""

    def __init__(self, error: str, description: str, *, client_id: str | None = None) -> None:
        super().__init__(description, subject=client_id, subject_kind="system")
        self.error, self.description = error, description
        self.status = 401 if error == "invalid_client" else 400

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True)
class Scope:
    """A SMART scope in v2 form: context (`system`), resource type (or `*`), permissions from `cruds`."""

    context: str
    resource: str
    permissions: frozenset[str]

    def __str__(self) -> str:
        return f"{self.context}/{self.resource}.{''.join(c for c in 'cruds' if c in self.permissions)}"


def parse_scope(text: str) -> Scope | None:
    """`system/DocumentReference.rs` (v2) or `.read`/`.write`/`.*` (v1); None for anything else."""
    match = _SCOPE.fullmatch(text)
    if match is None:
        return None
    access = _V1_ACCESS.get(match["access"], match["access"])
    if not access or set(access) - set("cruds") or len(set(access)) != len(access):
        return None
    return Scope(match["context"], match["type"], frozenset(access))


def grant_scopes(requested: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """Requested ∩ allowed, per resource type and permission; unknown or non-system requests grant nothing."""
    permitted = [scope for scope in map(parse_scope, allowed) if scope is not None and scope.context == "system"]
    granted: dict[str, set[str]] = {}
    for wanted in map(parse_scope, requested.split()):
        if wanted is None or wanted.context != "system":
            continue
        for offer in permitted:
            if offer.resource == "*":
                resource = wanted.resource
            elif wanted.resource in ("*", offer.resource):
                resource = offer.resource
            else:
                continue
            common = wanted.permissions & offer.permissions
            if common:
                granted.setdefault(resource, set()).update(common)
    return tuple(sorted(str(Scope("system", resource, frozenset(perms))) for resource, perms in granted.items()))


# ------------------------------------------------------------------------------------------ registration


@dataclass(frozen=True)
class ClientInfo:
    client_id: str
    name: str
    scopes: tuple[str, ...]
    active: bool


def _info(row: Client) -> ClientInfo:
    return ClientInfo(row.client_id, row.name, tuple(row.scopes.split()), row.active)


def register_client(database: Database, name: str, jwks_text: str, scopes: tuple[str, ...] = ()) -> ClientInfo:
    """A new client allowed `scopes` (system/ only; default DocumentReference read+search) with these public keys;
    its name (what `scribe clients list` shows) is one line of clean text."""
    if not 0 < len(name.strip()) <= 255:
        raise BadInputError("a client name is 1-255 characters")
    clean_text(name, "client name")
    keys = parse_jwks(jwks_text, strict=True)
    for key in keys.values():
        if not any(key.fits(alg) for alg in ASSERTION_ALGORITHMS):
            raise BadInputError(
                f"key {key.kid!r} cannot sign {' or '.join(ASSERTION_ALGORITHMS)} (EC keys must be P-384)"
            )
    normalized: list[str] = []
    for text in scopes or DEFAULT_CLIENT_SCOPES:
        scope = parse_scope(text)
        if scope is None or scope.context != "system":
            raise BadInputError(f"scope {text!r}: a client gets system/ scopes such as system/DocumentReference.rs")
        normalized.append(str(scope))
    row = Client(
        client_id=secrets.token_hex(16),
        name=name.strip(),
        jwks=jwks_json(keys),
        scopes=" ".join(dict.fromkeys(normalized)),
        active=True,
        created_at=datetime.now(UTC),
    )
    with database.session() as session, session.begin():
        session.add(row)
    return _info(row)


def list_clients(database: Database) -> list[ClientInfo]:
    with database.session() as session:
        return [_info(row) for row in session.scalars(select(Client).order_by(Client.created_at, Client.client_id))]


def set_client_active(database: Database, client_id: str, active: bool) -> ClientInfo:
    with database.session() as session, session.begin():
        row = session.get(Client, client_id)
        if row is None:
            raise BadInputError(f"no client {client_id!r}")
        row.active = active
        session.flush()
        return _info(row)


def find_client(database: Database, client_id: str) -> ClientInfo | None:
    with database.session() as session:
        row = session.get(Client, client_id)
        return _info(row) if row is not None else None


# ------------------------------------------------------------------------------------------ the token exchange


@dataclass(frozen=True)
class Grant:
    client_id: str
    access_token: str
    scopes: tuple[str, ...]
    expires_in: int

    def body(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "scope": " ".join(self.scopes),
        }


def client_credentials_grant(
    database: Database, signing_key: bytes, params: Mapping[str, str], token_url: str, audience: str | None = None
) -> Grant:
    """Check the request and its assertion, spend the assertion's jti, and mint a token of the granted scopes."""
    grant_type = params.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required")
    if grant_type != GRANT_TYPE:
        raise OAuthError("unsupported_grant_type", f"only grant_type={GRANT_TYPE} is supported")
    if params.get("client_assertion_type") != ASSERTION_TYPE:
        raise OAuthError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
    assertion, requested = params.get("client_assertion"), params.get("scope")
    if not assertion:
        raise OAuthError("invalid_request", "client_assertion is required")
    if not requested or not requested.strip():
        raise OAuthError("invalid_request", "scope is required")
    client, jti, expires_at = verify_assertion(database, assertion, token_url)
    if params.get("client_id") not in (None, client.client_id):
        raise OAuthError(
            "invalid_client", "client_id does not match the assertion's issuer", client_id=client.client_id
        )
    granted = grant_scopes(requested, client.scopes)
    if not granted:
        raise OAuthError(
            "invalid_scope",
            f"none of the requested scopes is granted to this client (allowed: {' '.join(client.scopes)})",
            client_id=client.client_id,
        )
    spend_assertion(database, client.client_id, jti, expires_at)
    token = create_token(signing_key, client.client_id, granted, ACCESS_TOKEN_TTL_S, audience=audience)
    return Grant(client.client_id, token, granted, ACCESS_TOKEN_TTL_S)


def _active_client(database: Database, client_id: str) -> tuple[ClientInfo, dict[str, PublicKey]] | None:
    """The client and its keys by kid, if it is registered and active."""
    with database.session() as session:
        row = session.get(Client, client_id)
        if row is None or not row.active:
            return None
        return _info(row), parse_jwks(row.jwks, strict=False)


def verify_assertion(database: Database, assertion: str, token_url: str) -> tuple[ClientInfo, str, datetime]:
    """(client, jti, when the jti may be forgotten) for a well-signed, fresh assertion addressed to `token_url`."""
    try:
        alg, kid = signed_header(assertion, ASSERTION_ALGORITHMS)
        claimed = jwt.decode(assertion, options={"verify_signature": False})
    except (ValueError, jwt.PyJWTError) as exc:
        raise OAuthError("invalid_client", f"client_assertion: {exc}") from None
    client_id = claimed.get("iss")
    if not isinstance(client_id, str) or not client_id or claimed.get("sub") != client_id:
        raise OAuthError("invalid_client", "the assertion's iss and sub must both be the client_id")
    found = _active_client(database, client_id)
    if found is None:
        raise OAuthError("invalid_client", "unknown or disabled client", client_id=client_id)
    client, keys = found
    key = keys.get(kid)
    if key is None or not key.fits(alg):
        raise OAuthError(
            "invalid_client", f"no key {kid!r} for {alg} in the client's registered key set", client_id=client_id
        )
    try:
        claims = jwt.decode(
            assertion,
            key.key,
            algorithms=[alg],
            audience=token_url,
            issuer=client_id,
            leeway=CLOCK_SKEW_S,
            options={"require": ["iss", "sub", "aud", "exp", "jti"]},
        )
    except jwt.InvalidSignatureError:
        raise OAuthError("invalid_client", "the assertion's signature does not verify", client_id=client_id) from None
    except jwt.ExpiredSignatureError:
        raise OAuthError("invalid_grant", "the assertion has expired", client_id=client_id) from None
    except jwt.InvalidAudienceError:
        raise OAuthError("invalid_grant", f"the assertion's aud must be {token_url}", client_id=client_id) from None
    except jwt.PyJWTError as exc:
        raise OAuthError("invalid_grant", f"client_assertion: {exc}", client_id=client_id) from None
    if claims["exp"] > time.time() + MAX_ASSERTION_LIFETIME_S + CLOCK_SKEW_S:
        raise OAuthError(
            "invalid_grant", f"the assertion's exp is more than {MAX_ASSERTION_LIFETIME_S} s ahead", client_id=client_id
        )
    jti = claims["jti"]
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
        raise OAuthError(
            "invalid_grant",
            f"the assertion's jti must be a string of 1-{MAX_JTI_LENGTH} characters",
            client_id=client_id,
        )
    return client, jti, datetime.fromtimestamp(int(claims["exp"]) + CLOCK_SKEW_S, UTC)


def spend_assertion(database: Database, client_id: str, jti: str, forget_after: datetime) -> None:
    """Record the jti; a second use, on any node, hits the primary key and is refused."""
    try:
        with database.session() as session, session.begin():
            session.add(UsedAssertion(jti=f"{client_id}/{jti}", client_id=client_id, expires_at=forget_after))
    except IntegrityError:
        raise OAuthError(
            "invalid_grant", "this assertion was already used (jti replayed)", client_id=client_id
        ) from None
    purge_used_assertions(database)


def purge_used_assertions(database: Database) -> None:
    """Forget jtis whose assertions can no longer be accepted anyway; best effort, in its own transaction."""
    try:
        with database.session() as session, session.begin():
            session.execute(delete(UsedAssertion).where(UsedAssertion.expires_at < datetime.now(UTC)))
    except SQLAlchemyError as exc:  # e.g. two nodes purging the same rows at once: the other one did it
        log.info("used-assertion purge skipped: %s", type(exc).__name__)
