"""The one small protocol every note engine implements."""

from __future__ import annotations

from typing import Protocol

from scribe.notes.inputs import NoteInput
from scribe.notes.schema import SOAPNote


class NoteEngine(Protocol):
    """Drafts a SOAPNote from a transcript, prior records and attachments.

    Engines cite evidence for every statement; the caller (`draft_note`) then runs the
    grounding check, which has the last word on each statement's `support`.
    """

    name: str

    @property
    def model(self) -> str | None:
        """The model or rules version that drafts; read-only here, so an engine may hold a plain `str`."""
        ...

    def draft(self, note_input: NoteInput, *, template: str = "progress_note") -> SOAPNote: ...
