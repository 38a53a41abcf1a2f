"""SMART Backend Services endpoints (public): the discovery document and the token endpoint."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from scribe.api import schemas
from scribe.api.auth import FORM_BODY_DOC, read_form, record_auth_event, refuse_throttled
from scribe.api.state import service
from scribe.auth.smart import (
    ASSERTION_ALGORITHMS,
    CAPABILITIES,
    GRANT_TYPE,
    SYSTEM_SCOPES,
    OAuthError,
    client_credentials_grant,
)
from scribe.errors import BadInputError

router = APIRouter(tags=["smart"])
TOKEN_PATH = "/auth/token"


def token_endpoint(request: Request) -> str:
    """The URL assertions must name as `aud`: under SCRIBE_PUBLIC_URL when set (behind a proxy), else as reached."""
    base = service(request).settings.public_url or str(request.base_url)
    return base.rstrip("/") + TOKEN_PATH


async def token_form(request: Request) -> dict[str, str]:
    """The token request's fields; a malformed body is an OAuth2 invalid_request, not an OperationOutcome."""
    try:
        return await read_form(request)
    except BadInputError as exc:
        raise OAuthError("invalid_request", str(exc)) from None


@router.get("/.well-known/smart-configuration", response_model=schemas.SmartConfiguration)
def smart_configuration(request: Request) -> dict[str, Any]:
    return {
        "token_endpoint": token_endpoint(request),
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "grant_types_supported": [GRANT_TYPE],
        "scopes_supported": list(SYSTEM_SCOPES),
        "capabilities": list(CAPABILITIES),
    }


@router.post(
    TOKEN_PATH,
    openapi_extra=FORM_BODY_DOC,
    response_model=schemas.AccessToken,
    responses={
        400: schemas.content("application/json", schemas.OAUTH_ERROR, "the request or its assertion is refused"),
        401: schemas.content("application/json", schemas.OAUTH_ERROR, "the client is unknown or disabled"),
        **schemas.errors(413, 415, 429),
    },
)
def issue_token(request: Request, form: dict[str, str] = Depends(token_form)) -> JSONResponse:
    """client_credentials with a private_key_jwt assertion → a bearer token of the granted system/ scopes."""
    state = service(request)
    refuse_throttled(request)  # failed token requests count with failed sign-ins, per address
    grant = client_credentials_grant(
        state.database, state.signing_key, form, token_endpoint(request), audience=state.settings.public_url
    )
    record_auth_event(request, "token", grant.client_id, "system", detail=f"granted {' '.join(grant.scopes)}")
    return JSONResponse(grant.body(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
