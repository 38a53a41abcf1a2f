"""Voice-activity endpointing for live audio with the Silero VAD that faster-whisper ships.

faster-whisper runs Silero over a whole file; a stream needs the same model run window by
window, carrying its LSTM state and 64-sample context between calls, so that the events do
not depend on how the audio was chunked. Cost measured here: ~3 ms of CPU per second of audio.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from scribe.audio import SAMPLE_RATE

WINDOW = 512  # samples per Silero decision (32 ms at 16 kHz), fixed by the model
_CONTEXT = 64  # samples of the previous window the model sees in front of each window


@dataclass(frozen=True)
class VadEvent:
    """Speech began (`time` = start of its first speech window) or ended (`time` = start of the silence).

    `detected_at` is the stream time at which the event became known: for an end, at least
    `min_silence_ms` later than `time`.
    """

    kind: Literal["start", "end"]
    time: float
    detected_at: float


def _silero_session() -> Any:  # an onnxruntime InferenceSession: neither library ships types
    from faster_whisper.vad import get_vad_model

    return get_vad_model().session  # one cached onnxruntime session; its run() is thread-safe


class Endpointer:
    """Incremental speech start / end detection over 16 kHz mono float32 chunks of any size.

    Hysteresis as in faster-whisper: a window at or above `threshold` is speech; speech ends
    only after `min_silence_ms` of windows below `neg_threshold`. `feed` is thread-safe.
    """

    def __init__(
        self, *, threshold: float = 0.5, neg_threshold: float | None = None, min_silence_ms: int = 500
    ) -> None:
        self.threshold = threshold
        self.neg_threshold = max(threshold - 0.15, 0.01) if neg_threshold is None else neg_threshold
        self.min_silence_windows = max(1, -(-min_silence_ms * SAMPLE_RATE // 1000 // WINDOW))
        self._session = _silero_session()
        self._lock = threading.Lock()
        self._pending = np.zeros(0, dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._windows = 0  # windows decided so far
        self._speech = False
        self._silence_from: int | None = None  # first window of the current run of silence, while in speech
        self.last_probability = 0.0

    @property
    def is_speech(self) -> bool:
        """Whether the stream is inside speech as of the last decided window."""
        return self._speech

    @property
    def time(self) -> float:
        """Seconds of audio decided so far (a multiple of one window)."""
        return self._windows * WINDOW / SAMPLE_RATE

    def feed(self, chunk: np.ndarray) -> list[VadEvent]:
        """Consume audio; return the events decided by it (in order)."""
        with self._lock:
            audio = np.concatenate([self._pending, np.asarray(chunk, dtype=np.float32).reshape(-1)])
            usable = len(audio) // WINDOW * WINDOW
            self._pending = audio[usable:].copy()
            if not usable:
                return []
            return [event for p in self._probabilities(audio[:usable]) for event in self._decide(float(p))]

    def _probabilities(self, audio: np.ndarray) -> np.ndarray:
        windows = audio.reshape(-1, WINDOW)
        contexts = np.concatenate([self._context[None, :], windows[:-1, -_CONTEXT:]], axis=0)
        batch = np.ascontiguousarray(np.concatenate([contexts, windows], axis=1))
        probs, self._h, self._c = self._session.run(None, {"input": batch, "h": self._h, "c": self._c})
        self._context = windows[-1, -_CONTEXT:].copy()
        return np.asarray(probs).reshape(-1)

    def _decide(self, prob: float) -> list[VadEvent]:
        index = self._windows
        self._windows += 1
        self.last_probability = prob
        if not self._speech:
            if prob >= self.threshold:
                self._speech, self._silence_from = True, None
                return [VadEvent("start", index * WINDOW / SAMPLE_RATE, self.time)]
            return []
        if prob >= self.threshold:
            self._silence_from = None
        elif prob < self.neg_threshold:
            if self._silence_from is None:
                self._silence_from = index
            if self._windows - self._silence_from >= self.min_silence_windows:
                self._speech = False
                end = self._silence_from * WINDOW / SAMPLE_RATE
                self._silence_from = None
                return [VadEvent("end", end, self.time)]
        return []
