"""The Transcript every engine returns and every consumer reads (JSON shape fixed in docs/interfaces.md)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from scribe.errors import BadInputError


@dataclass
class Word:
    word: str
    start: float
    end: float
    probability: float | None = None


@dataclass
class Segment:
    id: int
    start: float
    end: float
    text: str
    speaker: str | None = None
    words: list[Word] = field(default_factory=list)


@dataclass
class Transcript:
    text: str
    language: str
    engine: str
    model: str
    duration_s: float
    processing_s: float
    segments: list[Segment] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        """Rebuild a Transcript from its JSON form; a wrong shape is a BadInputError."""
        try:
            segments = [
                Segment(
                    id=int(s["id"]),
                    start=float(s["start"]),
                    end=float(s["end"]),
                    text=str(s["text"]),
                    speaker=s.get("speaker"),
                    words=[
                        Word(str(w["word"]), float(w["start"]), float(w["end"]), w.get("probability"))
                        for w in s.get("words") or []
                    ],
                )
                for s in data["segments"]
            ]
            return cls(
                text=str(data.get("text") or join_segment_texts(segments)),
                language=str(data.get("language") or "en"),
                engine=str(data["engine"]),
                model=str(data.get("model") or ""),
                duration_s=float(data.get("duration_s") or (segments[-1].end if segments else 0.0)),
                processing_s=float(data.get("processing_s") or 0.0),
                segments=segments,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadInputError(f"not a scribe Transcript JSON: {exc!r}") from None


def word_spans(segment: Segment) -> list[tuple[Word, int, int]]:
    """Each word of a segment with the characters of `segment.text` it stands for, found in order; a word whose
    text is not found there is left out. Maps word times and probabilities onto text spans."""
    out = []
    pos = 0
    for word in segment.words:
        token = word.word.strip()
        found = segment.text.find(token, pos) if token else -1
        if found < 0:
            continue
        pos = found + len(token)
        out.append((word, found, pos))
    return out


def join_segment_texts(segments: list[Segment]) -> str:
    """The transcript's full text: segments joined by spaces, or by their own line breaks."""
    parts: list[str] = []
    for seg in segments:
        text = seg.text.strip(" ")
        if not text:
            continue
        if parts and not parts[-1].endswith("\n") and not text.startswith("\n"):
            parts.append(" ")
        parts.append(text)
    return "".join(parts).strip()


def shifted(segment: Segment, offset: float, new_id: int) -> Segment:
    """`segment` on a clock that starts `offset` seconds earlier, renumbered `new_id` (a resumed stream,
    a later window of a long upload)."""
    words = [Word(w.word, round(w.start + offset, 3), round(w.end + offset, 3), w.probability) for w in segment.words]
    return Segment(
        new_id, round(segment.start + offset, 3), round(segment.end + offset, 3), segment.text, segment.speaker, words
    )


def concatenated(parts: list[tuple[float, Transcript]], duration_s: float) -> Transcript:
    """One Transcript of consecutive windows, each given with its offset: times shifted, ids renumbered."""
    if not parts:
        raise ValueError("no transcript to join")
    segments = [shifted(segment, offset, 0) for offset, part in parts for segment in part.segments]
    for number, segment in enumerate(segments):
        segment.id = number
    first = parts[0][1]
    return Transcript(
        text=join_segment_texts(segments),
        language=first.language,
        engine=first.engine,
        model=first.model,
        duration_s=round(duration_s, 3),
        processing_s=round(sum(part.processing_s for _, part in parts), 3),
        segments=segments,
    )
