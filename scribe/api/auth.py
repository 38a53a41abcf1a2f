"""Request authentication as FastAPI dependencies: every non-public route depends on one of these."""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request

from scribe.auth.tokens import AuthError, Principal, verify_token


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise AuthError("missing Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("Authorization must be 'Bearer <token>'")
    return token.strip()


def principal_from_header(request: Request, authorization: str | None) -> Principal:
    state = request.app.state
    return verify_token(state.signing_key, bearer_token(authorization), audience=state.settings.public_url)


def current_principal(request: Request) -> Principal:
    return principal_from_header(request, request.headers.get("authorization"))


def require_scope(scope: str):
    """Dependency factory: the caller must hold `scope` (403 otherwise)."""

    def check(principal: Principal = Depends(current_principal)) -> Principal:
        if not principal.has_scope(scope):
            raise HTTPException(status_code=403, detail=f"scope {scope} required")
        return principal

    return check
