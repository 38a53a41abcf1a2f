"""`/healthz` (public): liveness, whether every mode's ASR engine can stream (else why not; not while the node
drains), which serves each, and how many streams the node serves and takes (a load balancer may prefer the node
with room)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request

import scribe
from scribe.api.schemas import Health
from scribe.api.state import service
from scribe.drain import DRAINING_REASON

router = APIRouter()


@router.get("/healthz", tags=["health"], response_model=Health)
def healthz(request: Request) -> dict:
    asr = service(request).asr
    draining = service(request).drain.draining  # a load balancer then sends new clients to another node
    modes = asr.describe()
    return {
        "status": "ok",
        "version": scribe.__version__,
        "ready": asr.ready and not draining,
        "reason": DRAINING_REASON if draining else asr.status,
        "engines": {"asr": modes["encounter"], "asr_modes": modes},
        "streams": asdict(asr.admission.state()) if asr.admission is not None else None,
    }
