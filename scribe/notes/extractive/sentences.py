"""Transcript segments cut into sentences that remember exactly where they came from.

Every statement the engine writes cites one or more of these sentences, so offsets are into
`segment.text` itself. Speech transcripts often lack punctuation (a whole turn is one run of
words); long runs are cut again at discourse markers ("okay", "so", "and then") so that a
note statement never has to cite a whole monologue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scribe.transcript import Transcript

_CLINICIAN = {"doctor", "doctor_guest", "clinician", "provider", "physician", "nurse", "dr"}
_PATIENT = {
    "patient",
    "patient_guest",
    "guest",
    "family",
    "caregiver",
    "parent",
    "mother",
    "father",
    "spouse",
    "interpreter",
}

# A sentence ends at . ? ! ; followed by space, except after an ellipsis, a title or an initial.
_BOUNDARY = re.compile(
    r"(?<![.\s][.])(?<!\b(?:dr|mr|ms|vs|st))(?<!\bmrs)(?<!\b[a-z])[.?!;]+(?=\s|$)"
    r"(?!\s+(?:zero|one|two|three|four|five|six|seven|eight|nine|\d)\b)",
    re.I,
)
_WORD = re.compile(r"\S+")
_MARKERS = re.compile(
    r"(?:okay|ok|alright|all right|so|now|and then|but|also|and i'm|"
    r"i'm gon na|i'm gonna|i'm going to|i want|i'd like|i would like|i think|let's|let me|"
    r"we'll|we will|we're gon na|we're gonna|do you|did you|have you|are you|is there|"
    r"what about|how about)\b",
    re.I,
)
# Words a sentence cannot end with: no cut right after them ("your heart rate is | also ...").
_NO_END = {
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "the",
    "a",
    "an",
    "to",
    "of",
    "at",
    "in",
    "on",
    "for",
    "with",
    "i",
    "i'm",
    "we",
    "you",
    "my",
    "your",
    "and",
    "or",
    "that",
    "it's",
    "is,",
    "very",
    "so",
    "really",
}
LONG_RUN_WORDS = 28
MIN_PIECE_WORDS = 6


@dataclass(frozen=True)
class Sentence:
    index: int  # position in the encounter, from 0
    segment_id: int
    turn: int  # position of the segment in the transcript
    start: int  # offsets into the segment's text
    end: int
    text: str  # segment.text[start:end]
    role: str  # "clinician", "patient" or "unknown" (no speaker label)

    @property
    def words(self) -> int:
        return len(self.text.split())


def speaker_role(speaker: str | None) -> str:
    """Map a transcript speaker label to the role that decides how a sentence is rewritten."""
    if not speaker:
        return "unknown"
    label = speaker.strip().lower().replace(" ", "_")
    if label in _CLINICIAN or label.startswith("doctor"):
        return "clinician"
    if label in _PATIENT or label.startswith("patient"):
        return "patient"
    return "unknown"


def _pieces(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Cut [start, end) at sentence punctuation; then cut long unpunctuated runs at discourse markers."""
    spans: list[tuple[int, int]] = []
    pos = start
    for match in _BOUNDARY.finditer(text, start, end):
        spans.append((pos, match.end()))
        pos = match.end()
    spans.append((pos, end))
    out: list[tuple[int, int]] = []
    for a, b in spans:
        words = list(_WORD.finditer(text, a, b))
        if len(words) <= LONG_RUN_WORDS:
            out.append((a, b))
            continue
        piece_start, count = a, 0
        for k, word in enumerate(words):
            if (
                count >= MIN_PIECE_WORDS
                and _MARKERS.match(text, word.start())
                and words[k - 1].group(0).lower() not in _NO_END
                and len(words) - k >= MIN_PIECE_WORDS // 2
            ):
                out.append((piece_start, word.start()))
                piece_start, count = word.start(), 0
            count += 1
        out.append((piece_start, b))
    return out


def _trim(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and (text[a].isspace() or text[a] in ",-"):
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def split_sentences(transcript: Transcript) -> list[Sentence]:
    """All sentences of the transcript in order; empty pieces (punctuation only) are dropped."""
    sentences: list[Sentence] = []
    for turn, segment in enumerate(transcript.segments):
        role = speaker_role(segment.speaker)
        for a, b in _pieces(segment.text, 0, len(segment.text)):
            a, b = _trim(segment.text, a, b)
            piece = segment.text[a:b]
            if not re.search(r"[A-Za-z0-9]", piece):
                continue
            sentences.append(Sentence(len(sentences), segment.id, turn, a, b, piece, role))
    return sentences
