import pytest

from scribe.wer import contains_term, normalize, term_recall, word_errors


def test_normalisation_ignores_case_punctuation_and_number_style():
    assert (
        word_errors("Metformin 500 milligrams, twice daily.", "metformin five hundred milligrams twice daily").errors
        == 0
    )
    assert normalize("BP one twenty over eighty!") == normalize("bp 120 over 80")


def test_units_written_out_or_abbreviated_are_the_same_word():
    said = "Apixaban 5 milligrams, 1 microgram, 10 milliliters, 70 kilograms."
    assert word_errors(said, "apixaban 5mg 1 mcg 10 ml 70kg").errors == 0
    assert normalize("500 mgs") == normalize("five hundred milligrams") == "500 mg"
    assert word_errors("metformin 500 milligrams", "metformin 500 grams").errors == 1  # another unit is still an error


@pytest.mark.parametrize(
    ("reference", "hypothesis", "errors"),
    [
        ("start lisinopril today", "start lysinopril today", 1),  # substitution
        ("start lisinopril today", "start today", 1),  # deletion
        ("start lisinopril today", "start the lisinopril today", 1),  # insertion
        ("start lisinopril today", "", 3),  # nothing recognised
    ],
)
def test_error_kinds(reference, hypothesis, errors):
    counts = word_errors(reference, hypothesis)
    assert counts.errors == errors and counts.reference_words == 3


def test_wer_of_empty_reference():
    assert word_errors("", "").wer == 0.0
    assert word_errors("", "noise").errors == 1


def test_term_matching_is_whole_word():
    assert contains_term("Patient takes Metformin daily.", "metformin")
    assert not contains_term("Patient takes metformina daily.", "metformin")
    assert contains_term("on hydrochlorothiazide 25 mg", "Hydrochlorothiazide")


def test_term_recall_counts_only_spoken_terms():
    reference = "Continue apixaban 5 mg and amlodipine."
    assert term_recall(reference, "continue a pixaban 5 mg and amlodipine", ["apixaban", "amlodipine", "warfarin"]) == (
        1,
        2,
    )
