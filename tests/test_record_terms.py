"""Doubtful near-misses of recorded drug names are respelled; clearly heard words never are."""

from scribe.asr.record_terms import correct_to_record_terms
from scribe.transcript import Word


def words(*items: tuple[str, float | None]) -> list[Word]:
    return [Word(text, i * 0.5, i * 0.5 + 0.4, p) for i, (text, p) in enumerate(items)]


def texts(result: list[Word]) -> str:
    return "".join(w.word for w in result)


def test_a_doubtful_near_miss_becomes_the_recorded_drug():
    result = correct_to_record_terms(words((" Approxon", 0.45), (" 500mg,", 0.9)), ["naproxen", "gabapentin"])
    assert texts(result) == " Naproxen 500mg,"
    assert result[0].start == 0.0 and result[0].end == 0.4 and result[0].probability == 0.45


def test_a_name_split_into_words_is_joined_with_its_times():
    result = correct_to_record_terms(
        words((" met", 0.3), (" for", 0.5), (" min", 0.4), (" daily.", 0.9)), ["metformin"]
    )
    assert texts(result) == " metformin daily."
    assert (result[0].start, result[0].end) == (0.0, 1.4)


def test_a_clearly_heard_different_drug_is_never_rewritten():
    # atorvastatin and rosuvastatin are 75 % alike; a switch of statin must survive.
    result = correct_to_record_terms(words((" atorvastatin", 0.93), (" 40", 0.9)), ["rosuvastatin"])
    assert texts(result) == " atorvastatin 40"


def test_ordinary_words_and_exact_names_stay():
    source = words((" approach", 0.3), (" on", 0.25), (" gabapentin,", 0.31), (" relax", 0.2))
    assert texts(correct_to_record_terms(source, ["naproxen", "gabapentin", "lasix"])) == texts(source)


def test_no_merging_across_punctuation_or_without_probabilities():
    across = words((" met,", 0.3), (" formin", 0.3))
    assert texts(correct_to_record_terms(across, ["metformin"])).startswith(" met,")
    unknown = [Word(" Approxon", 0.0, 0.4, None)]
    assert texts(correct_to_record_terms(unknown, ["naproxen"])) == " Approxon"


def test_short_and_multiword_terms_are_not_used():
    source = words((" ase", 0.1), (" lumbar radiculopathy", 0.2))
    assert texts(correct_to_record_terms(source, ["asa", "lumbar radiculopathy"])) == texts(source)


def test_a_single_word_spelled_by_ear_becomes_the_recorded_drug():
    # "approxion" shares 71 % of its letters with naproxen but the same sounds ("praksan" in "napraksan").
    result = correct_to_record_terms(
        words((" Approxion", 0.41), (" time,", 0.65)), ["gabapentin", "naproxen", "pantoprazole", "tramadol"]
    )
    assert texts(result) == " Naproxen time,"


def test_ordinary_words_that_only_sound_like_a_drug_stay():
    # "lower than" sounds like losartan (0.88) but is only 71 % alike in letters: runs need letters.
    source = words((" lower", 0.55), (" than", 0.5), (" before.", 0.9))
    assert texts(correct_to_record_terms(source, ["losartan"])) == texts(source)


def test_a_different_drug_that_sounds_alike_stays():
    # hydroxyzine / hydralazine: 73 % alike in letters, 84 % by ear; a mix-up must never be written.
    source = words((" hydroxyzine", 0.5), (" 25", 0.9))
    assert texts(correct_to_record_terms(source, ["hydralazine"])) == texts(source)


def test_a_dose_is_never_swallowed_into_a_name():
    # The doubtful dose must not make the run "propranol 20" a doubtful spelling of propranolol: the name alone is.
    source = words((" propranol", 0.61), (" 20", 0.25), (" mg", 0.95))
    result = correct_to_record_terms(source, ["propranolol"])
    assert [(w.word, w.start, w.end) for w in result] == [
        (" propranolol", 0.0, 0.4),
        (" 20", 0.5, 0.9),
        (" mg", 1.0, 1.4),
    ]
    assert (
        texts(correct_to_record_terms(words((" metatrexate", 0.5), (" 15mg", 0.3)), ["methotrexate"]))
        == " methotrexate 15mg"
    )


def test_right_before_a_dose_a_word_that_names_no_drug_is_the_recorded_drug_however_sure():
    recorded = ["levothyroxine", "sertraline", "rosuvastatin", "Hypothyroidism"]  # a problem too: no dose for it
    heard = words((" increased", 0.9), (" levothyroidism,", 0.97), (" 88", 0.9), (" micrograms.", 0.9))
    assert texts(correct_to_record_terms(heard, recorded)) == " increased levothyroxine, 88 micrograms."
    # ...not without a dose after it, not a drug the lexicon knows, not a name merely like it
    for kept in (
        words((" levothyroidism", 0.97), (" is", 0.9), (" treated", 0.9)),
        words((" atorvastatin", 0.97), (" 40", 0.9)),
        words((" hypothyroidism,", 0.97), (" 75", 0.9), (" micrograms", 0.9)),
    ):
        assert texts(correct_to_record_terms(kept, recorded)) == texts(kept)


def test_sound_key_keeps_consonants_and_merges_vowels():
    from scribe.asr.record_terms import sound_key

    assert sound_key("approxion") == "praksan"
    assert sound_key("naproxen") == "napraksan"
    assert sound_key("phenytoin") == sound_key("fenitoin")
