"""MedASR streaming as chunked CTC with left context: each new chunk's frames are computed once and kept.

MedASR is a CTC model, so unlike Whisper it needs no agreement between passes: a frame's
log-probabilities depend mostly on the audio near it. Each pass runs the model over the new
audio plus `left_context_s` of audio already heard; the frames of the new part are appended
to the utterance's frame log (the left context's are dropped, as the offline engine drops a
window's overlap), except the last `right_context_s` of frames, which lack the audio after
them: they are shown in the partial and computed again by the next pass. A partial is the
greedy decode of the utterance's frames so far. At the end of an utterance (VAD, as for
Whisper) or of the input, the utterance's frames are decoded once, hotword-biased by the
records like the offline engine, and formatted as dictation into finals. An utterance longer
than `max_utterance_s` is finalised at the widest gap between words in its second half.
Silence between utterances is never run through the model.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np

from scribe.asr.dictation_format import format_dictation
from scribe.asr.medasr import MedAsrEngine
from scribe.asr.segmenting import widest_pause
from scribe.audio import SAMPLE_RATE
from scribe.records import PatientContext
from scribe.streaming.recogniser import StreamingRecogniser, StreamUpdate
from scribe.streaming.vad import Endpointer, VadEvent
from scribe.transcript import Segment, Word


class ChunkedFrames:
    """A recording's CTC frames computed chunk by chunk, each chunk with the audio before it as left context.

    Frame `k` is the frame a window starting at sample `k * samples_per_frame` yields first, so
    a chunk's window starts on a frame boundary and its frames are the recording's frames,
    equal to a whole pass's within what the missing far context changes. A window is at most
    the offline engine's (`window_s`): a backlog (a resumed stream, a loaded server) takes
    several passes rather than one pass too long for the model's attention.
    """

    def __init__(self, engine: MedAsrEngine, *, left_context_s: float, right_context_s: float) -> None:
        self.engine = engine
        self.geometry = engine.geometry
        self.left = round(left_context_s / self.geometry.frame_s)
        self.right = round(right_context_s / self.geometry.frame_s)
        self.max_window = max(
            self.geometry.samples_for_frames(self.left + self.right + 1),
            round(engine.window_s * self.geometry.sample_rate),
        )

    def window_start(self, stable: int) -> int:
        """First sample of the window that computes the frames from `stable` on (the audio before must be kept)."""
        return max(0, stable - self.left) * self.geometry.samples_per_frame

    def compute(
        self, audio: np.ndarray, audio_start: int, stable: int, *, last: bool
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """(frames from `stable` that are final, frames after them that need more audio, end of the audio heard).

        `audio` starts at sample `audio_start` of the recording and runs to the newest sample;
        `last`: nothing follows it, so when the window reaches its end every frame is final (padded
        as offline).
        """
        start = self.window_start(stable)
        end = min(audio_start + len(audio), start + self.max_window)
        window = audio[start - audio_start : end - audio_start]
        last = last and end == audio_start + len(audio)
        if last and len(window):
            window = self.engine.pad_end(window)
        first = start // self.geometry.samples_per_frame
        if self.geometry.frames_for_samples(len(window)) <= stable - first:
            return self._empty(), self._empty(), end
        out = self.engine.log_probs([window])[0][stable - first :]
        keep = len(out) if last else max(0, len(out) - self.right)
        return out[:keep], out[keep:], end

    def _empty(self) -> np.ndarray:
        return np.zeros((0, 0), dtype=np.float32)


class MedAsrStream(StreamingRecogniser):
    """One session's MedASR recogniser. Passes run one at a time; `feed` never waits for one to decode."""

    def __init__(
        self,
        engine: MedAsrEngine,
        *,
        context: PatientContext | None = None,
        chunk_s: float = 1.0,
        left_context_s: float = 4.0,
        right_context_s: float = 0.5,
        preroll_s: float = 0.3,
        tail_pad_s: float = 0.3,
        max_utterance_s: float = 30.0,
        endpointer: Endpointer | None = None,
    ) -> None:
        super().__init__(endpointer)
        self.engine = engine
        self.context = context
        self.frames = ChunkedFrames(engine, left_context_s=left_context_s, right_context_s=right_context_s)
        self._spf = engine.geometry.samples_per_frame
        self.chunk = int(chunk_s * SAMPLE_RATE)
        self.preroll = int(preroll_s * SAMPLE_RATE)
        self.tail_pad = int(tail_pad_s * SAMPLE_RATE)
        self.max_utterance = round(max_utterance_s / engine.geometry.frame_s)
        self._pass_lock = threading.Lock()
        self._cut = 0  # first frame of the open utterance (everything before is final or silence)
        self._stable = 0  # frames [_cut, _stable) are computed and kept in _log
        self._log = np.zeros((0, 0), dtype=np.float32)
        self._last_pass_end = 0
        self._passing = False  # a pass owns the utterance's frames: silence skips nothing meanwhile
        self._later_endpoints: list[int] = []  # ends of speech after `_endpoint`, not yet finalised
        self._next_id = 0

    def _heard(self, events: list[VadEvent]) -> None:
        for event in events:  # several ends at once (a resumed backlog): each ends its own utterance, in turn
            if event.kind == "end":
                at = int(round(event.time * SAMPLE_RATE))
                if self._endpoint is None:
                    self._endpoint = at
                else:
                    self._later_endpoints.append(at)
        if self._idle() and not self._passing:  # silence after the utterance: keep the pre-roll and left context
            self._skip_to(max(0, self._total - self.preroll) // self._spf)

    def _worth_a_pass(self) -> bool:
        """≥ `chunk_s` of new audio in an utterance."""
        return not self._idle() and self._total - self._last_pass_end >= self.chunk

    def step(self) -> StreamUpdate:
        with self._pass_lock:
            return self._pass()

    def _idle(self) -> bool:
        """No utterance open: not in speech, and the last end of speech has been finalised."""
        return not self.endpointer.is_speech and self._endpoint is None

    def _skip_to(self, frame: int) -> None:
        """Start the utterance at `frame` (not before the current one): the frames before it are silence."""
        frame = max(frame, self._cut)
        self._log = self._log[max(0, min(frame, self._stable) - self._cut) :]
        self._cut, self._stable = frame, max(self._stable, frame)

    def _trim(self) -> None:
        """Drop audio no pass will need again (before the left context of the next frames)."""
        drop = min(self.frames.window_start(self._stable), self._total) - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start += drop

    def _pass(self) -> StreamUpdate:
        """Compute the new frames, finalise what is due, show the rest; decoding never holds `_lock` (`feed` waits
        on it, on the event loop), and the utterance's state is this pass's alone while it runs."""
        with self._lock:
            if self._finished:
                return StreamUpdate(audio_end=self._total / SAMPLE_RATE)
            endpoint, last, total = self._endpoint, self._input_ended, self._total
            audio, audio_start, stable = self._buf.copy(), self._buf_start, self._stable
            self._passing = True
        try:
            began = time.perf_counter()
            kept, pending, heard = self.frames.compute(audio, audio_start, stable, last=last)
            elapsed = time.perf_counter() - began
            last = last and heard == total  # else a backlog: the next pass goes on from here
            until: int | None = None
            with self._lock:
                self._last_pass_end = heard
                self._append(kept)
                if last:
                    until = self._stable
                elif endpoint is not None:
                    cut = max(self._cut, -(-(endpoint + self.tail_pad) // self._spf))
                    if heard == total:  # the frames just after the speech lack right context, which has not come
                        taken = max(0, min(len(pending), cut - self._stable))
                        self._append(pending[:taken])
                        pending = pending[taken:]
                    until = cut if cut <= self._stable else None  # a backlog not heard up to there: the next pass
                first, log = self._cut, self._log
            if until is None and len(log) > self.max_utterance:
                until = self._gap_cut(log, first, total)
            finals: list[Segment] = []
            if until is not None:
                finals = self._finals(self._decode(log[: until - first], first, total, self.context))
                with self._lock:
                    self._skip_to(until)
                    if last:
                        self._finished, self._endpoint, self._later_endpoints = True, None, []
                    elif self._endpoint == endpoint:  # cleared only now: until it is final, silence must not skip it
                        self._endpoint = self._later_endpoints.pop(0) if self._later_endpoints else None
                    first, log = self._cut, self._log
            shown = np.concatenate([log, pending]) if len(log) and len(pending) else (log if len(log) else pending)
            partial = self._decode(shown, first, total)
        finally:
            with self._lock:
                self._passing = False
                self._trim()
        text = format_dictation(partial)[1] if partial else ""
        return StreamUpdate(
            finals,
            text,
            partial[0].start if partial else None,
            partial[-1].end if partial else None,
            round(elapsed, 3),
            heard / SAMPLE_RATE,
        )

    def _append(self, frames: np.ndarray) -> None:
        if len(frames):
            self._log = np.concatenate([self._log, frames]) if len(self._log) else frames
            self._stable += len(frames)

    def _decode(self, frames: np.ndarray, first: int, total: int, context: PatientContext | None = None) -> list[Word]:
        """Words of consecutive frames from frame `first`: greedy, or biased by the records' terms (finals)."""
        if not len(frames):
            return []
        return self.engine.words(
            frames, context=context, start_s=first * self.engine.geometry.frame_s, end_s=total / SAMPLE_RATE
        )

    def _finals(self, words: list[Word]) -> list[Segment]:
        """Dictation-formatted segments, numbered on from the last final."""
        segments = [replace(segment, id=self._next_id + i) for i, segment in enumerate(format_dictation(words)[0])]
        self._next_id += len(segments)
        return segments

    def _gap_cut(self, log: np.ndarray, first: int, total: int) -> int:
        """Where to end an overlong utterance: the widest pause between words in its second half, else its end."""
        frame_s = self.engine.geometry.frame_s
        words = self._decode(log, first, total)
        cut = widest_pause(words, (first + len(log) / 2) * frame_s)
        end = first + len(log)
        return min(end, max(first + 1, round(cut / frame_s))) if cut is not None else end
