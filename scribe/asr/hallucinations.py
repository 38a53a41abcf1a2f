"""Two ways Whisper writes what was not said, told from a chunk's words alone: a loop and a prompt echo.

Loop: the decoder locks onto a phrase ("weak urinary stream, and weak urinary stream, ...")
until its token budget runs out. Echo: primed with the records' vocabulary, Whisper base on
unclear audio writes the prompt instead of the speech ("Seasonal allergic rhinitis,
fluticasone, loratadine, montelukast" for "Seasonal allergies. Cetirizine 10 milligrams
daily..."). A chunk that does either is decoded again (see `scribe.asr.whisper`); what still
loops is cut where the loop starts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MAX_PHRASE = 8  # longest repeated phrase looked for, in words
ECHO_TERMS = 3  # distinct prompt terms back to back that mark an echo


def _norm(word: str) -> str:
    return re.sub(r"[^a-z0-9]", "", word.lower())


def _copies_needed(length: int) -> int:
    """Copies in a row that make a loop: "no, no, no" is speech, four copies of a word or three of a phrase are not."""
    return 4 if length == 1 else 3


def loop_start(words: Sequence[str], *, after: int = 0) -> int | None:
    """Index just past the first copy of the earliest looping phrase whose copies reach past `after`, or None.

    Keeping the words before that index keeps what was said once and drops the copies and all
    after them: a decoder that looped is not trusted for the rest of its output. `after` lets a
    caller prepend words it already trusts as context: a loop wholly inside them is not
    reported, one that continues from them into the new words is (and cuts all new words).
    """
    norm = [_norm(w) for w in words]
    cuts = []
    for length in range(1, MAX_PHRASE + 1):
        run = 0  # how many words in a row, up to i, equal the word `length` before them
        for i in range(length, len(norm)):
            run = run + 1 if norm[i] and norm[i] == norm[i - length] else 0
            if run >= (_copies_needed(length) - 1) * length and i >= after:
                cuts.append(max(i - run + 1, after))  # i - run + 1: the end of the first copy
                break
    return min(cuts) if cuts else None


def echoes_prompt(words: Sequence[str], terms: Sequence[str]) -> bool:
    """Whether `ECHO_TERMS` distinct prompt terms follow one another with only punctuation between them.

    Dictated drug names come with a dose, a frequency or at least an "and"; the prompt is a bare
    comma-separated list, and that is what an echo looks like.
    """
    phrases = sorted({tuple(n for n in map(_norm, t.split()) if n) for t in terms} - {()}, key=len, reverse=True)
    norm = [n for n in map(_norm, words) if n]
    run: set[tuple[str, ...]] = set()
    i = 0
    while i < len(norm):
        match = next((p for p in phrases if tuple(norm[i : i + len(p)]) == p), None)
        if match is None:
            run.clear()
            i += 1
            continue
        run.add(match)
        if len(run) >= ECHO_TERMS:
            return True
        i += len(match)
    return False


def failure(words: Sequence[str], terms: Sequence[str], *, out_of_tokens: bool) -> str | None:
    """Why a decoded chunk cannot be trusted ("token budget", "loop", "prompt echo"), or None."""
    if out_of_tokens:
        return "token budget"
    if loop_start(words) is not None:
        return "loop"
    if terms and echoes_prompt(words, terms):
        return "prompt echo"
    return None
