"""Units and frequencies Whisper wrote by ear are respelled in the dose slot only; numbers never change."""

import pytest

from scribe.asr.dose_terms import correct_doses
from scribe.asr.whisper import respell
from scribe.transcript import Word


def words(text: str) -> list[Word]:
    """'|'-separated pieces as Whisper emits them (leading spaces kept), 0.3 s each."""
    return [Word(piece, round(i * 0.3, 3), round(i * 0.3 + 0.3, 3), 0.5) for i, piece in enumerate(text.split("|"))]


def text(ws: list[Word]) -> str:
    return "".join(w.word for w in ws)


@pytest.mark.parametrize(
    ("heard", "written"),
    [
        (
            " Nitrofurantoin,| 100| mg,| white| daily| for| five| days.",
            " Nitrofurantoin, 100 mg, twice daily for five days.",
        ),
        (" oxybutynin| 5mg| at| height.| Recheck", " oxybutynin 5mg at night. Recheck"),
        (" naproxen| 500mg,| wife| daily,| and", " naproxen 500mg, twice daily, and"),
        (" famotidine,| 20| milligrams| at| a| height,| avoid", " famotidine, 20 milligrams at night, avoid"),
        (" topiramate,| 25mg| highly.", " topiramate, 25mg nightly."),
        (" glipizide| 5|-milligrams| daily", " glipizide 5 milligrams daily"),
        (
            " Colchicine,| zero| point| six,| milli|-grams,| twice| daily.",
            " Colchicine, zero point six milligrams, twice daily.",
        ),
        (" carvedilol| 12| .5| milidrams.", " carvedilol 12.5 milligrams."),
        (" Spironolactone,| 25| Milidramm,| and", " Spironolactone, 25 milligrams, and"),  # a doubled letter
        # "th" heard as "f": three times, not four
        (" gabapentin| 300mg,| free| time| daily", " gabapentin 300mg, three times daily"),
    ],
)
def test_misheard_units_and_frequencies_after_a_dose_are_respelled(heard: str, written: str):
    assert text(correct_doses(words(heard))) == written


@pytest.mark.parametrize(
    "said",
    [
        " aspirin| 81| milligrams| once| daily.",  # a frequency already: never "twice daily"
        " 5| mg| daily",
        " 10| milligrams| at| bedtime",
        " 10| mg| twice| a| day",
        " take| 10| mg| at| home| with| food",  # not a frequency at all
        " 20| mg| and| then| stop",
        " carvedilol| 12.5| milligrams.| White| failure.",  # the sentence ended: no dose slot
        " Naproxen| time| 100mg",  # numbers are never changed: the chart cross-check must see them
        " white| daily| walks",  # no dose before: not a dose instruction
    ],
)
def test_what_was_said_as_a_prescriber_says_it_or_is_not_a_dose_stays(said: str):
    assert text(correct_doses(words(said))) == said.replace("|", "")


def test_respelled_words_keep_the_time_the_misheard_ones_took():
    out = correct_doses(words(" 100| mg| white| daily| for"))
    assert [(w.word, w.start, w.end) for w in out[2:4]] == [(" twice", 0.6, 0.9), (" daily", 0.9, 1.2)]
    glued = correct_doses(words(" 12| .5| milidrams"))
    assert [(w.word, w.start, w.end) for w in glued] == [(" 12.5", 0.0, 0.6), (" milligrams", 0.6, 0.9)]


def test_offline_and_streaming_respell_alike_records_first():
    """One function for both: the records' near-miss drug name, then the dose slot after it."""
    heard = [
        Word(" Approxion", 0.0, 0.5, 0.3),
        Word(" 500", 0.5, 0.8, 0.9),
        Word(" milligrams", 0.8, 1.2, 0.9),
        Word(" wife", 1.2, 1.5, 0.4),
        Word(" daily.", 1.5, 1.9, 0.9),
    ]
    assert text(respell(heard, ["naproxen"])) == " Naproxen 500 milligrams twice daily."
    assert text(respell(heard, [])) == " Approxion 500 milligrams twice daily."
