"""Loops and prompt echoes are told from a chunk's words; ordinary dictation is neither."""

from scribe.asr.hallucinations import echoes_prompt, failure, loop_start

TERMS = ["cetirizine", "fluticasone", "loratadine", "montelukast", "Seasonal allergic rhinitis"]


def test_a_phrase_three_times_in_a_row_is_a_loop_cut_after_its_first_copy():
    words = "Weak urinary stream, and weak urinary stream, and weak urinary stream, and weak".split()
    assert loop_start(words) == 4
    assert words[: loop_start(words)] == ["Weak", "urinary", "stream,", "and"]


def test_a_word_said_three_times_is_speech_four_times_a_loop():
    assert loop_start("No, no, no. I'm fine.".split()) is None
    assert loop_start("okay okay okay okay".split()) == 1
    assert loop_start("Increase amlodipine to 10 milligrams, amlodipine 5 milligrams before.".split()) is None


def test_the_prompt_written_back_as_a_list_is_an_echo():
    echo = "Seasonal allergic rhinitis, fluticasone, loratadine, montelukast".split()
    assert echoes_prompt(echo, TERMS)
    assert failure(echo, TERMS, out_of_tokens=False) == "prompt echo"


def test_drugs_dictated_with_doses_or_joined_by_and_are_no_echo():
    dictated = "Cetirizine 10 milligrams daily, fluticasone nasal spray, stop loratadine.".split()
    assert not echoes_prompt(dictated, TERMS)
    assert not echoes_prompt("on cetirizine, fluticasone and loratadine".split(), TERMS)
    assert not echoes_prompt("cetirizine, cetirizine, fluticasone".split(), TERMS)  # two distinct terms
    assert failure(dictated, TERMS, out_of_tokens=False) is None
    assert failure(dictated, [], out_of_tokens=False) is None


def test_running_out_of_tokens_is_a_failure_whatever_the_words():
    assert failure(["fine."], TERMS, out_of_tokens=True) == "token budget"
    assert failure("and the and the and the".split(), [], out_of_tokens=False) == "loop"
