"""Every request body is read here, once, against its route's limit (`SCRIBE_MAX_*_BYTES`).

A declared `Content-Length` over the limit is refused (413) before a byte of the body is read; a
body without one (chunked) is cut off as soon as it passes the limit. Audio is written to a file
beside its final place while it arrives, so it never sits whole in memory and storing it is a rename.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from scribe.api.state import service
from scribe.errors import BadInputError, PayloadTooLargeError
from scribe.json_input import parse_json

_SPOOL_CHUNK = 1024 * 1024  # bytes gathered before each write to the spool file


def media_type(request: Request) -> str:
    return (request.headers.get("content-type") or "").split(";")[0].strip().lower()


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"the body is larger than this route's limit of {limit} bytes")


async def body_chunks(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    """The body as it arrives; 413 at once for a declared length over `limit`, else as soon as it passes it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _too_large(limit)
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        if chunk:
            yield chunk


async def read_body(request: Request, limit: int) -> bytes:
    """A small body (JSON, a form, a records bundle, an image) in memory: never more than `limit` of it."""
    return b"".join([chunk async for chunk in body_chunks(request, limit)])


@dataclass
class Spooled:
    """A body written to disk while it arrived: its file (fsynced), size and SHA-256."""

    path: Path
    size: int
    sha256: str

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


async def spool_body(request: Request, limit: int, directory: Path, prefix: str) -> Spooled:
    """Write the body to a new file in `directory` (fsynced) as it arrives; nothing is left behind on failure.

    `prefix` starts the file name (the node id), so a node that restarts can sweep what it left.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _too_large(limit)  # before the spool file exists
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{prefix}-{uuid.uuid4().hex}.part"
    digest, size = hashlib.sha256(), 0
    handle = await asyncio.to_thread(open, path, "wb")
    try:
        pending: list[bytes] = []
        pending_size = 0
        async for chunk in body_chunks(request, limit):
            digest.update(chunk)
            size += len(chunk)
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= _SPOOL_CHUNK:
                await asyncio.to_thread(handle.writelines, pending)
                pending, pending_size = [], 0
        await asyncio.to_thread(_finish, handle, pending)
    except BaseException:
        handle.close()
        path.unlink(missing_ok=True)
        raise
    return Spooled(path, size, digest.hexdigest())


def _finish(handle: Any, pending: list[bytes]) -> None:
    with handle:
        handle.writelines(pending)
        handle.flush()
        os.fsync(handle.fileno())


def sweep_spool(directory: Path, prefix: str) -> int:
    """At start-up: remove the spool files this node left when it stopped mid-upload; returns how many."""
    removed = 0
    for path in directory.glob(f"{prefix}-*.part") if directory.is_dir() else ():
        path.unlink(missing_ok=True)
        removed += 1
    return removed


async def read_multipart_file(request: Request, limit: int) -> tuple[bytes, str, str | None]:
    """(bytes, declared media type, filename) of the first file of a multipart form, the form bounded by `limit`.

    The parser reads through `body_chunks`, so the form is cut off at the limit like any body;
    file parts over 1 MB are spooled to disk by the parser, never held twice.
    """
    parser = MultiPartParser(request.headers, body_chunks(request, limit), max_files=1, max_fields=10)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadInputError(f"the multipart form cannot be read: {exc.message}") from None
    try:
        upload = next((v for v in form.values() if isinstance(v, UploadFile)), None)
        if upload is None:
            raise BadInputError("the multipart form holds no file")
        return await upload.read(), (upload.content_type or "").split(";")[0].lower(), upload.filename
    finally:
        await form.close()


async def read_json(request: Request, limit: int, *, required: bool) -> Any:
    """A JSON body through scribe's defensive parser (depth, NaN, huge numbers); None when empty and optional."""
    raw = await read_body(request, limit)
    if not raw.strip():
        if required:
            raise BadInputError("a JSON body is required")
        return None
    return parse_json(raw)


def validated(model: type[BaseModel], data: Any) -> Any:
    """`data` (None: no body) as `model`; the first problem, with where it is, is the 422's message."""
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise BadInputError(f"{'.'.join(map(str, first['loc'])) or 'body'}: {first['msg']}") from None


def _json_media(request: Request) -> bool:
    value = request.headers.get("content-type")
    if not value:
        return False
    message = Message()
    message["content-type"] = value
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


class _ReadRequest(Request):
    """A request whose body was already read (bounded) and parsed by this module."""

    def __init__(self, request: Request, raw: bytes, parsed: Any) -> None:
        super().__init__(request.scope, request.receive)
        self._raw, self._parsed = raw, parsed

    async def body(self) -> bytes:
        return self._raw

    async def json(self) -> Any:
        return self._parsed


class BoundedRoute(APIRoute):
    """FastAPI's own body parsing (a pydantic request model) fed by `read_body` and scribe's JSON parser:
    the same limit and the same refusals as every other body, raised before FastAPI's catch-all."""

    limit_setting = "max_form_bytes"  # the Settings field that bounds this route's body

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def bounded(request: Request) -> Any:
            raw = await read_body(request, getattr(service(request).settings, self.limit_setting))
            parsed = parse_json(raw) if raw.strip() and _json_media(request) else None
            return await handler(_ReadRequest(request, raw, parsed))

        return bounded


class NoteBodyRoute(BoundedRoute):
    """Note routes take whole SOAPNotes (edits, amendments): bodies up to `SCRIBE_MAX_NOTE_BYTES`."""

    limit_setting = "max_note_bytes"
