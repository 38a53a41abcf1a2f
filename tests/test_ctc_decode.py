"""CTC decoding: greedy collapse, hotword-biased prefix beam search, words timed from frames."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scribe.asr.ctc_decode import (
    DecodedToken,
    greedy_decode,
    hotword_beam_decode,
    hotword_terms,
    tokens_to_words,
)

PIECES = ["<pad>", "</s>", "<unk>", "\u2581met", "\u2581for", "\u2581mid", "form", "in", "\u2581the", "{period}"]
ID = {p: i for i, p in enumerate(PIECES)}


def frames(*rows: dict[str, float], vocab: int = len(PIECES)) -> np.ndarray:
    """Log-probabilities from per-frame {piece: probability}; the rest of the mass is spread thin."""
    out = np.full((len(rows), vocab), 1e-6)
    for t, row in enumerate(rows):
        for piece, p in row.items():
            out[t, ID[piece]] = p
    return np.log(out / out.sum(axis=1, keepdims=True)).astype(np.float32)


B = {"<pad>": 1.0}  # a blank frame


def text_of(tokens: list[DecodedToken]) -> str:
    return "".join(PIECES[t.id] for t in tokens).replace("\u2581", " ").strip()


def test_greedy_collapses_repeats_and_drops_blank_and_skip_ids() -> None:
    lp = frames({"\u2581the": 1}, {"\u2581the": 1}, B, {"\u2581the": 1}, {"</s>": 1}, {"{period}": 1}, B)
    tokens = greedy_decode(lp, blank=0, skip_ids={1})
    assert tokens == [
        DecodedToken(ID["\u2581the"], 0, 1),
        DecodedToken(ID["\u2581the"], 3, 3),
        DecodedToken(ID["{period}"], 5, 5),
    ]
    assert greedy_decode(np.zeros((0, 5), np.float32), blank=0) == []


MET_FOR_MID = (
    {"\u2581met": 0.9},
    B,
    {"\u2581for": 0.55, "form": 0.45},
    B,
    {"\u2581mid": 0.55, "in": 0.45},
    B,
)


def test_beam_without_hotwords_agrees_with_greedy() -> None:
    lp = frames(*MET_FOR_MID)
    assert text_of(hotword_beam_decode(lp, PIECES, blank=0)) == "met for mid"
    assert text_of(greedy_decode(lp, blank=0)) == "met for mid"


def test_beam_agrees_with_greedy_on_peaky_random_output() -> None:
    rng = np.random.default_rng(3)
    ids = rng.choice([0, 0, 0, 3, 4, 5, 6, 7, 8, 9], size=300)
    lp = np.full((300, len(PIECES)), math.log(1e-4), np.float32)
    lp[np.arange(300), ids] = math.log(1 - 1e-4 * (len(PIECES) - 1))
    greedy = [(t.id, t.start_frame) for t in greedy_decode(lp, blank=0)]
    beam = [(t.id, t.start_frame) for t in hotword_beam_decode(lp, PIECES, blank=0, beam_width=4)]
    assert beam == greedy


def test_hotwords_bias_towards_the_records_vocabulary() -> None:
    lp = frames(*MET_FOR_MID)
    tokens = hotword_beam_decode(lp, PIECES, blank=0, hotwords=["Metformin 500 MG Oral Tablet"])
    assert text_of(tokens) == "metformin"
    assert [t.start_frame for t in tokens] == [0, 2, 4]


def test_hotwords_do_not_override_clear_evidence() -> None:
    lp = frames({"\u2581met": 0.9}, B, {"\u2581for": 0.999, "form": 0.001}, B, {"\u2581mid": 0.999, "in": 0.001}, B)
    assert text_of(hotword_beam_decode(lp, PIECES, blank=0, hotwords=["metformin"])) == "met for mid"


def test_half_a_hotword_earns_nothing() -> None:
    # "metform" alone is not the hotword: its partial bonus is revoked, greedy's reading stays
    lp = frames({"\u2581met": 0.9}, B, {"\u2581for": 0.55, "form": 0.45}, B, {"\u2581the": 0.9}, B)
    assert text_of(hotword_beam_decode(lp, PIECES, blank=0, hotwords=["metformin"])) == "met for the"


def test_skip_ids_count_as_blank_in_the_beam() -> None:
    lp = frames({"\u2581the": 1}, {"</s>": 1}, {"\u2581the": 1})
    assert text_of(hotword_beam_decode(lp, PIECES, blank=0, skip_ids={1}, hotwords=["thermal"])) == "the the"


def test_hotword_terms() -> None:
    assert hotword_terms(["Metformin 500 MG Oral Tablet", "metformin", "Type 2 diabetes", "Penicillin G"]) == [
        "metformin",
        "oral",
        "tablet",
        "type",
        "diabetes",
        "penicillin",
    ]


def test_words_from_tokens_with_frame_times() -> None:
    tokens = [
        DecodedToken(ID["\u2581met"], 10, 11),
        DecodedToken(ID["form"], 13, 13),
        DecodedToken(ID["in"], 15, 16),
        DecodedToken(ID["{period}"], 17, 17),
        DecodedToken(ID["\u2581the"], 30, 30),
    ]
    probs = np.linspace(0.5, 1.0, 40)
    words = tokens_to_words(tokens, PIECES, probs, frame_s=0.04, first_frame_centre_s=0.0725, duration_s=10.0)
    assert [w.word for w in words] == ["metformin{period}", "the"]
    first, second = words
    assert first.start == pytest.approx(0.0725 + 9.5 * 0.04, abs=1e-3)
    assert first.end == pytest.approx(0.0725 + 17.5 * 0.04, abs=1e-3)
    assert first.probability == pytest.approx(float(probs[10:18].mean()), abs=1e-4)
    assert second.start >= first.end


def test_word_times_are_clipped_to_the_audio() -> None:
    tokens = [DecodedToken(ID["\u2581the"], 0, 0), DecodedToken(ID["\u2581mid"], 99, 99)]
    words = tokens_to_words(tokens, PIECES, np.ones(100), frame_s=0.04, first_frame_centre_s=0.0725, duration_s=4.0)
    assert words[0].start >= 0.0
    assert words[1].end <= 4.0 and words[1].start <= words[1].end
