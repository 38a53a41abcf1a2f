"""Vital signs read out in a dictation or a conversation: BP, heart rate, RR, temperature, SpO2, weight.

Patterns accept how they are spoken ("148 over 92", "pulse of 72", "sat is 97 percent") after
spoken numbers have been turned to digits; each hit keeps its place for the evidence link.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUM = r"(\d{1,3}(?:\.\d)?)"
# Up to eight words between the name and the value: "blood pressure looks pretty good today at 128/72".
_GAP = r"(?:'s)?(?:\s+[a-z'%-]+){0,8}?\s*:?\s*"
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "Blood pressure",
        re.compile(r"\b(?:blood pressure|bp|b\.p\.)" + _GAP + r"(\d{2,3})\s*(?:over|/)\s*(\d{2,3})\b", re.I),
    ),
    (
        "Heart rate",
        re.compile(r"\b(?:heart rate|pulse(?: rate)?|hr)" + _GAP + _NUM + r"(?:\s*(?:beats per minute|bpm))?", re.I),
    ),
    ("Respiratory rate", re.compile(r"\b(?:respiratory rate|respirations|resp rate|rr)" + _GAP + _NUM, re.I)),
    (
        "Temperature",
        re.compile(
            r"\b(?:temperature|temp|fever of|febrile to)" + _GAP + r"(\d{2,3}(?:\.\d)?)\s*(?:degrees)?\s*"
            r"(fahrenheit|celsius|f|c)?\b",
            re.I,
        ),
    ),
    (
        "Oxygen saturation",
        re.compile(
            r"\b(?:oxygen saturation|o2 sat(?:uration)?|oxygen sat|sats?|spo2|pulse ox|"
            r"oxygen level|oxygenation|pulse oximetry|saturating|satting)" + _GAP + _NUM + r"\s*(?:%|percent)?",
            re.I,
        ),
    ),
    (
        "Weight",
        re.compile(
            r"\b(?:weight|weighs|weighing|weighed)" + _GAP + r"(\d{2,3}(?:\.\d)?)\s*"
            r"(pounds|lbs|lb|kilograms|kg|kilos)\b",
            re.I,
        ),
    ),
]


@dataclass(frozen=True)
class Vital:
    name: str
    value: str  # "148/92", "72", "98.6"
    unit: str  # "mmHg", "bpm", "°F", "%", "lbs", "kg"
    start: int  # offsets into the searched text with hedge words blanked (for ordering, not for citing)
    end: int

    def text(self) -> str:
        return f"{self.name}: {self.value} {self.unit}".rstrip() + "."


def _plausible(name: str, numbers: list[float]) -> bool:
    if name == "Blood pressure":
        return 60 <= numbers[0] <= 260 and 30 <= numbers[1] <= 160 and numbers[0] > numbers[1]
    if name == "Heart rate":
        return 25 <= numbers[0] <= 250
    if name == "Respiratory rate":
        return 6 <= numbers[0] <= 60
    if name == "Temperature":
        return 34 <= numbers[0] <= 43 or 93 <= numbers[0] <= 110
    if name == "Oxygen saturation":
        return 50 <= numbers[0] <= 100
    return 2 <= numbers[0] <= 700


_HEDGES = re.compile(r"\b(?:like|um+|uh+|you know|kind of|sort of|roughly|approximately)\b", re.I)
_BARE_BP = re.compile(r"(?<![\d/.])(\d{2,3})/(\d{2,3})(?![\d/])")


def find_vitals(text: str) -> list[Vital]:
    """Every plausible vital sign in `text` (numbers already as digits), in reading order.

    A bare "133/70" counts as a blood pressure only in a sentence that talks about blood pressure.
    """
    text = _HEDGES.sub(" ", text)  # "at like about like 80": hedges are not part of the reading
    found: list[Vital] = []
    if re.search(r"\b(?:blood pressure|bp)\b", text, re.I):
        for m in _BARE_BP.finditer(text):
            if _plausible("Blood pressure", [float(m.group(1)), float(m.group(2))]):
                found.append(Vital("Blood pressure", f"{m.group(1)}/{m.group(2)}", "mmHg", m.start(), m.end()))
    for name, pattern in _PATTERNS:
        for m in pattern.finditer(text):
            numbers = [float(g) for g in m.groups() if g and re.fullmatch(r"\d+(?:\.\d)?", g)]
            if not numbers or not _plausible(name, numbers):
                continue
            if name == "Blood pressure" and any(
                v.name == name and v.start <= m.end() - 1 < v.end + 40 and v.value == f"{m.group(1)}/{m.group(2)}"
                for v in found
            ):
                continue
            if name == "Blood pressure":
                value, unit = f"{m.group(1)}/{m.group(2)}", "mmHg"
            elif name == "Temperature":
                scale = (m.group(2) or "").lower()
                unit = "°C" if scale.startswith("c") or numbers[0] < 50 else "°F"
                value = m.group(1)
            elif name == "Weight":
                value, unit = m.group(1), "kg" if m.group(2).lower().startswith("k") else "lbs"
            else:
                value = next(g for g in m.groups() if g)
                unit = {"Heart rate": "bpm", "Respiratory rate": "breaths/min", "Oxygen saturation": "%"}[name]
            found.append(Vital(name, value, unit, m.start(), m.end()))
    return sorted(found, key=lambda v: v.start)
