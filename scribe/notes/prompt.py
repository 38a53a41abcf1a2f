"""Chat messages for the LLM note engines, rendered from templates/prompts (one prompt for every backend).

The transcript goes in as numbered segments inside a delimited block the system prompt declares
to be data, so words spoken in the room ("ignore previous instructions") stay words. Markup in
the data cannot close the block: angle brackets in it are replaced by look-alike characters.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from scribe.notes.inputs import NoteInput
from scribe.notes.schema import llm_note_schema
from scribe.records import PatientContext
from scribe.resources import render_template

NOTE_TITLES = {
    "progress_note": "progress note",
    "history_and_physical": "history and physical",
    "consult_note": "consult note",
    "discharge_summary": "discharge summary",
    "procedure_note": "procedure note",
    "emergency_department_note": "emergency department note",
}

_DEFANG = str.maketrans({"<": "‹", ">": "›"})


@dataclass
class Fact:
    resource_id: str
    text: str


def _defang(text: str) -> str:
    return " ".join(text.translate(_DEFANG).split())


def record_facts(context: PatientContext | None) -> list[Fact]:
    """Prior records as one line each, keyed by the resource id a statement cites."""
    if context is None:
        return []
    facts = [
        Fact(
            m.resource_id,
            f"medication {m.display or m.name}"
            + (f", {m.dosage}" if m.dosage else "")
            + (f" ({m.status})" if m.status else ""),
        )
        for m in context.medications
    ]
    facts += [
        Fact(
            p.resource_id,
            f"problem {p.name}" + (f" [{p.code}]" if p.code else "") + (f" ({p.status})" if p.status else ""),
        )
        for p in context.problems
    ]
    facts += [
        Fact(a.resource_id, f"allergy to {a.substance}" + (f", reaction {a.reaction}" if a.reaction else ""))
        for a in context.allergies
    ]
    facts += [
        Fact(
            o.resource_id,
            f"observation {o.name}: {o.value or ''} {o.unit or ''}".strip()
            + (f" on {o.effective}" if o.effective else ""),
        )
        for o in context.observations
    ]
    return [Fact(f.resource_id, _defang(f.text)) for f in facts]


def build_messages(
    note_input: NoteInput, *, template: str = "progress_note", image_parts: bool = False
) -> list[dict[str, Any]]:
    """OpenAI-style chat messages; with `image_parts`, each attachment follows as an image content part.

    Image parts use the OpenAI shape (`image_url` with a data: URL); engines that need another
    shape (the transformers chat template) convert them.
    """
    segments = [
        {"id": s.id, "speaker": _defang(s.speaker or "") or None, "text": _defang(s.text)}
        for s in note_input.transcript.segments
        if s.text.strip()
    ]
    system = render_template(
        "prompts/soap_note.system.j2",
        note_title=NOTE_TITLES.get(template, "clinical note"),
        schema_json=json.dumps(llm_note_schema(), separators=(",", ":")),
    )
    user_text = render_template(
        "prompts/soap_note.user.j2",
        segments=segments,
        facts=record_facts(note_input.context),
        attachments=note_input.attachments,
        image_parts=image_parts and bool(note_input.attachments),
    )
    user: list[dict[str, Any]] | str = user_text
    if image_parts and note_input.attachments:
        user = [{"type": "text", "text": user_text}]
        for attachment in note_input.attachments:
            url = f"data:{attachment.media_type};base64,{base64.b64encode(attachment.data).decode('ascii')}"
            user.append({"type": "text", "text": f"Image {attachment.id}:"})
            user.append({"type": "image_url", "image_url": {"url": url}})
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
