"""`/healthz` (public): liveness plus whether the ASR engine is loaded, and which one."""

from __future__ import annotations

from fastapi import APIRouter, Request

import scribe
from scribe.api.schemas import Health

router = APIRouter()


@router.get("/healthz", tags=["health"], response_model=Health)
def healthz(request: Request) -> dict:
    engine = request.app.state.asr.engine
    return {
        "status": "ok",
        "version": scribe.__version__,
        "ready": engine is not None,
        "engines": {"asr": {"name": engine.name, "model": engine.model} if engine else None},
    }
