"""What a note is drafted from: a transcript, the patient's prior records, attached images.

Transcripts come from audio (transcribed first), scribe Transcript JSON, or plain text with
one turn a line and optional speaker labels (`[doctor]`, `[patient]`, as in ACI-BENCH).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from scribe.errors import BadInputError
from scribe.notes.attachments import Attachment
from scribe.records import PatientContext
from scribe.transcript import Segment, Transcript

_SPEAKER = re.compile(r"^\s*\[([A-Za-z_ -]{1,32})\]\s*:?\s*|^\s*([A-Za-z]{2,20})\s*:\s+")
_SPEAKER_NAMES = {
    "doctor",
    "patient",
    "clinician",
    "nurse",
    "provider",
    "physician",
    "guest",
    "doctor_guest",
    "patient_guest",
    "family",
    "caregiver",
    "interpreter",
    "speaker",
}


@dataclass
class NoteInput:
    transcript: Transcript
    context: PatientContext | None = None
    attachments: list[Attachment] = field(default_factory=list)


def transcript_from_text(text: str) -> Transcript:
    """One segment per non-empty line; a leading `[doctor]` or `Doctor:` label becomes the speaker.

    Plain text has no timing: segment times are 0.0, and evidence links fall back to segment ids.
    """
    segments: list[Segment] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        speaker = None
        match = _SPEAKER.match(line)
        if match:
            label = (match.group(1) or match.group(2)).strip().lower().replace(" ", "_")
            if match.group(1) or label in _SPEAKER_NAMES:
                speaker, line = label, line[match.end() :].strip()
        if line:
            segments.append(Segment(id=len(segments), start=0.0, end=0.0, text=line, speaker=speaker))
    if not segments:
        raise BadInputError("the transcript is empty")
    return Transcript(
        text="\n".join(s.text for s in segments),
        language="en",
        engine="text",
        model="",
        duration_s=0.0,
        processing_s=0.0,
        segments=segments,
    )


def load_transcript_file(path: Path) -> Transcript:
    """A Transcript JSON (`.json`) or a plain-text transcript (anything else that is UTF-8 text)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInputError(f"{path} is neither audio nor a UTF-8 transcript") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
        if not isinstance(data, dict):
            raise BadInputError(f"{path} is not a scribe Transcript JSON object")
        transcript = Transcript.from_dict(data)
        if not transcript.segments:
            raise BadInputError(f"{path}: the transcript has no segments")
        return transcript
    return transcript_from_text(text)
