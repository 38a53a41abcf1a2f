"""Incremental Whisper decoding for one streaming session: partials while speaking, finals by agreement.

Passes are the scarce resource, so each one counts: a pass over the window (the audio since
the last final) gives a partial; words every pass of the last `agree_span_s` seconds of audio
agree on are committed (two adjacent passes agree on far more words that later audio
changes: 21.5 % WER against 17.1 % for a 1.5 s span, 16.8 % offline, on 43 held-out synthetic
clips), and committed words that close a sentence become a final at once. The window then
starts at that final (its text becomes the prompt), which keeps passes short and cheap. A
pass costs what its words cost to generate, so over a window longer than `full_window_s` a
partial pass keeps the words it showed before the last `tail_window_s` and decodes only the
audio after them: the partial stays prompt, and since it re-decoded nothing before, it is no
evidence for the agreement. At the end of an utterance (VAD) or of the input, one last pass
over the whole window finalises the rest, continued if Whisper stopped early. An utterance
longer than `max_utterance_s` is finalised up to a word boundary a second before the buffer
end, never mid-word. A slow machine only makes passes rarer and windows longer; loops, which
long windows invite, are cut (see `window_decoder`), and a pass that comes so late that its
window outgrows what Whisper hears at once (30 s; the rest would be silently dropped) decodes
the first `max_utterance_s` + 2 s and commits up to a second before its end, so results come
later, never different in kind.

Under load (`congested`: passes queue for a worker) a partial pass comes at most every
`loaded_min_new_s` of new speech, decodes greedily only the last `loaded_tail_window_s` after
the words shown, and commits nothing: finals then come only from the full-beam pass over the
whole utterance at its end, as offline decodes a VAD chunk. Load delays finals and thins
partials but never makes finals worse (agreement between passes far apart, over windows cut
where the queue happened to leave them, is where concurrent streams lost accuracy).
"""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np

from scribe.asr.hallucinations import MAX_PHRASE
from scribe.asr.segmenting import segments_from_words
from scribe.asr.whisper import WhisperEngine, hotword_prompt, respell
from scribe.audio import SAMPLE_RATE
from scribe.records import PatientContext
from scribe.streaming.agreement import Agreement, LocalAgreement, words_after
from scribe.streaming.recogniser import StreamingRecogniser, StreamUpdate
from scribe.streaming.vad import Endpointer, VadEvent
from scribe.streaming.window_decoder import WindowDecoder
from scribe.transcript import Segment, Word

_SENTENCE_END = (".", "?", "!")


class WhisperStream(StreamingRecogniser):
    """One session's incremental decoder. `feed` may run on another thread than `step`/`flush`.

    Partial passes are serialised; a finishing pass may run beside one (see `_pass`). The buffer
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
        commit_margin_s: float = 0.3,
        agree_span_s: float = 1.5,
        prompt_chars: int = 200,
        text_prompt: bool = True,
        preroll_s: float = 0.3,
        tail_pad_s: float = 0.3,
        completion_gap_s: float = 1.0,
        full_window_s: float = 8.0,
        tail_window_s: float = 5.0,
        loaded_tail_window_s: float = 2.0,
        max_delay_s: float = float("inf"),
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
        self.commit_margin = commit_margin_s
        self.prompt_chars = prompt_chars
        self.text_prompt = text_prompt
        self.preroll = int(preroll_s * SAMPLE_RATE)
        self.tail_pad = int(tail_pad_s * SAMPLE_RATE)
        self.completion_gap_s = completion_gap_s
        self.full_window = int(full_window_s * SAMPLE_RATE)
        self.tail_window = int(tail_window_s * SAMPLE_RATE)
        self.loaded_tail_window = int(loaded_tail_window_s * SAMPLE_RATE)
        self.max_delay_s = max_delay_s
        self.agreement = LocalAgreement(agree_span_s)
        self._partial_lock = threading.Lock()
        self._generation = 0  # bumped by each finishing pass as it starts
        self._finishing_in_flight = False
        self._window_start = 0  # next pass starts here (end of the last final)
        self._last_pass_end = 0
        self._speech_from = 0  # latest VAD speech start, minus the pre-roll
        self._speech_end = 0  # latest VAD speech end
        self._awaiting_speech = True  # no utterance open: the next pass starts at the next speech
        self._tail: list[Word] = []  # uncommitted words of the last pass
        self._pending: list[Word] = []  # committed words not yet closed into a final segment
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
        return self._pass(final=False)

    def flush(self) -> StreamUpdate:
        """End of stream: the last pass; afterwards nothing is pending."""
        self.end_input()
        return self._pass(final=True)

    def _start(self) -> int:
        if self._awaiting_speech:
            return max(self._window_start, min(self._speech_from, self._total - self.preroll))
        return self._window_start

    def _pass(self, *, final: bool) -> StreamUpdate:
        """Partial passes run one at a time; a finishing pass may start while a partial runs and makes it stale."""
        if final or self.finalising():
            return self._run_pass(final=final)
        with self._partial_lock:
            return self._run_pass(final=False)

    def _run_pass(self, *, final: bool) -> StreamUpdate:
        with self._lock:
            if self._finished or self._finishing_in_flight:
                return StreamUpdate(audio_end=self._total / SAMPLE_RATE)  # the running finishing pass covers this
            endpoint, self._endpoint = self._endpoint, None
            last = self._input_ended
            finishing = final or last or endpoint is not None
            start = self._start()
            end = self._total if final or last or endpoint is None else min(self._total, endpoint + self.tail_pad)
            if end - start > self.max_window:  # a late pass (load): Whisper hears 30 s at once, so the first part now
                end, finishing, last = start + self.max_window, False, False
                self._endpoint = endpoint  # still owed: a later pass finalises the rest
            idle = self._awaiting_speech and endpoint is None and not self.endpointer.is_speech
            if end <= start or (idle and not self._tail and not self._pending):
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
            context = tuple(w.word for w in (kept or self.agreement.committed)[-2 * MAX_PHRASE :])
            since = kept[-1].end if kept else self.agreement.committed_end
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
            if kept:  # shown, but no evidence for the agreement: the kept words were not decoded again
                self._last_pass_end, self._tail = end, words[len(self._pending) :]
                update = self._update([], elapsed, end)
            else:
                update = self._conclude(words, start, end, finishing, last, elapsed, loaded=loaded)
        if finishing:
            update.final_pass_audio_s = round(len(audio) / SAMPLE_RATE, 3)
        elif loaded:
            update.loaded_partial_audio_s = round(new_audio / SAMPLE_RATE, 3)
        return update

    def _kept_words(self, start: int, end: int, loaded: bool = False) -> list[Word]:
        """Shown words a partial pass over a long window keeps, so it decodes only the last `tail_window_s`.

        A pass costs about what its words cost to generate (8 ms a token here), so over a long
        window it would make the partial late. Windows up to `full_window_s` are decoded whole
        and feed the agreement; a whole pass must also force words final past `max_utterance_s`
        or `max_delay_s`. Under load (`loaded`) a partial feeds nothing, so it keeps every shown
        word but those of the last `loaded_tail_window_s`.
        """
        full, tail = (
            (self.loaded_tail_window, self.loaded_tail_window) if loaded else (self.full_window, self.tail_window)
        )
        if end - start <= full or end - start > self.max_utterance:
            return []
        if self._tail and self._tail[0].end < end / SAMPLE_RATE - self.max_delay_s:
            return []
        limit = (end - tail) / SAMPLE_RATE
        kept = list(itertools.takewhile(lambda w: w.end <= limit, self._pending + self._tail))
        return kept if len(kept) > len(self._pending) else []  # all new audio after committed words: decode whole

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
        *,
        loaded: bool = False,
    ) -> StreamUpdate:
        """Fold one hypothesis of [start, end) into the committed words and close what became final."""
        self._last_pass_end = end
        forced = not finishing and end - start > self.max_utterance  # the buffer must shrink
        if finishing:
            result = self.agreement.finish(words)
        elif loaded:  # shown only: the utterance's last pass decides
            result = Agreement([], self.agreement.fresh(words))
        else:
            overdue = end / SAMPLE_RATE - self.max_delay_s
            if forced:  # words a second before the window's end become final, agreed or not
                overdue = max(overdue, (end - SAMPLE_RATE) / SAMPLE_RATE)
            result = self.agreement.update(
                words, end / SAMPLE_RATE - self.commit_margin, end / SAMPLE_RATE, force_until=overdue
            )
        self._pending.extend(result.committed)
        self._tail = result.tail
        # forced: closed mid-sentence too, else a slow sentence (under 40 words) kept the window, and every later
        # pass decoded the same audio again while the backlog grew
        finals = self._close_segments(everything=finishing or forced)
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

    def _close_segments(self, *, everything: bool) -> list[Segment]:
        """Sentence-sized finals from committed words; an unfinished sentence waits unless `everything`.

        Words are respelled as the offline engine does (records' terms, units, frequencies), once, as
        a sentence becomes final.
        """
        if not self._pending:
            return []
        last = segments_from_words(self._pending)[-1]
        if not everything and not last.text.endswith(_SENTENCE_END):
            closing, self._pending = self._pending[: -len(last.words)], self._pending[-len(last.words) :]
        else:
            closing, self._pending = self._pending, []
        if not closing:
            return []
        segments = segments_from_words(respell(closing, self._terms), first_id=self._next_id)
        self._next_id += len(segments)
        return segments

    def _update(self, finals: list[Segment], elapsed: float, end: int) -> StreamUpdate:
        shown = self._pending + self._tail
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
