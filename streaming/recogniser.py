"""What a session needs from a streaming recogniser, whatever engine is behind it, and which one serves an engine.

A session feeds audio, asks whether a pass is due, runs passes on the scheduler and publishes
the partials and finals they return; it never knows how an engine decodes. Each engine that
can stream has one subclass here (Whisper by whole-utterance passes, MedASR by chunked CTC), chosen
by `StreamingRecogniser.for_engine`, the one place that maps an engine to its recogniser.
"""

from __future__ import annotations

import importlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from scribe.asr.base import AsrEngine
from scribe.audio import SAMPLE_RATE
from scribe.errors import EngineUnavailableError
from scribe.records import PatientContext
from scribe.streaming.vad import Endpointer, VadEvent
from scribe.transcript import Segment

# engine name -> (module, class): imported on first use, so a Whisper-only server never imports MedASR's code
_RECOGNISERS = {
    "whisper": ("scribe.streaming.whisper_stream", "WhisperStream"),
    "medasr": ("scribe.streaming.medasr_stream", "MedAsrStream"),
}


@dataclass
class StreamUpdate:
    """Result of one pass: new final segments (ids increasing across the session) and the current partial."""

    finals: list[Segment] = field(default_factory=list)
    partial: str = ""
    partial_start: float | None = None
    partial_end: float | None = None
    pass_seconds: float = 0.0  # wall time of the pass; 0.0 when none ran
    audio_end: float = 0.0  # stream time up to which the pass heard audio
    final_pass_audio_s: float = 0.0  # audio a finishing pass decoded (what a final costs); 0.0 for other passes
    loaded_partial_audio_s: float = 0.0  # new audio a partial pass made under load covered (what a partial costs then)


class StreamingRecogniser(ABC):
    """One session's incremental recogniser over 16 kHz mono float32 audio.

    `feed` may run on another thread than `step`/`flush`. Audio is appended to `_buf` (its
    first sample is `_buf_start`, `_total` counts every sample fed); `_endpoint` is the end of
    speech (a sample) waiting for its finalising pass; subclasses set `_finished` once the pass
    after `end_input` has run. All of these change under `_lock`. `congested` says whether the
    engine's passes queue (the scheduler's answer; never, alone): a recogniser may then spend
    fewer passes on partials, never less on finals.
    """

    def __init__(self, endpointer: Endpointer | None = None) -> None:
        self.endpointer = endpointer or Endpointer()
        self._lock = threading.Lock()
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0  # absolute sample index of _buf[0]
        self._total = 0  # samples fed so far
        self._endpoint: int | None = None  # end of speech waiting for its finalising pass
        self._input_ended = False  # no more audio will come: the next pass is the last
        self._finished = False  # that last pass has run
        self.congested: Callable[[], bool] = _never

    @staticmethod
    def for_engine(
        engine: AsrEngine, *, context: PatientContext | None = None, congested: Callable[[], bool] | None = None
    ) -> StreamingRecogniser:
        """A new recogniser for `engine` (the records' terms bias it); refused for an engine that cannot stream."""
        recogniser = recogniser_class(engine.name)(engine, context=context)
        if congested is not None:
            recogniser.congested = congested
        return recogniser

    @property
    def time(self) -> float:
        """Seconds of audio fed so far."""
        return self._total / SAMPLE_RATE

    @property
    def buffered_seconds(self) -> float:
        """Audio held in memory (for backpressure decisions by the caller)."""
        return len(self._buf) / SAMPLE_RATE

    @property
    def finished(self) -> bool:
        """The input ended and its last pass ran: nothing more will come out."""
        return self._finished

    def end_input(self) -> None:
        """No more audio: the next pass finalises everything (see `finalising`)."""
        with self._lock:
            self._input_ended = True

    def feed(self, audio: np.ndarray) -> list[VadEvent]:
        """Append 16 kHz mono float32 audio; returns the VAD events it produced."""
        chunk = np.asarray(audio, dtype=np.float32).reshape(-1)
        events = self.endpointer.feed(chunk)
        with self._lock:
            if self._input_ended:
                raise RuntimeError("audio fed after the end of the input")
            self._buf = np.concatenate([self._buf, chunk])
            self._total += len(chunk)
            self._heard(events)
            self._trim()
        return events

    def finalising(self) -> bool:
        """Whether the next pass makes finals of everything pending (an endpoint or the end of input): run it first."""
        return self._endpoint is not None or (self._input_ended and not self._finished)

    def needs_pass(self) -> bool:
        """Whether a pass is worth its cost now: something to finalise, or enough new speech."""
        with self._lock:
            if self._input_ended:
                return not self._finished
            if self._endpoint is not None:
                return True
            return self._worth_a_pass()

    @abstractmethod
    def step(self) -> StreamUpdate:
        """Run the pass that is due: the last after `end_input`, a finalising one after an endpoint, else a partial."""

    def flush(self) -> StreamUpdate:
        """End of stream: the last passes, as one update; afterwards nothing is pending."""
        self.end_input()
        update = self.step()
        while not self.finished:  # a backlog longer than one pass allows
            more = self.step()
            update = StreamUpdate(
                update.finals + more.finals,
                more.partial,
                more.partial_start,
                more.partial_end,
                round(update.pass_seconds + more.pass_seconds, 3),
                more.audio_end,
            )
        return update

    @abstractmethod
    def _heard(self, events: list[VadEvent]) -> None:
        """Note the VAD events of the chunk just appended (under `_lock`); an end of speech sets `_endpoint`."""

    @abstractmethod
    def _worth_a_pass(self) -> bool:
        """Under `_lock`, with nothing to finalise: whether the new speech is worth a partial pass."""

    @abstractmethod
    def _trim(self) -> None:
        """Drop the audio no pass will need again (under `_lock`), so `_buf` stays short."""


class RecogniserClass(Protocol):
    """A StreamingRecogniser subclass as `for_engine` calls it: with its engine and the records' context.

    Each subclass's constructor takes its own engine's type; `recogniser_class` pairs them by the engine's name.
    """

    def __call__(self, engine: AsrEngine, *, context: PatientContext | None = None) -> StreamingRecogniser: ...


def recogniser_class(engine_name: str) -> RecogniserClass:
    """The recogniser that streams `engine_name`; EngineUnavailableError when that engine cannot stream."""
    try:
        module, name = _RECOGNISERS[engine_name]
    except KeyError:
        raise EngineUnavailableError(
            f"the {engine_name} engine cannot stream (streaming serves {', '.join(sorted(_RECOGNISERS))})"
        ) from None
    recogniser: RecogniserClass = getattr(importlib.import_module(module), name)  # the class _RECOGNISERS names
    return recogniser


def _never() -> bool:
    return False
