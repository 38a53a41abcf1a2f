"""What a clinician says for a recorded drug or problem: the chart's display names without strength, form or
qualifiers, so speech recognition can be prompted with them and a note matched against them."""

from __future__ import annotations

import re

_UNIT = re.compile(r"(mg|mcg|µg|ug|g|ml|l|unt|units?|iu|meq|mmol|actuat|hr|day|%)(/[a-z]+)*", re.I)
_NUMBER = re.compile(r"[\d][\d.,/]*([a-zµ%]+(/[a-z]+)*)?", re.I)
_LEADING = re.compile(r"(nda|bla|anda)\d+|abuse-deterrent", re.I)  # RxNorm prefixes before the ingredient
_FORMS = set(
    "oral tablet tablets tab tabs capsule capsules cap caps solution suspension injection injectable extended "
    "delayed release film coated chewable topical cream ointment gel lotion inhaler inhalation inhalant powder "
    "granules patch transdermal system nasal spray ophthalmic otic drops prefilled syringe pen injector "
    "auto-injector metered dose vial sublingual buccal disintegrating dry mucosal vaginal rectal suppository "
    "elixir syrup lozenge kit pack product er xr xl sr dr ec hfa odt daily once twice bid tid qid qd qhs prn "
    "every each take by mouth po at as needed nightly morning evening bedtime with for".split()
)
# Salts, esters and qualifiers dropped after the ingredient ("metformin hydrochloride" -> "metformin")
_SALTS = set(
    "hydrochloride hcl sodium potassium calcium magnesium sulfate succinate tartrate besylate besilate maleate "
    "mesylate mesilate citrate acetate phosphate fumarate bromide hydrobromide dihydrate monohydrate hyclate "
    "propionate furoate bitartrate mononitrate dipropionate xinafoate disodium trihydrate modified human "
    "macrocrystals".split()
)
# ...unless the ingredient is only a cation that needs its salt ("ferrous sulfate", "magnesium sulfate")
_CATIONS = {"ferrous", "ferric", "zinc", "sodium", "potassium", "calcium", "magnesium", "lithium", "aluminum"}


def spoken_drug_name(display: str) -> str:
    """The name a clinician says for a recorded drug: no strength, dose form, salt or brand suffix.

    "metformin hydrochloride 500 MG Oral Tablet" -> "metformin";
    "24 HR tamsulosin hydrochloride 0.4 MG Extended Release Oral Capsule" -> "tamsulosin";
    "lisinopril 10 MG / hydrochlorothiazide 12.5 MG Oral Tablet" -> "lisinopril / hydrochlorothiazide".
    Lower case, except words with digits ("vitamin D3"). Falls back to the display, trimmed.
    """
    text = re.sub(r"\[.*?\]", " ", display)
    text = re.sub(r"[{}()]", " ", text)
    names: list[str] = []
    for component in re.split(r"\s+/\s+", text):
        words: list[str] = []
        for raw in component.split():
            word = raw.strip(",;:")
            lower = word.lower()
            if not words and (
                not word
                or _LEADING.fullmatch(word)
                or _NUMBER.fullmatch(word)
                or _UNIT.fullmatch(word)
                or lower in _FORMS
            ):
                continue  # quantities and prefixes before the ingredient ("24 HR", "200 ACTUAT")
            if _NUMBER.fullmatch(word) or lower in _FORMS:
                break
            if words and lower in _SALTS and not set(words) <= _CATIONS:
                continue
            if _UNIT.fullmatch(word):
                continue
            words.append(word if any(c.isdigit() for c in word) else lower)
        name = " ".join(words)
        if name and name not in names:
            names.append(name)
    return " / ".join(names) or " ".join(display.split())


def spoken_problem(name: str) -> str:
    """A problem as said aloud: without "(primary)", "(disorder)", "[...]" or "unspecified"."""
    text = re.sub(r"\(.*?\)|\[.*?\]", " ", name)
    text = re.sub(r",?\s*\bunspecified\b\s*", " ", text, flags=re.I)
    return " ".join(text.split()).strip(" ,;") or name
