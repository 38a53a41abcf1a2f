"""The one small protocol every ASR engine implements."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from scribe.records import PatientContext
from scribe.transcript import Transcript

ProgressCallback = Callable[[float], None]
"""Called with the number of audio seconds processed so far."""


class AsrEngine(Protocol):
    """Turns 16 kHz mono float32 audio into a Transcript.

    `context` carries the patient's prior records: engines use its vocabulary (drug names,
    problems, allergies) to bias recognition. Engines are loaded once and reused.
    """

    name: str
    model: str
    workers: int  # calls that may run at once (the streaming service runs that many passes in parallel)

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        context: PatientContext | None = None,
        progress: ProgressCallback | None = None,
    ) -> Transcript: ...
