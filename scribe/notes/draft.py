"""`draft_note`: the one entry point the CLI and the API call to turn a NoteInput into a checked draft."""

from __future__ import annotations

import time

from scribe.config import Settings
from scribe.notes.grounding import ground_note
from scribe.notes.inputs import NoteInput
from scribe.notes.registry import choose_note_engine, load_note_engine
from scribe.notes.schema import SOAPNote
from scribe.telemetry import telemetry


def draft_note(
    note_input: NoteInput, settings: Settings, *, engine: str | None = None, template: str = "progress_note"
) -> SOAPNote:
    """Draft with the chosen engine, then let the grounding check set every statement's `support`.

    Whatever the engine claims, a statement whose evidence does not back it (numbers, drug
    names, negation) comes back `unsupported`, never silently kept as supported.
    """
    choice = choose_note_engine(engine, settings)
    note_engine = load_note_engine(choice, settings)
    started = time.perf_counter()
    note = note_engine.draft(note_input, template=template)
    note = ground_note(note, note_input)
    note.note_type = template
    note.metadata.engine = note_engine.name
    note.metadata.model = note_engine.model
    seconds = time.perf_counter() - started
    note.metadata.processing_s = round(seconds, 3)
    telemetry.note_drafted(note_engine.name, seconds)
    return note
