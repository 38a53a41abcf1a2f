"""Free text that scribe stores is clean: no NUL or other control characters, no bidirectional overrides.

Such characters never belong in a name or a clinical note, and they do harm: a NUL truncates the text
in C-based readers and PostgreSQL refuses it, C1 controls and stray escapes garble terminals and
exports, and a right-to-left override makes text display as something other than what is stored
("Smith" that reads "htimS", a dose that reads reversed). They are refused where a client sends
them, with the field named; tab and newline are allowed only where the text may span lines. That holds for
text scribe is handed inside a file too (an image's file name and DICOM tags, the strings it reads from prior
records): the file is refused, never stored with the character silently dropped.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator

from scribe.errors import BadInputError

_BIDI = "\u202a-\u202e\u2066-\u2069"  # embeddings, overrides and isolates
_FORBIDDEN_ONE_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_FORBIDDEN_MULTI_LINE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")  # tab and newline allowed


def unsafe_character(value: str, *, multiline: bool = False) -> str | None:
    """What is wrong with `value` ("U+202E (RIGHT-TO-LEFT OVERRIDE) at character 4"), or None when it is clean."""
    match = (_FORBIDDEN_MULTI_LINE if multiline else _FORBIDDEN_ONE_LINE).search(value)
    if match is None:
        return None
    char = match.group()
    name = unicodedata.name(char, "a control character")
    return f"U+{ord(char):04X} ({name}) at character {match.start()}"


def clean_text(
    value: str | None, field: str, *, multiline: bool = False, error: type[BadInputError] = BadInputError
) -> str | None:
    """`value` unchanged when clean; `error` (a BadInputError) naming `field` and the character otherwise."""
    if value is not None and (problem := unsafe_character(value, multiline=multiline)):
        lines = "tab and newline are the only control characters allowed" if multiline else "one line of text"
        raise error(f"{field}: contains {problem}; {lines}, no bidirectional overrides")
    return value


def check_strings(value: Any, field: str, *, multiline: bool = True) -> None:
    """Every string inside `value` (nested lists and objects too) clean, named by its path under `field`."""
    if isinstance(value, str):
        clean_text(value, field, multiline=multiline)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_strings(str(key), f"{field} (a key)", multiline=False)
            check_strings(item, f"{field}.{key}", multiline=multiline)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_strings(item, f"{field}[{index}]", multiline=multiline)


def _validator(multiline: bool) -> AfterValidator:
    def check(value: str) -> str:
        if problem := unsafe_character(value, multiline=multiline):
            raise ValueError(f"contains {problem}")
        return value

    return AfterValidator(check)


OneLineText = Annotated[str, _validator(False)]
"""A pydantic field of one line of clean text (a name)."""

MultiLineText = Annotated[str, _validator(True)]
"""A pydantic field of clean text that may hold tabs and newlines (a reason, an addendum)."""
