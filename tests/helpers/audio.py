"""WAV files made in a test: 16-bit mono PCM, the format scribe's samples and clients use."""

from __future__ import annotations

import wave
from pathlib import Path


def write_wav(path: Path, pcm: bytes, rate: int = 16000) -> Path:
    """Write little-endian 16-bit mono `pcm` at `rate` as a WAV file at `path`."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return path
