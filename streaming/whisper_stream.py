"""Incremental Whisper decoding for one streaming session: partials while speaking, finals by agreement.

A Whisper pass costs about the same whatever the audio length (input padded to 30 s), so
passes are scarce: each pass over the audio since the last committed word gives a partial;
words two successive passes agree on become final; at the end of an utterance (VAD) one
last pass finalises the rest. Audio before the last committed word is dropped, so the
buffer stays bounded; an utterance longer than `max_utterance_s` is finalised up to a word
boundary a second before the buffer end, never mid-word.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from scribe.asr.segmenting import segments_from_words
from scribe.asr.whisper import WhisperEngine, hotword_prompt
from scribe.records import PatientContext
from scribe.transcript import Segment, Word
from streaming.agreement import LocalAgreement, normalize_word
from streaming.vad import SAMPLE_RATE, Endpointer, VadEvent

_SENTENCE_END = (".", "?", "!")


@dataclass
class StreamUpdate:
    """Result of one pass: new final segments (ids increasing across the session) and the current partial."""

    finals: list[Segment] = field(default_factory=list)
    partial: str = ""
    partial_start: float | None = None
    partial_end: float | None = None
    pass_seconds: float = 0.0  # wall time of the Whisper pass; 0.0 when none ran
    audio_end: float = 0.0  # stream time up to which the pass heard audio


class WhisperStream:
    """One session's incremental decoder. `feed` may run on another thread than `step`/`flush`.

    Passes are serialised; the buffer lock is never held during a pass, so feeding never waits
    for Whisper.
    """

    def __init__(
        self,
        engine: WhisperEngine,
        *,
        context: PatientContext | None = None,
        beam_size: int = 1,
        final_beam_size: int | None = None,
        min_new_s: float = 0.5,
        max_utterance_s: float = 25.0,
        window_s: float = 10.0,
        commit_margin_s: float = 4.0,
        prompt_chars: int = 200,
        text_prompt: bool = True,
        preroll_s: float = 0.3,
        tail_pad_s: float = 0.3,
        endpointer: Endpointer | None = None,
    ) -> None:
        self._model = engine._model
        self._hotwords = hotword_prompt(context)
        self.beam_size = beam_size
        self.final_beam_size = final_beam_size or engine.beam_size
        self.min_new = int(min_new_s * SAMPLE_RATE)
        self.max_utterance = int(max_utterance_s * SAMPLE_RATE)
        self.window = int(window_s * SAMPLE_RATE)
        self.commit_margin = commit_margin_s
        self.prompt_chars = prompt_chars
        self.text_prompt = text_prompt
        self.preroll = int(preroll_s * SAMPLE_RATE)
        self.tail_pad = int(tail_pad_s * SAMPLE_RATE)
        self.endpointer = endpointer or Endpointer()
        self.agreement = LocalAgreement()
        self._lock = threading.Lock()
        self._pass_lock = threading.Lock()
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0  # absolute sample index of _buf[0]
        self._total = 0  # samples fed so far
        self._window_start = 0  # next pass starts here (end of the last committed word, or finalised audio)
        self._last_pass_end = 0
        self._speech_from = 0  # latest VAD speech start, minus the pre-roll
        self._awaiting_speech = True  # no utterance open: the next pass starts at the next speech
        self._endpoint: int | None = None  # end of speech waiting for its finalising pass
        self._tail: list[Word] = []  # uncommitted words of the last pass
        self._pending: list[Word] = []  # committed words not yet closed into a final segment
        self._prompt_text = ""  # text of the finals before the window start
        self._closed: list[Segment] = []  # finals inside the current window
        self._next_id = 0

    @property
    def time(self) -> float:
        """Seconds of audio fed so far."""
        return self._total / SAMPLE_RATE

    @property
    def buffered_seconds(self) -> float:
        """Audio held in memory (for backpressure decisions by the caller)."""
        return len(self._buf) / SAMPLE_RATE

    def feed(self, audio: np.ndarray) -> list[VadEvent]:
        """Append 16 kHz mono float32 audio; returns the VAD events it produced."""
        chunk = np.asarray(audio, dtype=np.float32).reshape(-1)
        events = self.endpointer.feed(chunk)
        with self._lock:
            self._buf = np.concatenate([self._buf, chunk])
            self._total += len(chunk)
            for event in events:
                at = int(round(event.time * SAMPLE_RATE))
                if event.kind == "start":
                    self._speech_from = max(0, at - self.preroll)
                else:
                    self._endpoint = at
            if self._awaiting_speech and self._endpoint is None and not self.endpointer.is_speech:
                self._window_start = max(self._window_start, self._total - self.preroll)
            self._trim()
        return events

    def needs_pass(self) -> bool:
        """Whether a pass is worth its cost now: an endpoint to finalise, or ≥ min_new_s of new speech."""
        with self._lock:
            if self._endpoint is not None:
                return True
            if self._awaiting_speech and not self.endpointer.is_speech:
                return False
            return self._total - max(self._last_pass_end, self._start()) >= self.min_new

    def step(self) -> StreamUpdate:
        """Run one pass: finalise the utterance if speech ended, else update the partial and commit agreed words."""
        return self._pass(final=False)

    def end_of_utterance(self) -> StreamUpdate:
        """Finalise everything heard so far (a caller-decided endpoint, e.g. the user pressed stop)."""
        return self._pass(final=True)

    def flush(self) -> StreamUpdate:
        """End of stream: the last pass; afterwards nothing is pending."""
        return self._pass(final=True)

    def _start(self) -> int:
        if self._awaiting_speech:
            return max(self._window_start, min(self._speech_from, self._total - self.preroll))
        return self._window_start

    def _pass(self, *, final: bool) -> StreamUpdate:
        with self._pass_lock:
            with self._lock:
                endpoint, self._endpoint = self._endpoint, None
                finishing = final or endpoint is not None
                start = self._start()
                end = self._total if final or endpoint is None else min(self._total, endpoint + self.tail_pad)
                idle = self._awaiting_speech and endpoint is None and not self.endpointer.is_speech
                if end <= start or (idle and not self._tail and not self._pending):
                    return self._update([], 0.0, end)
                self._awaiting_speech, self._window_start = False, start
                audio = self._buf[start - self._buf_start:end - self._buf_start].copy()
                prompt = self._prompt_text[-self.prompt_chars:].strip() if self.text_prompt else ""
                forced = not finishing and end - start > self.max_utterance
            began = time.perf_counter()
            words = self._transcribe(audio, start, prompt, self.final_beam_size if finishing else self.beam_size)
            elapsed = time.perf_counter() - began
            with self._lock:
                self._last_pass_end = end
                if finishing:
                    result = self.agreement.finish(words)
                elif forced:
                    result = self.agreement.commit_until(words, (end - SAMPLE_RATE) / SAMPLE_RATE)
                else:
                    result = self.agreement.update(words, end / SAMPLE_RATE - self.commit_margin)
                self._pending.extend(result.committed)
                self._tail = result.tail
                finals = self._close_segments(everything=finishing)
                self._closed.extend(finals)
                if finishing:
                    self._move_window(end)
                    self._awaiting_speech = True
                elif self._closed and end - start > self.window:
                    self._move_window(int(round(self._closed[-1].end * SAMPLE_RATE)))
                self._trim()
                return self._update(finals, elapsed, end)

    def _transcribe(self, audio: np.ndarray, start: int, prompt: str, beam_size: int) -> list[Word]:
        """One Whisper pass; word times made absolute and kept inside the audio passed."""
        offset, limit = start / SAMPLE_RATE, (start + len(audio)) / SAMPLE_RATE
        segments, _info = self._model.transcribe(
            audio,
            language="en",
            beam_size=beam_size,
            temperature=0.0,  # no fallback re-decoding: bounded pass time, deterministic partials
            word_timestamps=True,
            vad_filter=False,
            condition_on_previous_text=False,
            without_timestamps=False,
            initial_prompt=prompt or None,
            hotwords=self._hotwords,
            max_new_tokens=min(200, int(10 + 12 * len(audio) / SAMPLE_RATE)),  # a looping decoder stops early
        )
        words: list[Word] = []
        for segment in segments:
            for w in segment.words or []:
                s = min(max(offset + float(w.start), offset), limit)
                words.append(Word(w.word, round(s, 3), round(min(max(offset + float(w.end), s), limit), 3),
                                  round(float(w.probability), 4)))
        return _without_loops(words)

    def _move_window(self, to: int) -> None:
        """Start later passes at `to` (a sentence or utterance end); the finals before it become the prompt."""
        self._window_start = max(self._window_start, to)
        self._prompt_text = " ".join([self._prompt_text] + [s.text for s in self._closed])[-4 * self.prompt_chars:]
        self._closed = []

    def _close_segments(self, *, everything: bool) -> list[Segment]:
        """Sentence-sized finals from committed words; an unfinished sentence waits unless `everything`."""
        if not self._pending:
            return []
        segments = segments_from_words(self._pending, first_id=self._next_id)
        last = segments[-1]
        if not everything and not last.text.endswith(_SENTENCE_END):
            segments.pop()
            self._pending = self._pending[len(self._pending) - len(last.words):]
        else:
            self._pending = []
        self._next_id += len(segments)
        return segments

    def _update(self, finals: list[Segment], elapsed: float, end: int) -> StreamUpdate:
        shown = self._pending + self._tail
        text = "".join(w.word for w in shown).strip()
        return StreamUpdate(finals, text, shown[0].start if shown else None, shown[-1].end if shown else None,
                            round(elapsed, 3), end / SAMPLE_RATE)

    def _trim(self) -> None:
        """Drop audio no pass will need again (before the next pass's start)."""
        drop = min(self._start(), self._total) - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start += drop


def _without_loops(words: list[Word], limit: int = 3) -> list[Word]:
    """Cut a hypothesis where one word repeats `limit` times in a row: Whisper looping, not speech."""
    run = 1
    for i in range(1, len(words)):
        run = run + 1 if normalize_word(words[i].word) == normalize_word(words[i - 1].word) else 1
        if run >= limit:
            return words[: i - run + 2]
    return words
