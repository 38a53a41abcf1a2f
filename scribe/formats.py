"""Render a Transcript as txt, json, srt or vtt (the CLI's `--format`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from scribe.transcript import Transcript

OutputFormat = Literal["txt", "json", "srt", "vtt"]


def _timestamp(seconds: float, decimal: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def _cue_text(text: str, speaker: str | None) -> str:
    text = " ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    return f"[{speaker}] {text}" if speaker else text


def to_txt(transcript: Transcript) -> str:
    return transcript.text.rstrip("\n") + "\n"


def to_json(transcript: Transcript) -> str:
    return transcript.to_json() + "\n"


def to_srt(transcript: Transcript) -> str:
    cues = []
    for number, seg in enumerate((s for s in transcript.segments if s.text.strip()), start=1):
        cues.append(
            f"{number}\n{_timestamp(seg.start, ',')} --> {_timestamp(seg.end, ',')}\n"
            f"{_cue_text(seg.text, seg.speaker)}\n"
        )
    return "\n".join(cues)


def to_vtt(transcript: Transcript) -> str:
    cues = ["WEBVTT\n"]
    for seg in transcript.segments:
        if seg.text.strip():
            cues.append(
                f"{_timestamp(seg.start, '.')} --> {_timestamp(seg.end, '.')}\n{_cue_text(seg.text, seg.speaker)}\n"
            )
    return "\n".join(cues)


RENDERERS: dict[str, Callable[[Transcript], str]] = {
    "txt": to_txt,
    "json": to_json,
    "srt": to_srt,
    "vtt": to_vtt,
}


def render(transcript: Transcript, fmt: OutputFormat) -> str:
    return RENDERERS[fmt](transcript)
