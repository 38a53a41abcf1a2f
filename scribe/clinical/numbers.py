"""Spoken numbers to digits ("six hundred milligrams" -> "600 milligrams", "one forty eight" -> "148").

Notes write quantities as digits; transcripts of speech often spell them. A lone "one" is kept
as a word unless a unit or count follows, so "no one" and "the one that" stay readable.
"""

from __future__ import annotations

import re

_UNITS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_SCALES = {"hundred": 100, "thousand": 1000}
NUMBER_WORDS = frozenset(_UNITS) | frozenset(_TENS) | frozenset(_SCALES)  # every word a spoken number is made of
# Words after which a lone "one" is a quantity, not a pronoun.
_COUNTED = re.compile(
    r"(?:mg|milligrams?|micrograms?|mcg|grams?|units?|tablets?|pills?|capsules?|puffs?|drops?|"
    r"times?|days?|weeks?|months?|years?|hours?|minutes?|seconds?|episodes?|percent|plus|out|"
    r"inch(?:es)?|centimeters?|cm|pounds?|lbs?|kilograms?|kg|liters?|cups?|drinks?|beers?|"
    r"glass(?:es)?|packs?|cigarettes?|more|dose|shot|injection|over|to|or|and|point|-)$"
)
_TOKEN = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*|\S")


def _parse(words: list[str]) -> int | None:
    """Value of a run of number words, or None when it is not one number."""
    total, current, last = 0, 0, None
    for word in words:
        if word in _UNITS or word in _TENS:
            value = _UNITS.get(word, _TENS.get(word, 0))
            if last == "unit" and word in _TENS and current < 10:
                current = current * 100 + value  # "one forty" -> 140 (how vitals are read out)
            elif last == "unit" and word in _UNITS and current >= 100 and current % 100 >= 20:
                current += value
            elif last in ("unit",) or (last == "tens" and word in _TENS):
                return None
            elif last == "tens" and value >= 10:
                return None
            else:
                current += value
            last = "tens" if word in _TENS else "unit"
        elif word == "hundred":
            if current == 0:
                return None
            current *= 100
            last = "scale"
        elif word == "thousand":
            total += (current or 1) * 1000
            current, last = 0, "scale"
    return total + current


def _split_hyphen(word: str) -> list[str]:
    parts = word.lower().split("-")
    return parts if len(parts) > 1 and all(p in NUMBER_WORDS for p in parts) else [word.lower()]


def spoken_numbers_to_digits(text: str) -> str:
    """Replace runs of number words (optionally with "point", "and") by digits; other text unchanged."""
    tokens = [(m.group(0), m.start(), m.end()) for m in _TOKEN.finditer(text)]
    out: list[str] = []
    pos = 0
    i = 0
    while i < len(tokens):
        word = tokens[i][0].lower()
        if (
            word == "point"
            and i + 1 < len(tokens)
            and tokens[i + 1][0].lower() in _UNITS
            and _UNITS[tokens[i + 1][0].lower()] < 10
            and (i == 0 or tokens[i - 1][0].lower() not in NUMBER_WORDS)
        ):
            out.append(text[pos : tokens[i][1]])  # "point five centimeters" -> "0.5 centimeters"
            out.append(f"0.{_UNITS[tokens[i + 1][0].lower()]}")
            pos = tokens[i + 1][2]
            i += 2
            continue
        if word == "a" and i + 1 < len(tokens) and tokens[i + 1][0].lower() in _SCALES:
            tokens[i] = ("one", tokens[i][1], tokens[i][2])  # "a hundred and forty"
            word = "one"
        if _split_hyphen(word)[0] not in NUMBER_WORDS or word in _SCALES:
            i += 1
            continue
        j, run = i, []
        while j < len(tokens):
            parts = _split_hyphen(tokens[j][0])
            if all(p in NUMBER_WORDS for p in parts):
                run += parts
                j += 1
            elif (
                tokens[j][0].lower() == "and"
                and run
                and run[-1] in _SCALES
                and j + 1 < len(tokens)
                and _split_hyphen(tokens[j + 1][0])[0] in NUMBER_WORDS
            ):
                j += 1
            else:
                break
        value = _parse(run)
        if value is None:
            i = j
            continue
        end = tokens[j - 1][2]
        rendered = str(value)
        # decimals: "ninety eight point six", "zero point four"
        if j + 1 < len(tokens) and tokens[j][0].lower() in ("point", "."):
            digits = []
            k = j + 1
            while k < len(tokens) and tokens[k][0].lower() in _UNITS and _UNITS[tokens[k][0].lower()] < 10:
                digits.append(str(_UNITS[tokens[k][0].lower()]))
                k += 1
            if digits:
                rendered += "." + "".join(digits)
                end, j = tokens[k - 1][2], k
        if run == ["one"] and "." not in rendered:
            following = tokens[j][0].lower() if j < len(tokens) else ""
            if not _COUNTED.match(following):
                i = j
                continue
        out.append(text[pos : tokens[i][1]])
        out.append(rendered)
        pos = end
        i = j
    out.append(text[pos:])
    return "".join(out)
