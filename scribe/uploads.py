"""Recorded files posted over REST: checked, stored, and transcribed a window at a time.

A long recording is never decoded whole: it is transcribed in windows of `WINDOW_S` seconds, so
peak memory is one window's samples and the engine's work on them, whatever the file's length.
"""

from __future__ import annotations

from pathlib import Path

from scribe.asr import AsrEngine
from scribe.audio import AudioLimits, decode_windows
from scribe.records import PatientContext
from scribe.transcript import Transcript, concatenated

# 2 minutes: 8 MB of samples, four of Whisper's 30 s windows. Measured on a 63-minute upload, the server's peak
# grows by ~100 MB with 2-minute windows, ~190 MB with 4 and ~360 MB with 10, for the same speed.
WINDOW_S = 120.0
LABEL = "the upload"  # how messages name the file (never its path)


def transcribe_file(engine: AsrEngine, path: Path, limits: AudioLimits, context: PatientContext | None, *,
                    window_s: float = WINDOW_S) -> Transcript:
    """The file's Transcript, one window at a time (each cut where it is quietest), on the file's clock."""
    parts: list[tuple[float, Transcript]] = []
    duration = 0.0
    for offset, samples in decode_windows(path, limits, window_s=window_s, label=LABEL):
        parts.append((offset, engine.transcribe(samples, context=context)))
        duration = offset + len(samples) / 16_000
    return concatenated(parts, duration)
