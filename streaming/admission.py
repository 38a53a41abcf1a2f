"""How many live streams this node takes: new ones beyond what its ASR workers can serve in real time are refused.

At capacity a node runs its streams the way it does under load (see `WhisperStream`): finals from
one pass over each utterance, partials greedy and rarer. What a stream costs then is measured on
the node's own passes and smoothed: the wall time of a finishing pass per second of audio it
decoded (on one worker), plus that of a partial pass made under load per second of new audio it
covered. The node keeps up while its live streams need no more than `UTILISATION` of its
workers; a new stream beyond that is refused with `server_busy` (the client retries later)
instead of every stream being transcribed late. A stream resuming audio already stored is never
refused: its clinician is mid-recording. Until a partial under load has been measured it is
taken to cost what a final does (measured here: 0.12 against 0.13 s a second), and until
anything has been measured the node takes `UNMEASURED_PER_WORKER` streams per worker. An
operator who has measured the node (`scribe bench stream`) may fix the number instead
(`SCRIBE_STREAM_CAPACITY`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

UTILISATION = 0.8  # share of the workers finals may take; the rest is for partials, VAD and the event loop
SMOOTHING = 0.2  # weight of the newest measurement in the running real-time factor
UNMEASURED_PER_WORKER = 2
MIN_MEASURED_AUDIO_S = 1.0  # shorter passes are dominated by fixed costs and would understate capacity


@dataclass(frozen=True)
class AdmissionState:
    """What `/healthz` and the metrics show: live streams, the limit for new ones, and what it rests on."""

    live: int
    capacity: int
    final_rtf: float | None  # measured wall seconds per audio second of a finishing pass on one worker
    loaded_partial_rtf: float | None  # the same for partial passes under load, per second of new audio
    configured: bool
    refused: int


class StreamAdmission:
    """Counts live streams and decides, for each new one, whether the node can still keep up. Thread-safe."""

    def __init__(self, workers: int, capacity: int | None = None) -> None:
        self.workers = max(1, workers)
        self.configured_capacity = capacity
        self._lock = threading.Lock()
        self._live = 0
        self._refused = 0
        self._final_rtf: float | None = None
        self._partial_rtf: float | None = None

    @property
    def capacity(self) -> int:
        """Live streams the node keeps up with (the configured number, else from the measured cost of a stream)."""
        if self.configured_capacity is not None:
            return self.configured_capacity
        if self._final_rtf is None:
            return self.workers * UNMEASURED_PER_WORKER
        stream_cost = self._final_rtf + (self._partial_rtf if self._partial_rtf is not None else self._final_rtf)
        return max(1, math.floor(self.workers * UTILISATION / stream_cost))

    def admit(self, *, resuming: bool) -> bool:
        """Count a stream in if there is room (a resumed one always); False: refuse it with `server_busy`."""
        with self._lock:
            if not resuming and self._live >= self.capacity:
                self._refused += 1
                return False
            self._live += 1
            return True

    def release(self) -> None:
        """A stream counted in by `admit` has ended."""
        with self._lock:
            self._live = max(0, self._live - 1)

    def observe_pass(self, pass_seconds: float, audio_seconds: float, *, final: bool) -> None:
        """One finishing pass (`final`) or partial pass under load: `pass_seconds` of wall time on a worker for
        `audio_seconds` of audio (new audio, for a partial)."""
        if audio_seconds < MIN_MEASURED_AUDIO_S or pass_seconds <= 0:
            return
        rtf = pass_seconds / audio_seconds
        with self._lock:
            if final:
                self._final_rtf = _smoothed(self._final_rtf, rtf)
            else:
                self._partial_rtf = _smoothed(self._partial_rtf, rtf)

    def state(self) -> AdmissionState:
        with self._lock:
            return AdmissionState(
                self._live,
                self.capacity,
                _rounded(self._final_rtf),
                _rounded(self._partial_rtf),
                self.configured_capacity is not None,
                self._refused,
            )


def _smoothed(previous: float | None, value: float) -> float:
    return value if previous is None else (1 - SMOOTHING) * previous + SMOOTHING * value


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
