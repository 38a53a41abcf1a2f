"""Errors leave the API as FHIR OperationOutcome bodies with the right status, never as tracebacks."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from scribe.api.auth import record_auth_event
from scribe.auth.smart import OAuthError
from scribe.auth.tokens import AuthError
from scribe.errors import (
    BadInputError,
    ConfigError,
    ConflictError,
    EngineUnavailableError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PreconditionFailedError,
    PreconditionRequiredError,
    RateLimitedError,
    ScribeError,
    UnsupportedMediaTypeError,
)

log = logging.getLogger("scribe.api")

_ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "conflict",
    412: "conflict",
    413: "too-long",
    415: "not-supported",
    422: "processing",
    428: "required",
    429: "throttled",
    503: "transient",
}


_STATUS_BY_ERROR = (
    (AuthError, 401),
    (ForbiddenError, 403),
    (NotFoundError, 404),
    (PayloadTooLargeError, 413),
    (UnsupportedMediaTypeError, 415),
    (PreconditionFailedError, 412),
    (PreconditionRequiredError, 428),
    (ConflictError, 409),
    (InvalidRequestError, 400),
    (BadInputError, 422),
    (RateLimitedError, 429),
    (EngineUnavailableError, 503),
    (ConfigError, 503),
    (ScribeError, 500),
)


def operation_outcome(status: int, message: str) -> JSONResponse:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error" if status < 500 else "fatal",
                "code": _ISSUE_CODES.get(status, "exception"),
                "diagnostics": message,
            }
        ],
    }
    headers = {"WWW-Authenticate": 'Bearer realm="scribe"'} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers, media_type="application/fhir+json")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 401:
            await run_in_threadpool(
                record_auth_event, request, "auth-failure", None, "anonymous", status=401, detail=str(exc.detail)
            )
        return operation_outcome(exc.status_code, str(exc.detail))

    @app.exception_handler(AuthError)
    async def auth_error(request: Request, exc: AuthError) -> JSONResponse:
        """Every refused credential is answered and audited (`auth-failure`) here, once; token-endpoint
        refusals as OAuth2 error JSON, the rest as a 401 OperationOutcome."""
        status = exc.status if isinstance(exc, OAuthError) else 401
        await run_in_threadpool(
            record_auth_event, request, "auth-failure", exc.subject, exc.subject_kind, status=status, detail=str(exc)
        )
        if isinstance(exc, OAuthError):
            return JSONResponse(exc.body(), status_code=status, headers={"Cache-Control": "no-store"})
        return operation_outcome(401, str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return operation_outcome(422, problems)

    @app.exception_handler(ScribeError)
    async def scribe_error(_: Request, exc: ScribeError) -> JSONResponse:
        status = next(code for kind, code in _STATUS_BY_ERROR if isinstance(exc, kind))
        return operation_outcome(status, str(exc))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled %s", type(exc).__name__)  # no message: it could carry patient data
        return operation_outcome(500, "internal error")
