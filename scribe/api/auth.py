"""Request authentication as FastAPI dependencies: every non-public route depends on one of these.

A caller is the bearer of scribe's own HS256 token naming an existing, active user or client, the
bearer of a token from the site's OIDC provider (when one is configured), or a browser with a
session cookie, whose unsafe requests must also echo the session's CSRF token.
"""

from __future__ import annotations

import functools
import logging
from urllib.parse import parse_qsl, urlsplit

import jwt
from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from scribe import audit
from scribe.api.state import service
from scribe.auth.oidc import OidcVerifier
from scribe.auth.subjects import subject_refusal
from scribe.auth.throttle import attempt_refusal
from scribe.auth.tokens import CLINICIAN_SCOPES, AuthError, Principal, verify_token
from scribe.auth.users import find_user
from scribe.auth.web_sessions import CSRF_HEADER, SESSION_COOKIE, csrf_matches, resolve_session
from scribe.errors import BadInputError, ForbiddenError, RateLimitedError, UnsupportedMediaTypeError

log = logging.getLogger("scribe.api")

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Where passwords and client assertions are tried (route templates, as the audit trail names them): their failures
# are counted together per address (scribe.auth.throttle).
CREDENTIAL_ROUTES = ("/v1/session", "/auth/token")
AUDIT_SCOPE = "system/AuditEvent.rs"


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def browser_origin_allowed(connection: HTTPConnection) -> bool:
    """A browser request (it sends `Origin`) must come from scribe's own pages: the origin the request was
    addressed to, `SCRIBE_PUBLIC_URL`, or one of `SCRIBE_ALLOWED_ORIGINS`. No `Origin`: not a browser, allowed.

    This keeps another site's page from signing a victim in or opening a stream with their cookie.
    """
    origin = connection.headers.get("origin")
    if origin is None:
        return True
    settings = service(connection).settings
    own = connection.url.replace(
        scheme={"ws": "http", "wss": "https"}.get(connection.url.scheme, connection.url.scheme)
    )
    allowed = {_origin_of(o) for o in settings.allowed_origins} | {_origin_of(str(own))}
    if settings.public_url:
        allowed.add(_origin_of(settings.public_url))
    return origin.lower().rstrip("/") in allowed


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise AuthError("missing Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("Authorization must be 'Bearer <token>'")
    return token.strip()


def oidc_verifier(connection: HTTPConnection) -> OidcVerifier | None:
    """The app's OIDC verifier (built at start-up; its key cache lives as long as the app), if the site has one."""
    return getattr(service(connection), "oidc_verifier", None)


def _signed_by_scribe(token: str) -> bool:
    """scribe signs only HS256; anything else can only be the identity provider's."""
    try:
        return jwt.get_unverified_header(token).get("alg") == "HS256"
    except jwt.PyJWTError:
        return True  # let scribe's own check report what is wrong with it


def refuse_inactive(connection: HTTPConnection, principal: Principal, *, unknown_ok: bool = False) -> None:
    """A principal whose user or client is unknown, deleted or disabled loses access at once, whatever it holds.

    `unknown_ok` for identities vouched for elsewhere (the OIDC provider's users): only a disabled local
    account of the same name is refused.
    """
    reason = subject_refusal(service(connection).database, principal.subject, principal.kind, unknown_ok=unknown_ok)
    if reason is not None:
        raise AuthError(reason, subject=principal.subject, subject_kind=principal.kind)


def principal_from_header(request: HTTPConnection, authorization: str | None) -> Principal:
    """The caller behind `Authorization: Bearer`: a scribe token of an existing user or client, or the OIDC
    provider's (clinician scopes)."""
    state = service(request)
    token = bearer_token(authorization)
    verifier = oidc_verifier(request)
    if verifier is not None and not _signed_by_scribe(token):
        identity = verifier.verify(token)
        principal = Principal(identity.username, CLINICIAN_SCOPES, identity.expires_at)
        refuse_inactive(request, principal, unknown_ok=True)
    else:
        principal = verify_token(state.signing_key, token, audience=state.settings.public_url)
        refuse_inactive(request, principal)
    return principal


def principal_from_session(request: Request, session_id: str) -> Principal:
    """The signed-in clinician behind a session cookie; an unsafe method without the CSRF token is 403."""
    signed_in = resolve_session(service(request).database, session_id)
    if request.method in UNSAFE_METHODS and not csrf_matches(signed_in, request.headers.get(CSRF_HEADER)):
        raise ForbiddenError(f"{CSRF_HEADER} header missing or wrong for this session")
    return Principal(signed_in.username, CLINICIAN_SCOPES, int(signed_in.expires_at.timestamp()))


def current_principal(request: Request) -> Principal:
    """Bearer token first (it is never sent by a browser on its own); else the session cookie.

    The principal is also kept on `request.state` for the audit record of the request.
    """
    authorization = request.headers.get("authorization")
    session_id = request.cookies.get(SESSION_COOKIE)
    if authorization is None and session_id:
        principal = principal_from_session(request, session_id)
    else:
        principal = principal_from_header(request, authorization)
    request.state.principal = principal
    return principal


@functools.cache
def require_scope(scope: str):
    """Dependency factory: the caller must hold `scope` (403 otherwise). One dependency per scope, so that FastAPI
    checks it once however many of a route's dependencies ask for it."""

    def check(principal: Principal = Depends(current_principal)) -> Principal:
        if not principal.has_scope(scope):
            raise ForbiddenError(f"scope {scope} required")
        return principal

    return check


def require_admin(request: Request, principal: Principal = Depends(current_principal)) -> Principal:
    """Audit access: a client granted system/AuditEvent.rs, or a user whose account has the admin role."""
    if principal.has_scope(AUDIT_SCOPE):
        return principal
    if principal.kind == "user":
        account = find_user(service(request).database, principal.subject)
        if account is not None and account.role == "admin":
            return principal
    raise ForbiddenError(f"an administrator or the scope {AUDIT_SCOPE} is required")


def record_auth_event(
    request: Request, action: str, subject: str | None, kind: str, *, status: int = 200, detail: str | None = None
) -> None:
    """Audit a sign-in, sign-out, token or refusal: who, method and route template (never the query)."""
    route = request.scope.get("route")
    actor = audit.Actor(subject, kind if subject else "anonymous", request.client.host if request.client else None)
    try:
        audit.record(
            service(request).database,
            actor,
            action,
            status=status,
            method=request.method,
            path=getattr(route, "path", None),
            detail=detail,
        )
    except Exception as exc:  # the request's own answer must still go out; the failure is logged
        log.error("cannot write the %s audit record: %s", action, type(exc).__name__)


def refuse_throttled(request: Request, account: str | None = None) -> None:
    """429 before a password or an assertion is checked, when this address, or `account` from here or from
    everywhere, failed too often lately (scribe.auth.throttle); the refusal is audited but not counted."""
    address = request.client.host if request.client else None
    throttled = attempt_refusal(service(request).database, CREDENTIAL_ROUTES, address, account)
    if throttled is not None:
        record_auth_event(request, "auth-failure", throttled.account, "user", status=429, detail=throttled.reason)
        raise RateLimitedError(throttled.reason)


async def read_form(request: Request) -> dict[str, str]:
    """The fields of an `application/x-www-form-urlencoded` body (what OAuth2 and HTML forms send)."""
    from scribe.api.bodies import media_type, read_body
    from scribe.json_input import unique_mapping

    if media_type(request) != "application/x-www-form-urlencoded":
        raise UnsupportedMediaTypeError("send the fields as application/x-www-form-urlencoded")
    body = await read_body(request, service(request).settings.max_form_bytes)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=32)
    except (UnicodeDecodeError, ValueError):
        raise BadInputError("the form is not valid url-encoded UTF-8") from None
    return unique_mapping(pairs, name="field", where="in the form")


FORM_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "additionalProperties": {"type": "string"}}
            }
        },
    }
}
