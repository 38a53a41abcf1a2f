"""`/v1/note-engines`: which note engines this server drafts with, so a page can offer the choice."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from scribe.api import schemas
from scribe.api.auth import require_scope
from scribe.api.deps import AppSettings
from scribe.auth.tokens import Principal
from scribe.notes.registry import choose_note_engine, configured_note_engines

router = APIRouter(prefix="/v1", tags=["notes"], responses=schemas.errors(401, 403))


class NoteEngines(BaseModel):
    default: str
    engines: list[str]


@router.get("/note-engines", response_model=NoteEngines)
def note_engines(
    settings: AppSettings, _: Principal = Depends(require_scope("user/DocumentReference.cu"))
) -> NoteEngines:
    return NoteEngines(default=choose_note_engine(None, settings).name, engines=configured_note_engines(settings))
