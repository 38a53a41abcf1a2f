"""`/v1/session`: the web app's sign-in (an HttpOnly cookie), who is signed in, and sign-out."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel

from scribe.api import schemas
from scribe.api.auth import (
    FORM_BODY_DOC,
    browser_origin_allowed,
    principal_from_session,
    read_form,
    record_auth_event,
    refuse_throttled,
)
from scribe.api.state import service
from scribe.auth.tokens import AuthError
from scribe.auth.users import authenticate
from scribe.auth.web_sessions import SESSION_COOKIE, SignedIn, end_session, resolve_session, start_session
from scribe.config import Settings
from scribe.errors import BadInputError, ForbiddenError

router = APIRouter(prefix="/v1", tags=["session"], responses=schemas.errors(401))


class SessionInfo(BaseModel):
    username: str
    display_name: str | None
    csrf_token: str

    @classmethod
    def of(cls, signed_in: SignedIn) -> SessionInfo:
        return cls(username=signed_in.username, display_name=signed_in.display_name, csrf_token=signed_in.csrf_token)


def _check_origin(request: Request) -> None:
    """A browser's sign-in must come from scribe's own pages (no signing a victim into another account)."""
    if not browser_origin_allowed(request):
        raise ForbiddenError("sign-in from another site's page is refused")


def _cookie_flags(settings: Settings) -> dict:
    secure = bool(settings.public_url and settings.public_url.lower().startswith("https://"))
    return {"path": "/", "secure": secure, "httponly": True, "samesite": "strict"}


def _session_cookie(request: Request) -> str:
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        raise AuthError("not signed in")
    return session_id


@router.post(
    "/session",
    response_model=SessionInfo,
    openapi_extra=FORM_BODY_DOC,
    responses=schemas.errors(403, 413, 415, 422, 429),
)
def sign_in(request: Request, response: Response, form: dict[str, str] = Depends(read_form)) -> SessionInfo:
    """Form `username`, `password` → the session cookie, and the CSRF token unsafe requests must echo."""
    _check_origin(request)
    username, password = form.get("username", "").strip(), form.get("password", "")
    if not username or not password:
        raise BadInputError("username and password are required")
    state = service(request)
    refuse_throttled(request, username)  # per address, per account from this address, per account overall
    account = authenticate(state.database, username, password)  # refusals are audited by the AuthError handler
    session_id, signed_in = start_session(
        state.database, account.username, account.display_name, state.settings.session_lifetime_s
    )
    response.set_cookie(
        SESSION_COOKIE, session_id, max_age=state.settings.session_lifetime_s, **_cookie_flags(state.settings)
    )
    response.headers["Cache-Control"] = "no-store"
    record_auth_event(request, "login", account.username, "user")
    return SessionInfo.of(signed_in)


@router.get("/session", response_model=SessionInfo)
def current_session(request: Request, response: Response) -> SessionInfo:
    """Who this browser is signed in as, and its CSRF token again (the page may have been reloaded)."""
    response.headers["Cache-Control"] = "no-store"
    return SessionInfo.of(resolve_session(service(request).database, _session_cookie(request)))


@router.delete("/session", status_code=204, response_class=Response, responses=schemas.errors(403))
def sign_out(request: Request) -> Response:
    """End this browser's session (needs the X-CSRF-Token header, like every unsafe cookie request)."""
    session_id = _session_cookie(request)
    principal = principal_from_session(request, session_id)
    end_session(service(request).database, session_id)
    record_auth_event(request, "logout", principal.subject, "user", status=204)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, **_cookie_flags(service(request).settings))
    return response
