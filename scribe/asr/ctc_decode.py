"""CTC decoding over frame log-probabilities: greedy, or prefix beam search biased towards hotwords.

Pure numpy + Python (no torch): tokens keep the frames they were emitted at, so words get
times (one frame = 40 ms for MedASR) for the note's linked evidence. The beam search exists
for the patient's vocabulary (drug names, problems): pyctcdecode does the same job but pins
numpy < 2, so this is a small prefix beam search of our own with a character-trie bonus.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple, TypeAlias

import numpy as np

from scribe.transcript import Word

WORD_START = "\u2581"  # sentencepiece's "▁"
_NEG_INF = float("-inf")
_END = ""  # trie key marking a complete hotword

_Trie: TypeAlias = dict[str, "_Trie"]
"""A hotword character trie: each character maps to the subtrie after it; the `_END` key marks a whole hotword."""


class DecodedToken(NamedTuple):
    id: int
    start_frame: int
    end_frame: int


def greedy_decode(log_probs: np.ndarray, *, blank: int, skip_ids: Iterable[int] = ()) -> list[DecodedToken]:
    """Argmax per frame, collapse repeats, drop blank and `skip_ids` (eos, unk...)."""
    if log_probs.shape[0] == 0:
        return []
    ids = log_probs.argmax(axis=1)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)] - 1
    drop = np.array(sorted({blank, *skip_ids}))
    keep = ~np.isin(ids[starts], drop)
    kept = zip(ids[starts][keep], starts[keep], ends[keep], strict=True)
    return [DecodedToken(int(i), int(s), int(e)) for i, s, e in kept]


def hotword_terms(names: Iterable[str], min_chars: int = 4) -> list[str]:
    """Single lower-case words from record names ("Metformin 500 MG Oral Tablet" -> metformin, oral, tablet)."""
    seen: dict[str, None] = {}
    for name in names:
        for word in re.findall(r"[A-Za-z][A-Za-z'-]*[A-Za-z]", name):
            if len(word) >= min_chars:
                seen.setdefault(word.lower(), None)
    return list(seen)


def _build_trie(words: Iterable[str]) -> _Trie:
    root: _Trie = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[_END] = {}
    return root


class _Prefix:
    """One hypothesis prefix: a linked list of emitted tokens plus its hotword-match state."""

    __slots__ = ("parent", "token", "frame", "trie", "partial", "bonus")

    def __init__(
        self, parent: _Prefix | None, token: int, frame: int, trie: _Trie | None, partial: float, bonus: float
    ):
        self.parent = parent
        self.token = token
        self.frame = frame
        self.trie = trie  # position in the hotword trie, None when the current word cannot match
        self.partial = partial  # bonus of the word being matched; revoked if it does not complete
        self.bonus = bonus  # bonus of completed hotwords

    def final_bonus(self) -> float:
        return self.bonus + (self.partial if self.trie is not None and _END in self.trie else 0.0)


def _logaddexp(a: float, b: float) -> float:
    if a == _NEG_INF:
        return b
    if b == _NEG_INF:
        return a
    if a < b:
        a, b = b, a
    return a + math.log1p(math.exp(b - a))


def _add(step: dict[_Prefix, list[float]], prefix: _Prefix, p_b: float = _NEG_INF, p_nb: float = _NEG_INF) -> None:
    cur = step.get(prefix)
    if cur is None:
        step[prefix] = [p_b, p_nb]
    else:
        cur[0], cur[1] = _logaddexp(cur[0], p_b), _logaddexp(cur[1], p_nb)


def hotword_beam_decode(
    log_probs: np.ndarray,
    pieces: Sequence[str],
    *,
    blank: int,
    skip_ids: Iterable[int] = (),
    hotwords: Iterable[str] = (),
    beam_width: int = 8,
    hotword_weight: float = 1.0,
    prune_logp: float = -10.0,
    blank_skip_logp: float = math.log(0.999),
) -> list[DecodedToken]:
    """CTC prefix beam search; each character that extends a hotword earns `hotword_weight` nats.

    Matching is per whole word and case-insensitive, on characters rather than token ids, so
    any segmentation of "metformin" matches. A partial match's bonus is revoked when the word
    ends or diverges before the hotword completes, so only whole hotwords keep their bonus.
    `skip_ids` (eos, unk, sentinels) count as blank. Tokens carry their first emission frame.
    """
    n_frames, vocab = log_probs.shape
    if n_frames == 0:
        return []
    skip = sorted({int(i) for i in skip_ids if 0 <= int(i) < vocab} - {blank})
    trie = _build_trie(hotword_terms(hotwords))
    starts_word = [p.startswith(WORD_START) for p in pieces] + [False] * max(0, vocab - len(pieces))
    chars = [p.replace(WORD_START, "").lower() for p in pieces] + [""] * max(0, vocab - len(pieces))

    def extend(parent: _Prefix, token: int, frame: int) -> _Prefix:
        node, partial, bonus = parent.trie, parent.partial, parent.bonus
        if starts_word[token]:
            if node is not None and _END in node:
                bonus += partial
            node, partial = trie, 0.0
        for ch in chars[token]:
            if node is not None and ch in node:
                node, partial = node[ch], partial + hotword_weight
            else:
                node, partial = None, 0.0
        return _Prefix(parent, token, frame, node, partial, bonus)

    root = _Prefix(None, -1, -1, trie, 0.0, 0.0)
    beams: dict[_Prefix, list[float]] = {root: [0.0, _NEG_INF]}  # prefix -> [p_blank, p_nonblank]
    for t, (lp_blank, candidates) in enumerate(
        _frame_candidates(log_probs, blank, skip, beam_width, prune_logp, blank_skip_logp)
    ):
        row = log_probs[t]
        step: dict[_Prefix, list[float]] = {}
        children = {(id(p.parent), p.token): p for p in beams}
        for prefix, (p_b, p_nb) in beams.items():
            total = _logaddexp(p_b, p_nb)
            _add(step, prefix, p_b=total + lp_blank)
            if prefix.token >= 0:
                _add(step, prefix, p_nb=p_nb + float(row[prefix.token]))  # the last token, held
            for c in candidates:
                lp = float(row[c])
                key = (id(prefix), c)
                child = children.get(key)
                if child is None:
                    child = children[key] = extend(prefix, c, t)
                # a repeated token needs a blank in between
                _add(step, child, p_nb=(p_b if c == prefix.token else total) + lp)
        ranked = sorted(
            step.items(), key=lambda kv: _logaddexp(kv[1][0], kv[1][1]) + kv[0].bonus + kv[0].partial, reverse=True
        )
        beams = dict(ranked[:beam_width])

    best_prefix = max(beams, key=lambda p: _logaddexp(*beams[p]) + p.final_bonus())
    tokens: list[DecodedToken] = []
    node: _Prefix | None = best_prefix
    while node is not None and node.token >= 0:
        tokens.append(DecodedToken(node.token, node.frame, node.frame))
        node = node.parent
    return tokens[::-1]


def _frame_candidates(
    log_probs: np.ndarray,
    blank: int,
    skip: list[int],
    k: int,
    prune_logp: float,
    blank_skip_logp: float,
    chunk: int = 2048,
) -> Iterator[tuple[float, list[int]]]:
    """Per frame: blank log-prob (skip ids folded in) and the top-k other tokens worth expanding.

    Computed in chunks so hours of audio never need a second full-size copy of the matrix.
    """
    k = max(1, min(k, log_probs.shape[1] - 1 - len(skip)))
    for lo in range(0, log_probs.shape[0], chunk):
        block = log_probs[lo : lo + chunk]
        blank_lp = block[:, blank]
        if skip:
            blank_lp = np.logaddexp(blank_lp, np.logaddexp.reduce(block[:, skip], axis=1))
        scores = block.copy()
        scores[:, [blank, *skip]] = _NEG_INF
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        best = scores.max(axis=1)
        for i in range(block.shape[0]):
            if blank_lp[i] >= blank_skip_logp:
                yield float(blank_lp[i]), []
            else:
                yield float(blank_lp[i]), [int(c) for c in top[i] if scores[i, c] >= best[i] + prune_logp]


def tokens_to_words(
    tokens: Sequence[DecodedToken],
    pieces: Sequence[str],
    frame_probs: np.ndarray,
    *,
    frame_s: float,
    first_frame_centre_s: float,
    duration_s: float,
) -> list[Word]:
    """Group tokens into words at "▁" boundaries; times from frames, probability = mean frame max-prob.

    Frame i is centred at `first_frame_centre_s + i * frame_s` and spans one frame around it;
    times are clipped to the audio, so words come out ordered and non-overlapping.
    """
    words: list[Word] = []
    text, first, last = "", -1, -1

    def flush() -> None:
        if text:
            start = min(max(first_frame_centre_s + (first - 0.5) * frame_s, 0.0), duration_s)
            end = min(max(first_frame_centre_s + (last + 0.5) * frame_s, start), duration_s)
            prob = float(frame_probs[first : last + 1].mean()) if len(frame_probs) else None
            words.append(Word(text, round(start, 3), round(end, 3), None if prob is None else round(prob, 4)))

    for tok in tokens:
        piece = pieces[tok.id] if 0 <= tok.id < len(pieces) else ""
        for i, part in enumerate(piece.split(WORD_START)):
            if i > 0:  # a "▁" starts a new word
                flush()
                text, first = "", -1
            if part:
                if not text:
                    first = tok.start_frame
                text += part
                last = tok.end_frame
    flush()
    return words
