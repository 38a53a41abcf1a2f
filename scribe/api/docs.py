"""`/docs`: Swagger UI from files this server ships, so the API reference opens on a network without internet.

FastAPI's own page pulls Swagger UI from a public CDN and starts it with an inline script; this one
loads fastapi-offline's copy of Swagger UI and our `init.js` from `/static/docs/`, so it works offline
under a Content-Security-Policy that allows no inline script.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from scribe.api.web import STATIC_DIR
from scribe.resources import render_template

STATIC_PATH = "/static/docs"
CONTENT_SECURITY_POLICY = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    """The Swagger UI page (public, like /openapi.json); every URL on it is this server's, under any root path."""
    root = request.scope.get("root_path", "")
    page = render_template(
        "web/docs.html.j2",
        title=request.app.title,
        static=root + STATIC_PATH,
        openapi_url=root + (request.app.openapi_url or "/openapi.json"),
    )
    return HTMLResponse(page, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})


def install(app: FastAPI) -> None:
    """Serve /docs and its files: Swagger UI's (from the fastapi-offline package) and our init script; before the
    web app's `/static` mount, since the first matching route answers."""
    app.include_router(router)
    app.mount(
        STATIC_PATH,
        StaticFiles(directory=STATIC_DIR / "docs", packages=[("fastapi_offline", "static")]),
        name="docs-static",
    )
