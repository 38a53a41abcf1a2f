"""The clinician's web app: page shells at `/`, `/encounters/…` and `/notes/…`, and its static files.

A page is a Jinja template from `templates/web/` that carries no patient data: its ES module
(`scribe/static/web/`) reads everything through the same REST API every client uses, so access
rules and the audit trail apply to the browser exactly as to any integration. Signed out, every
page is the sign-in page; after signing in the browser reloads the same address.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

import scribe
import scribe.streaming as streaming
from scribe.api.state import service
from scribe.auth.tokens import AuthError
from scribe.auth.web_sessions import SESSION_COOKIE, SignedIn, resolve_session
from scribe.resources import render_template

router = APIRouter(include_in_schema=False)
STATIC_DIR = Path(scribe.__file__).resolve().parent / "static"
CAPTURE_DIR = Path(streaming.__file__).resolve().parent / "web"


def mount_static(app: FastAPI) -> None:
    """`/static/streaming/` is the browser capture code beside the protocol it speaks; `/static/` the app."""
    app.mount("/static/streaming", StaticFiles(directory=CAPTURE_DIR), name="static-streaming")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def _signed_in(request: Request) -> SignedIn | None:
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    try:
        return resolve_session(service(request).database, session_id)
    except AuthError:
        return None


def _page(request: Request, page: str, title: str, **values: str) -> HTMLResponse:
    """The page, or the sign-in page in its place while nobody is signed in."""
    signed_in = _signed_in(request)
    if signed_in is None:
        return HTMLResponse(
            render_template("web/signin.html.j2", page="signin", title="Sign in", version=scribe.__version__)
        )
    return HTMLResponse(
        render_template(
            f"web/{page}.html.j2", page=page, title=title, version=scribe.__version__, user=signed_in, **values
        )
    )


@router.get("/", response_class=HTMLResponse)
def encounters_page(request: Request) -> HTMLResponse:
    return _page(request, "encounters", "Encounters")


@router.get("/encounters/new", response_class=HTMLResponse)
def new_encounter_page(request: Request) -> HTMLResponse:
    return _page(request, "encounter", "New encounter", encounter_id="")


@router.get("/encounters/{encounter_id}", response_class=HTMLResponse)
def encounter_page(request: Request, encounter_id: str) -> HTMLResponse:
    """An unknown or malformed id still gets the page, which shows the API's 404 in place (never a blank screen)."""
    return _page(request, "encounter", "Encounter", encounter_id=encounter_id)


@router.get("/notes/{note_id}", response_class=HTMLResponse)
def note_page(request: Request, note_id: str) -> HTMLResponse:
    return _page(request, "note", "Note", note_id=note_id)
