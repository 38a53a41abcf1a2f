"""Turn MedASR's spoken-formatting tokens into punctuation, line breaks and section headings.

MedASR writes what a dictating clinician says about layout as markup: `{period}`, `{comma}`,
`{new paragraph}`, `[FINDINGS]`, and sometimes malformed variants (`{next} line}`, `{period`,
`period}`, a command glued to a word or split by a stray space). This module parses a timed
word stream into segments whose text holds no braces or brackets, whose words keep their times,
and which break at paragraphs, headings and (when long) sentence ends. Pure Python: the
streaming layer may use it for partial hypotheses without importing torch.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from scribe.transcript import Segment, Word, join_segment_texts

# Spoken command -> (action, character). Keys are the command with spaces removed, lower case.
_COMMANDS: dict[str, tuple[str, str]] = {}
_PHRASES: dict[str, tuple[str, str]] = {
    "period": ("punct", "."),
    "full stop": ("punct", "."),
    "comma": ("punct", ","),
    "colon": ("punct", ":"),
    "semi colon": ("punct", ";"),
    "question mark": ("punct", "?"),
    "exclamation point": ("punct", "!"),
    "exclamation mark": ("punct", "!"),
    "close paren": ("punct", ")"),
    "close parenthesis": ("punct", ")"),
    "close bracket": ("punct", ")"),
    "right paren": ("punct", ")"),
    "close quote": ("punct", '"'),
    "end quote": ("punct", '"'),
    "unquote": ("punct", '"'),
    "open paren": ("open", "("),
    "open parenthesis": ("open", "("),
    "open bracket": ("open", "("),
    "left paren": ("open", "("),
    "open quote": ("open", '"'),
    "begin quote": ("open", '"'),
    "hyphen": ("join", "-"),
    "dash": ("join", "-"),
    "slash": ("join", "/"),
    "forward slash": ("join", "/"),
    "new line": ("line", ""),
    "next line": ("line", ""),
    "new paragraph": ("para", ""),
    "next paragraph": ("para", ""),
}
for _phrase, _action in _PHRASES.items():
    _COMMANDS[_phrase.replace(" ", "")] = _action


def _phrase_pattern(phrase: str) -> str:
    # Letters may be split by one stray space (a spurious word boundary inside the command);
    # words may be separated by spaces or stray braces (`{next} line}`), or run together.
    words = ["\\s?".join(re.escape(ch) for ch in word) for word in phrase.split()]
    return r"(?<![A-Za-z])" + r"[\s{}]*".join(words) + r"(?![A-Za-z])"


_CMD = "(?i:" + "|".join(_phrase_pattern(p) for p in sorted(_PHRASES, key=len, reverse=True)) + ")"
_CAPS = r"[A-Z][A-Z0-9/&-]*(?![a-z])"
_CAPS_RUN = rf"{_CAPS}(?:[ \t]+{_CAPS})*"
_MARKUP = re.compile(
    rf"\{{\s*(?P<cmd_open>{_CMD})\s*\}}?"  # {period}, {period (no closing brace), {next} line}
    rf"|(?P<cmd_close>{_CMD})\s*\}}"  # period} (no opening brace)
    r"|\[\s*(?P<heading>[^\[\]{}]{0,48}?)\s*\]"  # [FINDINGS], [EXAM TYPE]; longer is not a heading
    r"|(?P<unknown>\{[^{}\[\]]*\})"  # any other {command}: dropped
    r"|(?P<special></?s>|<pad>|<unk>|<extra_id_\d+>)"  # tokenizer specials leaking into text
    rf"|\[\s*(?P<heading_open>{_CAPS_RUN})"  # [FINDINGS (no closing bracket)
    rf"|(?<![A-Za-z])(?P<heading_close>{_CAPS_RUN})\s*\]"  # FINDINGS] (no opening bracket)
    r"|(?P<stray>[{}\[\]])"
)
_LEADING_PUNCT = re.compile(r"^([.,:;?!)]+)(.*)$", re.S)
_SENTENCE_END = ".?!"
_SOFT_PUNCT = ",;:"


@dataclass
class _Event:
    kind: str  # text | punct | open | join | line | para | heading
    text: str
    start: float
    end: float
    probability: float | None = None


def format_dictation(
    words: Sequence[Word], *, max_segment_s: float = 30.0, max_segment_words: int = 40
) -> tuple[list[Segment], str]:
    """Formatted segments (ids 0..n-1, times from their words) and the transcript's full text.

    Segments break at paragraphs and headings, and at a sentence end once they pass
    `max_segment_s` or `max_segment_words`; a run without any sentence end is cut at twice
    those limits so evidence never points at minutes of audio.
    """
    builder = _Builder(max_segment_s, max_segment_words)
    for event in _parse(words):
        builder.feed(event)
    segments = builder.finish()
    return segments, join_segment_texts(segments)


def format_dictation_text(text: str) -> str:
    """Format an untimed hypothesis (e.g. a streaming partial) the same way."""
    words = [Word(w, float(i), float(i) + 1.0) for i, w in enumerate(text.split())]
    return format_dictation(words, max_segment_s=float("inf"), max_segment_words=1 << 30)[1]


def _parse(words: Sequence[Word]) -> list[_Event]:
    """Split the raw word stream into text and markup events, each timed from its source words."""
    starts: list[int] = []
    parts: list[str] = []
    pos = 0
    for w in words:
        starts.append(pos)
        parts.append(w.word)
        pos += len(w.word) + 1
    joined = " ".join(parts)

    def span_times(a: int, b: int) -> tuple[float, float, float | None]:
        """Times of chars [a, b): a word cut in pieces shares its time out by character position."""
        first = max(bisect_right(starts, a) - 1, 0)
        last = max(bisect_right(starts, max(b - 1, a)) - 1, first)
        t0 = _char_time(words[first], a - starts[first])
        t1 = _char_time(words[last], b - starts[last])
        probs = [w.probability for w in words[first : last + 1] if w.probability is not None]
        return t0, max(t1, t0), (sum(probs) / len(probs) if probs else None)

    events: list[_Event] = []

    def add_text(a: int, b: int) -> None:
        for m in re.finditer(r"\S+", joined[a:b]):
            s, e = a + m.start(), a + m.end()
            token = m.group()
            lead = _LEADING_PUNCT.match(token)
            if lead:
                for ch in lead.group(1):
                    events.append(_Event("punct", ch, *span_times(s, s + 1)))
                    s += 1
                token = lead.group(2)
            if token == "(":
                events.append(_Event("open", "(", *span_times(s, e)))
            elif token:
                events.append(_Event("text", token, *span_times(s, e)))

    cursor = 0
    for m in _MARKUP.finditer(joined):
        add_text(cursor, m.start())
        cursor = m.end()
        t0, t1, prob = span_times(m.start(), m.end())
        command = m.group("cmd_open") or m.group("cmd_close")
        if command is not None:
            kind, char = _COMMANDS[re.sub(r"[\s{}]", "", command).lower()]
            events.append(_Event(kind, char, t0, t1, prob))
            continue
        heading = m.group("heading") or m.group("heading_open") or m.group("heading_close")
        heading = re.sub(r"[^A-Za-z0-9/&' -]+", " ", heading or "").strip()
        if heading:
            events.append(_Event("heading", " ".join(heading.upper().split()), t0, t1, prob))
        # unknown commands, specials, stray braces and empty brackets leave nothing behind
    add_text(cursor, len(joined))
    return events


def _char_time(word: Word, offset: int) -> float:
    n = max(len(word.word), 1)
    offset = min(max(offset, 0), n)
    return word.start + (word.end - word.start) * offset / n


def _capitalise(text: str) -> str:
    for i, ch in enumerate(text):
        if ch.isalpha():
            return text[:i] + ch.upper() + text[i + 1 :] if ch.islower() else text
        if ch.isdigit():
            return text
    return text


class _Builder:
    """Applies events in order; holds the segment being built."""

    def __init__(self, max_s: float, max_words: int) -> None:
        self.max_s = max_s
        self.max_words = max_words
        self.segments: list[Segment] = []
        self.words: list[Word] = []
        self.text = ""
        self.sep = " "  # what goes before the next word: " ", "\n" or "\n\n"
        self.prefix = ""  # pending opening characters, e.g. "("
        self.glue = False  # next word attaches to the previous one (hyphen, slash)
        self.capitalise = True
        self.after_heading = False

    def feed(self, ev: _Event) -> None:
        getattr(self, f"_on_{ev.kind}")(ev)

    def finish(self) -> list[Segment]:
        self._close()
        return self.segments

    def _too_long(self, factor: float = 1.0) -> bool:
        if not self.words:
            return False
        return (
            len(self.words) >= self.max_words * factor
            or self.words[-1].end - self.words[0].start >= self.max_s * factor
        )

    def _close(self, sep: str = " ") -> None:
        if self.words:
            self.segments.append(
                Segment(len(self.segments), self.words[0].start, self.words[-1].end, self.text, words=self.words)
            )
            self.words, self.text = [], ""
            self.sep = sep
        elif "\n" in sep and self.segments:
            self.sep = sep
        self.glue = False

    def _on_text(self, ev: _Event) -> None:
        if self._too_long(2.0) and not self.glue:
            self._close()
        word = self.prefix + (_capitalise(ev.text) if self.capitalise else ev.text)
        self.prefix = ""
        self.capitalise = False
        self.after_heading = False
        if self.glue and self.words:
            last = self.words[-1]
            last.word += word
            last.end = max(last.end, ev.end)
            self.text += word
        else:
            if not self.words and self.segments and "\n" in self.sep:
                prev = self.segments[-1]
                prev.text = prev.text.rstrip(" \n") + self.sep
            sep = "" if not self.words else self.sep
            self.words.append(Word(word, ev.start, ev.end, ev.probability))
            self.text += sep + word
        self.sep = " "
        self.glue = False
        if word[-1] in _SENTENCE_END:
            self._end_sentence()

    def _on_punct(self, ev: _Event) -> None:
        if not self.words or self.after_heading:
            return  # nothing to attach to; a heading already ends with its colon
        last = self.words[-1]
        tail = last.word[-1]
        if ev.text in _SENTENCE_END + _SOFT_PUNCT and tail in _SENTENCE_END + _SOFT_PUNCT:
            if tail == ev.text or tail in _SENTENCE_END:
                return
            last.word, self.text = last.word[:-1], self.text[:-1]  # "x, ." -> "x."
        last.word += ev.text
        last.end = max(last.end, ev.end)
        self.text += ev.text
        self.glue = False
        if ev.text in _SENTENCE_END:
            self._end_sentence()

    def _end_sentence(self) -> None:
        self.capitalise = True
        if self._too_long():
            self._close()

    def _on_open(self, ev: _Event) -> None:
        self.prefix += ev.text

    def _on_join(self, ev: _Event) -> None:
        if self.words and not self.after_heading:
            self.words[-1].word += ev.text
            self.text += ev.text
            self.glue = True

    def _on_line(self, ev: _Event) -> None:
        if self.words and not self.after_heading:
            self.sep = "\n\n" if self.sep.startswith("\n") else "\n"
            self.glue = False
        self.capitalise = True

    def _on_para(self, ev: _Event) -> None:
        if self.after_heading:
            return  # "[FINDINGS] {new paragraph}": the heading already starts one
        self._close("\n\n")
        self.capitalise = True

    def _on_heading(self, ev: _Event) -> None:
        self._close("\n\n")
        if self.segments and not self.words:
            prev = self.segments[-1]
            prev.text = prev.text.rstrip(" \n") + "\n\n"
        self.words = [Word(f"{ev.text}:", ev.start, ev.end, ev.probability)]
        self.text = f"{ev.text}:"
        self.sep = "\n"
        self.prefix = ""
        self.capitalise = True
        self.after_heading = True
