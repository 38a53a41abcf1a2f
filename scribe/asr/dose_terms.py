"""Doses and frequencies as a prescriber says them, where Whisper wrote them by ear.

Whisper base writes units in pieces ("5 -milligrams", "milli -grams", "milidrams", "12 .5") and,
right after a dose, hears "twice daily" as "wife daily" or "white daily", "at night" as "at
height", "three times daily" as "free time daily". A note engine then reads no unit and no
frequency, and a reviewer reads nonsense where the dose instruction was. Two guarded rules:

- after a number, one or two words spelled almost like a unit ("milidrams" 84 % alike
  "milligrams") are that unit, "12 .5" is 12.5, and no comma parts a number from its unit;
- in the slot right after a dose (a number and a unit), a run of up to three words that holds a
  word no frequency uses ("wife", "height", "stale") and is spelled or sounds almost like a
  frequency (`MIN_SIMILARITY`, well ahead of the next best) is that frequency. A run already
  made of frequency words is never touched, so a clearly heard "once daily" stays once daily.

Numbers themselves are never changed: a misheard dose stays visible for the chart cross-check.
"""

from __future__ import annotations

import re
from dataclasses import replace
from difflib import SequenceMatcher

from scribe.asr.record_terms import sound_key
from scribe.transcript import Word

MIN_SIMILARITY = 0.75
MIN_MARGIN = 0.05  # a frequency must beat the next best by this much: "wife daily" is twice daily, not once
MAX_RUN = 3

UNITS = ("milligrams", "micrograms", "grams", "milliliters", "units", "puffs", "tablets", "capsules", "drops")
# Frequency as said -> what it means; the margin is to the best phrase of another meaning.
FREQUENCIES = {
    "once daily": "1/d",
    "once a day": "1/d",
    "twice daily": "2/d",
    "twice a day": "2/d",
    "three times daily": "3/d",
    "three times a day": "3/d",
    "four times daily": "4/d",
    "four times a day": "4/d",
    "at night": "night",
    "nightly": "night",
    "at bedtime": "night",
    "every night": "night",
    "every morning": "morning",
    "in the morning": "morning",
    "in the evening": "evening",
    "as needed": "prn",
    "once weekly": "week",
    "every other day": "other day",
}
_FREQUENCY_WORDS = {w for phrase in FREQUENCIES for w in phrase.split()} | {
    "daily",
    "weekly",
    "monthly",
    "hours",
    "every",
    "per",
    "day",
    "and",
    "with",
    "for",
    "then",
    "by",
    "mouth",
    "orally",
    "two",
    "one",
    "four",
    "five",
    "six",
    "eight",
    "twelve",
    "times",
    "x",
    "prn",
    "bid",
    "tid",
    "qid",
}
_NUMBER = re.compile(
    r"^\d+(?:[.,]\d+)?$|^(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    r"fifteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|half)$"
)
_DOSE_WORD = re.compile(r"^\d+(?:\.\d+)?(?:mg|mcg|g|ml|units?)$")
_EDGE = re.compile(r"^(\s*)(.*?)([^\w]*)$", re.S)


def _letters(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


def _bare(word: Word) -> str:
    match = _EDGE.match(word.word)
    return (match.group(2) if match else word.word).lower()


def _alike(spelled: str, target: str) -> float:
    """How alike in letters or, failing that, by ear (0..1), hearing "th" as "f" too ("free times" is three times)."""
    return max(
        SequenceMatcher(None, spelled, target).ratio(),
        SequenceMatcher(None, sound_key(spelled), sound_key(target)).ratio(),
        SequenceMatcher(None, sound_key(spelled), sound_key(target.replace("th", "f"))).ratio(),
    )


def _unit_alike(spelled: str, unit: str) -> float:
    """How alike in letters, a doubled letter counted once ("milidramm" is milligrams as "milidram" is)."""
    return SequenceMatcher(None, re.sub(r"(.)\1+", r"\1", spelled), re.sub(r"(.)\1+", r"\1", unit)).ratio()


def _unit_run(words: list[Word], i: int) -> tuple[int, str] | None:
    """(run length, unit) when words[i:] start with a unit spelled in pieces or almost right."""
    for run in (2, 1):
        chunk = words[i : i + run]
        if len(chunk) < run or (run == 2 and chunk[1].word.startswith(" ")):
            continue  # two pieces of one unit are glued (no space before the second)
        spelled = _letters("".join(w.word for w in chunk))
        if not spelled or any(re.search(r"\d", w.word) for w in chunk):
            continue
        best = max(UNITS, key=lambda unit: _unit_alike(spelled, unit))
        written = "".join(w.word for w in chunk).strip(" ,;:.?!").lower()
        if written != best and _unit_alike(spelled, best) >= MIN_SIMILARITY:
            return run, best  # "milidrams", "milli -grams", "5 -milligrams" (the hyphen glues it to the number)
    return None


def _frequency_run(words: list[Word], i: int) -> tuple[int, str] | None:
    """(run length, frequency) when words[i:] start with a misheard frequency."""
    best: tuple[int, str, float] | None = None
    for run in range(1, MAX_RUN + 1):
        chunk = words[i : i + run]
        if len(chunk) < run or any(re.search(r"\d", w.word) for w in chunk):
            break
        if any(re.search(r"[.;?!]$", w.word.strip()) for w in chunk[:-1]):
            break  # a sentence ends inside the run
        bare = [_letters(w.word) for w in chunk]
        if all(b in _FREQUENCY_WORDS for b in bare):
            continue  # already said as a frequency (or plain words a frequency also uses)
        scores = sorted(((_alike("".join(bare), _letters(f)), f) for f in FREQUENCIES), reverse=True)
        score, frequency = scores[0]
        runner_up = max((other for other, f in scores if FREQUENCIES[f] != FREQUENCIES[frequency]), default=0.0)
        if score >= MIN_SIMILARITY and score - runner_up >= MIN_MARGIN and (best is None or score > best[2]):
            best = (run, frequency, score)
    return (best[0], best[1]) if best else None


def _spread(chunk: list[Word], text: str) -> list[Word]:
    """`text`'s words over the time `chunk` took, with the chunk's outer spacing and punctuation."""
    lead, tail = _EDGE.match(chunk[0].word), _EDGE.match(chunk[-1].word)
    parts = text.split()
    start, end = chunk[0].start, chunk[-1].end
    step = (end - start) / len(parts)
    probability = min((w.probability for w in chunk if w.probability is not None), default=None)
    out = []
    for k, part in enumerate(parts):
        prefix = (lead.group(1) if lead else " ") if k == 0 else " "
        suffix = (tail.group(3) if tail else "") if k == len(parts) - 1 else ""
        out.append(
            Word(
                f"{prefix or ' '}{part}{suffix}",
                round(start + k * step, 3),
                round(start + (k + 1) * step, 3),
                probability,
            )
        )
    return out


def correct_doses(words: list[Word]) -> list[Word]:
    """Words with units written whole and misheard frequencies after a dose respelled; times kept."""
    out: list[Word] = []
    i = 0
    while i < len(words):
        word = words[i]
        previous = _bare(out[-1]) if out else ""
        if out and _NUMBER.match(previous) and re.fullmatch(r"\.\d+", word.word.strip(" ,;")):
            out[-1] = replace(out[-1], word=out[-1].word.rstrip() + word.word.strip(), end=word.end)  # "12 .5"
            i += 1
            continue
        unit = _unit_run(words, i) if out and _NUMBER.match(previous) else None
        if (
            out
            and _NUMBER.match(previous)
            and out[-1].word.endswith(",")
            and (unit is not None or _letters(word.word) in UNITS + ("mg", "mcg"))
        ):
            out[-1] = replace(out[-1], word=out[-1].word[:-1])  # "zero point six, milligrams": one dose
        if unit is not None:
            run, name = unit
            out += _spread(words[i : i + run], name)
            i += run
            continue
        dose_before = bool(out) and (
            _DOSE_WORD.match(previous) is not None
            or (
                _letters(previous) in UNITS + ("mg", "mcg")
                and len(out) > 1
                and _NUMBER.match(_bare(out[-2])) is not None
            )
        )
        frequency = _frequency_run(words, i) if dose_before and not re.search(r"[.;?!]$", out[-1].word) else None
        if frequency is not None:
            run, name = frequency
            out += _spread(words[i : i + run], name)
            i += run
            continue
        out.append(word)
        i += 1
    return out
