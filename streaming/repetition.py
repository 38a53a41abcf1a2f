"""Whisper repetition loops: a decoder stuck on one phrase ("weak urinary stream and weak urinary stream and …").

Greedy and beam decoding at temperature 0 sometimes lock into repeating a phrase until the
token budget ends, more often on short or trimmed encoder windows, and a window that starts
after committed words can carry their loop on; so every hypothesis is cut at the loop
(`scribe.asr.hallucinations.loop_start`) before it is shown or made final, checked as a
continuation of the words already committed. Pure: words in, words out.
"""

from __future__ import annotations

from collections.abc import Sequence

from scribe.asr.hallucinations import loop_start
from scribe.transcript import Word


def without_loops(
    words: list[Word], context: Sequence[str] = (), since: float = float("-inf")
) -> tuple[list[Word], bool]:
    """`words` cut before a repetition loop; whether one was cut.

    Words whose midpoint lies before `since` re-decode audio the `context` words already cover
    (a window overlapping committed words) and are not checked again; the rest are checked as
    a continuation of `context`, so a loop carried on from committed text is cut too.
    """
    first_new = next((i for i, w in enumerate(words) if (w.start + w.end) / 2 > since), len(words))
    cut = loop_start([*context, *(w.word for w in words[first_new:])], after=len(context))
    if cut is None:
        return words, False
    return words[: first_new + cut - len(context)], True
