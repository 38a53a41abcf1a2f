"""Respell doubtful words as the patient's recorded drug names ("Approxon" -> "naproxen").

Hotword prompts bias the decoder, but on poor audio (phone lines) Whisper still writes a
drug it half-heard as a near-miss non-word. When the records say the patient takes a drug,
a low-confidence word (or run of up to three words, "met for min") spelled almost like it is
that drug. Guarded so a clearly heard different drug is never rewritten: only words the
decoder itself doubted (probability below `MAX_PROBABILITY`) and only close spellings
(similarity at least `MIN_SIMILARITY`) of terms at least `MIN_TERM_LENGTH` letters long.

Whisper also spells by ear: "Approxion" for naproxen is only 71 % alike in letters but the
same consonants. A single word that is fairly close in letters (`MIN_SPELLING_FOR_SOUND`) and
very close in sound (`MIN_SOUND_SIMILARITY`, on `sound_key`) counts as a near miss too; runs of
words must be close in letters ("lower than" sounds like losartan). Words holding a digit
never join a run: a dose is never swallowed into a name.

Right before a dose ("levothyroidism, 88 micrograms") stands a drug's name, so there a single
word that names no drug at all is respelled even when the decoder was sure of it, at a lower
bar (`MIN_DOSE_SLOT_SIMILARITY`) and only as a recorded drug (never as a problem or allergy); a drug's
name heard clearly there is still never rewritten.
"""

from __future__ import annotations

import re
from dataclasses import replace
from difflib import SequenceMatcher
from functools import lru_cache

from scribe.clinical.drugs import drug_lexicon
from scribe.transcript import Word

MAX_PROBABILITY = 0.6
MIN_SIMILARITY = 0.75
MIN_SPELLING_FOR_SOUND = 0.65
MIN_SOUND_SIMILARITY = 0.85
MIN_TERM_LENGTH = 5
MIN_DOSE_SLOT_SIMILARITY = 0.7
MAX_RUN = 3

_EDGE = re.compile(r"^(\W*)(.*?)(\W*)$", re.S)
# Spellings of one sound made one letter, then every vowel run one "a": "approxion" and
# "naproxen" become "praksan" and "napraksan".
_SOUNDS = (
    (r"ph", "f"),
    (r"ck", "k"),
    (r"qu", "kw"),
    (r"x", "ks"),
    (r"c(?=[eiy])", "s"),
    (r"c", "k"),
    (r"z", "s"),
    (r"th", "t"),
    (r"gh", "g"),
    (r"wh", "w"),
    (r"y", "i"),
    (r"h", ""),
    (r"([a-z])\1+", r"\1"),
    (r"[aeiou]+", "a"),
    (r"^a", ""),
)


def _letters(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


def sound_key(letters: str) -> str:
    """A rough English sound skeleton of lower-case `letters`, for comparing names by ear."""
    key = letters
    for pattern, replacement in _SOUNDS:
        key = re.sub(pattern, replacement, key)
    return key


def similarity(spelled: str, term: str, *, one_word: bool) -> float:
    """How alike in letters (0..1); a single word alike enough by ear scores `MIN_SIMILARITY`."""
    spelling = SequenceMatcher(None, spelled, term).ratio()
    if spelling >= MIN_SIMILARITY or not one_word or spelling < MIN_SPELLING_FOR_SOUND:
        return spelling
    sound = SequenceMatcher(None, sound_key(spelled), sound_key(term)).ratio()
    return MIN_SIMILARITY if sound >= MIN_SOUND_SIMILARITY else spelling


def _best_term(
    spelled: str, terms: list[tuple[str, str]], *, one_word: bool, least: float = MIN_SIMILARITY
) -> tuple[str, float] | None:
    best: tuple[str, float] | None = None
    for term, letters in terms:
        score = similarity(spelled, letters, one_word=one_word)
        if score >= least and (best is None or score > best[1]):
            best = (term, score)
    return best


def _dose_at(words: list[Word], i: int) -> bool:
    """Whether words[i] is a dose's number ("88", "300mg", "0.4"): the word before it is where a drug's name goes."""
    return i < len(words) and re.match(r"\s*\d", words[i].word) is not None


@lru_cache(maxsize=1)
def _drug_spellings() -> frozenset[str]:
    """Every one-word drug name the lexicon knows, as letters: a word spelled so is a drug, heard as said."""
    return frozenset(_letters(spoken) for spoken in drug_lexicon() if " " not in spoken)


def _best_run(
    words: list[Word], i: int, candidates: list[tuple[str, str]], known: set[str]
) -> tuple[int, str, float] | None:
    """The best-matching (run length, term, score) of doubtful words starting at `i`, if any."""
    best: tuple[int, str, float] | None = None
    for run in range(1, MAX_RUN + 1):
        chunk = words[i : i + run]
        probabilities = [w.probability for w in chunk if w.probability is not None]
        if len(chunk) < run or len(probabilities) < len(chunk):
            break  # past the end, or a word without a probability
        if any(re.search(r"\d", w.word) or not _letters(w.word) for w in chunk):
            break  # a dose or a bare number is never part of a name
        if any(_letters(w.word) in known for w in chunk):
            break  # a word already spelled as a recorded term is never merged into another
        if any(re.search(r"\w\W+$", w.word.strip()) for w in chunk[:-1]):
            break  # punctuation inside the run: separate words, not one broken-up name
        spelled = "".join(_letters(w.word) for w in chunk)
        dose_slot = run == 1 and _dose_at(words, i + 1) and spelled not in _drug_spellings()
        if len(spelled) < MIN_TERM_LENGTH or (min(probabilities) >= MAX_PROBABILITY and not dose_slot):
            continue
        if dose_slot:  # only a drug takes a dose: "levothyroidism, 88" is not the recorded hypothyroidism
            drugs = [(term, letters) for term, letters in candidates if letters in _drug_spellings()]
            match = _best_term(spelled, drugs, one_word=True, least=MIN_DOSE_SLOT_SIMILARITY)
        else:
            match = _best_term(spelled, candidates, one_word=run == 1)
        if match is not None and (best is None or match[1] > best[2]):
            best = (run, match[0], match[1])
    return best


def correct_to_record_terms(words: list[Word], terms: list[str]) -> list[Word]:
    """Words with doubtful near-misses of `terms` respelled; times and probabilities kept, punctuation kept."""
    candidates = [(t, _letters(t)) for t in terms if " " not in t.strip() and len(_letters(t)) >= MIN_TERM_LENGTH]
    if not candidates or not words:
        return list(words)
    known = {letters for _, letters in candidates}
    out: list[Word] = []
    i = 0
    while i < len(words):
        best = _best_run(words, i, candidates, known)
        later = _best_run(words, i + 1, candidates, known) if best else None
        if best is None or (later is not None and later[2] >= best[2]):
            out.append(words[i])  # no match here, or the name starts at the next word
            i += 1
            continue
        run, term, _score = best
        chunk = words[i : i + run]
        lead, tail = _EDGE.match(chunk[0].word), _EDGE.match(chunk[-1].word)
        prefix, suffix = (lead.group(1) if lead else ""), (tail.group(3) if tail else "")
        original = lead.group(2) if lead else chunk[0].word
        if original[:1].isupper() and term[:1].islower():
            term = term[:1].upper() + term[1:]
        out.append(
            replace(
                chunk[0],
                word=f"{prefix}{term}{suffix}",
                end=chunk[-1].end,
                # _best_run only matches runs whose words all have a probability: the filter drops nothing
                probability=min(w.probability for w in chunk if w.probability is not None),
            )
        )
        i += run
    return out
