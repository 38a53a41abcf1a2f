"""Incremental Whisper decoding for one streaming session: partials while speaking, finals as offline decodes.

A partial pass over the window (the audio since the last final) about every `min_new_s` of new
speech gives the partial; it is shown, never made final. At the end of an utterance (VAD) or of
the input one last pass decodes the whole utterance with the final beam, the text before it as
the prompt, and its words become the finals, continued if Whisper stopped early: offline
transcription decodes a voice-detected chunk the same way, so a stream's finals read as the
offline transcript of the same audio does (figures in docs/asr.md). Making
words final earlier, when successive partial passes agree on them, came out worse: those
passes hear only part of the sentence, and a committed word fixes the text every later pass
is prompted with. An utterance longer than `max_utterance_s` is made final up to the widest
pause in its second half (where offline's voice detection would likely have cut it), else up
to a second before the buffer end, never mid-word.

A pass costs what its audio costs to encode and align, so over a window longer than
`full_window_s` a partial keeps the words it showed before the last `tail_window_s` and
decodes only the audio after them. A slow machine only makes passes rarer; loops, which long
windows invite, are cut (see `window_decoder`), and a pass so late that its window outgrows
what Whisper hears at once (30 s; the rest would be silently dropped) decodes the first
`max_utterance_s` + 2 s, so results come later, never different in kind. Under load
(`congested`: passes queue for a worker) a partial comes at most every `loaded_min_new_s` of
new speech and decodes greedily only the last `loaded_tail_window_s` after the words shown:
load thins partials and delays finals, never makes finals worse.
"""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np

from scribe.asr.hallucinations import MAX_PHRASE
from scribe.asr.segmenting import segments_from_words, widest_pause
from scribe.asr.whisper import WhisperEngine, hotword_prompt, respell
from scribe.audio import SAMPLE_RATE
from scribe.records import PatientContext
from scribe.streaming.committed import Commit, CommittedWords, words_after
from scribe.streaming.recogniser import StreamingRecogniser, StreamUpdate
from scribe.streaming.vad import Endpointer, VadEvent
from scribe.streaming.window_decoder import WindowDecoder
from scribe.transcript import Segment, Word


class WhisperStream(StreamingRecogniser):
    """One session's incremental decoder. `feed` may run on another thread than `step`/`flush`.

    Partial passes are serialised; a finishing pass may run beside one (see `step`). The buffer
    lock is never held during a pass, so feeding never waits for Whisper.
    """

    def __init__(
        self,
        engine: WhisperEngine,
        *,
        context: PatientContext | None = None,
        beam_size: int = 5,
        final_beam_size: int | None = None,
        min_new_s: float = 0.4,
        loaded_min_new_s: float = 3.0,
        max_utterance_s: float = 25.0,
        prompt_chars: int = 200,
        text_prompt: bool = True,
        preroll_s: float = 0.3,
        tail_pad_s: float = 0.3,
        completion_gap_s: float = 1.0,
        full_window_s: float = 8.0,
        tail_window_s: float = 5.0,
        loaded_tail_window_s: float = 2.0,
        endpointer: Endpointer | None = None,
        decoder: WindowDecoder | None = None,
    ) -> None:
        super().__init__(endpointer)
        self._terms = context.hotwords() if context is not None else []
        self.decoder = decoder or WindowDecoder(engine, hotwords=hotword_prompt(context), terms=tuple(self._terms))
        self.beam_size = beam_size
        self.final_beam_size = final_beam_size or engine.beam_size
        self.min_new = int(min_new_s * SAMPLE_RATE)
        self.loaded_min_new = int(loaded_min_new_s * SAMPLE_RATE)
        self.max_utterance = int(max_utterance_s * SAMPLE_RATE)
        self.max_window = self.max_utterance + 2 * SAMPLE_RATE  # under Whisper's 30 s, which cuts longer audio
        self.prompt_chars = prompt_chars
        self.text_prompt = text_prompt
        self.preroll = int(preroll_s * SAMPLE_RATE)
        self.tail_pad = int(tail_pad_s * SAMPLE_RATE)
        self.completion_gap_s = completion_gap_s
        self.full_window = int(full_window_s * SAMPLE_RATE)
        self.tail_window = int(tail_window_s * SAMPLE_RATE)
        self.loaded_tail_window = int(loaded_tail_window_s * SAMPLE_RATE)
        self.committed = CommittedWords()
        self._partial_lock = threading.Lock()
        self._generation = 0  # bumped by each finishing pass as it starts
        self._finishing_in_flight = False
        self._window_start = 0  # next pass starts here (end of the last final)
        self._last_pass_end = 0
        self._speech_from = 0  # latest VAD speech start, minus the pre-roll
        self._speech_end = 0  # latest VAD speech end
        self._awaiting_speech = True  # no utterance open: the next pass starts at the next speech
        self._tail: list[Word] = []  # the words shown of the utterance, not final yet
        self._prompt_text = ""  # text of the finals before the window start
        self._next_id = 0

    def _heard(self, events: list[VadEvent]) -> None:
        for event in events:
            at = int(round(event.time * SAMPLE_RATE))
            if event.kind == "start":
                self._speech_from = max(0, at - self.preroll)
            else:
                self._endpoint = self._speech_end = at
        if self._awaiting_speech and self._endpoint is None and not self.endpointer.is_speech:
            self._window_start = max(self._window_start, self._total - self.preroll)

    def _worth_a_pass(self) -> bool:
        """≥ min_new_s of new speech (loaded_min_new_s under load)."""
        if self._awaiting_speech and not self.endpointer.is_speech:
            return False
        least = self.loaded_min_new if self.congested() else self.min_new
        return self._total - max(self._last_pass_end, self._start()) >= least

    def step(self) -> StreamUpdate:
        """Run the pass that is due: the last after `end_input`, a finalising one after an endpoint, else a partial."""
        if self.finalising():  # a finishing pass may start while a partial runs (and makes it stale)
            return self._run_pass()
        with self._partial_lock:
            return self._run_pass()

    def _start(self) -> int:
        if self._awaiting_speech:
            return max(self._window_start, min(self._speech_from, self._total - self.preroll))
        return self._window_start

    def _run_pass(self) -> StreamUpdate:
        with self._lock:
            if self._finished or self._finishing_in_flight:
                return StreamUpdate(audio_end=self._total / SAMPLE_RATE)  # the running finishing pass covers this
            endpoint, self._endpoint = self._endpoint, None
            last = self._input_ended
            finishing = last or endpoint is not None
            start = self._start()
            end = self._total if last or endpoint is None else min(self._total, endpoint + self.tail_pad)
            if end - start > self.max_window:  # a late pass (load): Whisper hears 30 s at once, so the first part now
                end, finishing, last = start + self.max_window, False, False
                self._endpoint = endpoint  # still owed: a later pass finalises the rest
            idle = self._awaiting_speech and endpoint is None and not self.endpointer.is_speech
            if end <= start or (idle and not self._tail):
                if not finishing:
                    return self._update([], 0.0, end)
                return self._conclude(list(self._tail), start, max(start, end), True, last, 0.0)  # no new audio
            self._awaiting_speech, self._window_start = False, start
            # a partial under load is greedy and shown only; past max_utterance a whole pass must commit words
            loaded = not finishing and end - start <= self.max_utterance and self.congested()
            new_audio = end - max(self._last_pass_end, start)
            if finishing:
                self._generation += 1  # the partial pass running now, if any, is stale
                self._finishing_in_flight = True
            generation = self._generation
            kept = [] if finishing else self._kept_words(start, end, loaded)
            heard = start
            if kept:  # re-decode only the audio after the kept words, with them as the text before it
                heard = max(start, int(round(kept[-1].end * SAMPLE_RATE)) - self.preroll)
            audio = self._buf[heard - self._buf_start : end - self._buf_start].copy()
            before = " ".join([self._prompt_text, *(w.word.strip() for w in kept)])
            prompt = before[-self.prompt_chars :].strip() if self.text_prompt else ""
            context = tuple(w.word for w in (kept or self.committed.words)[-2 * MAX_PHRASE :])
            since = kept[-1].end if kept else self.committed.end
            speech_until = min(
                end, endpoint if endpoint is not None else end if self.endpointer.is_speech else self._speech_end
            )
        began = time.perf_counter()
        try:
            beam_size = self.final_beam_size if finishing else 1 if loaded else self.beam_size
            words = self.decoder.decode(
                audio,
                heard / SAMPLE_RATE,
                prompt=prompt,
                context=context,
                since=since,
                beam_size=beam_size,
                finishing=finishing,
            )
            if kept:
                words = kept + words_after(words, since)
            if finishing:
                words = self._complete(words, audio, start, speech_until, prompt)
        except BaseException:
            if finishing:
                with self._lock:
                    self._finishing_in_flight = False
            raise
        elapsed = time.perf_counter() - began
        with self._lock:
            if finishing:
                self._finishing_in_flight = False
            elif generation != self._generation:  # a finishing pass started meanwhile: this partial is stale
                return StreamUpdate(pass_seconds=round(elapsed, 3), audio_end=end / SAMPLE_RATE)
            if kept:  # shown only, like every partial
                self._last_pass_end, self._tail = end, words
                update = self._update([], elapsed, end)
            else:
                update = self._conclude(words, start, end, finishing, last, elapsed)
        if finishing:
            update.final_pass_audio_s = round(len(audio) / SAMPLE_RATE, 3)
        elif loaded:
            update.loaded_partial_audio_s = round(new_audio / SAMPLE_RATE, 3)
        return update

    def _kept_words(self, start: int, end: int, loaded: bool = False) -> list[Word]:
        """Shown words a partial pass over a long window keeps, so it decodes only the last `tail_window_s`.

        A pass costs about what its audio costs to encode and align (0.075 s a second of audio
        here, beam or greedy alike), so over a long window it would make the partial late. Windows
        up to `full_window_s` are decoded whole; so is a pass past `max_utterance_s`, which must
        make words final. Under load (`loaded`) a partial keeps every shown word but those of the
        last `loaded_tail_window_s`.
        """
        full, tail = (
            (self.loaded_tail_window, self.loaded_tail_window) if loaded else (self.full_window, self.tail_window)
        )
        if end - start <= full or end - start > self.max_utterance:
            return []
        limit = (end - tail) / SAMPLE_RATE
        return list(itertools.takewhile(lambda w: w.end <= limit, self._tail))

    def _complete(self, words: list[Word], audio: np.ndarray, start: int, speech_until: int, prompt: str) -> list[Word]:
        """Continue a finishing pass whose words stop over `completion_gap_s` before the speech does, once.

        Whisper sometimes ends a window early (or a loop was cut); a final must not drop the rest
        of the utterance, so the audio after the last word is decoded on its own.
        """
        if not words or speech_until / SAMPLE_RATE - words[-1].end < self.completion_gap_s:
            return words
        heard = words[-1].end
        resume = max(start, int(heard * SAMPLE_RATE) - self.preroll)
        said = "".join(w.word for w in words)
        more = self.decoder.decode(
            audio[resume - start :],
            resume / SAMPLE_RATE,
            beam_size=self.final_beam_size,
            prompt=(prompt + said)[-self.prompt_chars :].strip() if self.text_prompt else "",
            context=tuple(w.word for w in words[-2 * MAX_PHRASE :]),
            since=heard,
            finishing=True,
        )
        return words + words_after(more, heard)

    def _conclude(
        self,
        words: list[Word],
        start: int,
        end: int,
        finishing: bool,
        last: bool,
        elapsed: float,
    ) -> StreamUpdate:
        """Fold one pass over [start, end) in: shown only, unless it ends the utterance or its window outgrew it.

        A partial's words never become final: the utterance's last pass decodes it whole, as
        offline transcription decodes a voice-detected chunk, so finals read as offline's do.
        """
        self._last_pass_end = end
        forced = not finishing and end - start > self.max_utterance  # the buffer must shrink
        if finishing:
            result = self.committed.commit(words)
        elif forced:  # final up to the widest pause in the window's second half, else to a second before its end
            cut = widest_pause(self.committed.fresh(words), (start + end) / 2 / SAMPLE_RATE)
            result = self.committed.commit(words, until=cut if cut is not None else (end - SAMPLE_RATE) / SAMPLE_RATE)
        else:
            result = Commit([], self.committed.fresh(words))
        self._tail = result.tail
        finals = self._finals(result.committed)
        if finishing:
            self._move_window(end, finals)
            self._awaiting_speech = True
            self._finished = last
        elif finals:  # the pre-roll before the final's end lets the next pass hear its last word end
            self._move_window(int(round(finals[-1].end * SAMPLE_RATE)) - self.preroll, finals)
        elif forced:  # nothing to make final in a whole window (no words, or a loop cut them): go past it
            self._move_window(end - SAMPLE_RATE, [])
        self._trim()
        return self._update(finals, elapsed, end)

    def _move_window(self, to: int, finals: list[Segment]) -> None:
        """Start later passes at `to` (the end of the last final); the finals' text joins the prompt."""
        self._window_start = max(self._window_start, to)
        self._prompt_text = " ".join([self._prompt_text] + [s.text for s in finals])[-4 * self.prompt_chars :]

    def _finals(self, words: list[Word]) -> list[Segment]:
        """Sentence-sized finals of words just committed, respelled as offline respells (records' terms, doses)."""
        if not words:
            return []
        segments = segments_from_words(respell(words, self._terms), first_id=self._next_id)
        self._next_id += len(segments)
        return segments

    def _update(self, finals: list[Segment], elapsed: float, end: int) -> StreamUpdate:
        shown = self._tail
        text = "".join(w.word for w in shown).strip()
        return StreamUpdate(
            finals,
            text,
            shown[0].start if shown else None,
            shown[-1].end if shown else None,
            round(elapsed, 3),
            end / SAMPLE_RATE,
        )

    def _trim(self) -> None:
        """Drop audio no pass will need again (before the next pass's start)."""
        drop = min(self._start(), self._total) - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start += drop
