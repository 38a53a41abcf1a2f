"""Medication mentions: drug name, dose, route, frequency, and what is being done with it.

Works on a sentence already normalised to digits ("six hundred milligrams" -> "600 mg"). The
action ("start", "increase", "stop", "continue", "taking") comes from the verbs around the
name, so reconciliation can tell a new prescription from a drug the patient already takes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scribe.clinical.drugs import drug_name_pattern
from scribe.clinical.negation import is_negated

# Names that are also lab analytes or minerals: only a medication when a dose or a verb says so.
_AMBIGUOUS = {
    "testosterone",
    "progesterone",
    "estradiol",
    "magnesium",
    "zinc",
    "lithium",
    "potassium",
    "insulin",
    "heparin",
    "iron",
    "nicotine",
    "biotin",
    "melatonin",
    "thyroid",
    "vitamin D",
    "vitamin C",
    "vitamin B12",
    "vitamin D3",
    "glucagon",
    "epinephrine",
    "omega-3",
    "fish oil",
    "influenza vaccine",
    "tetanus vaccine",
    "oral contraceptive",
}
# The units a dose is said in (after `normalise`: "milligrams" is "mg"); also what marks a word as a unit.
DOSE_UNITS = r"mg|mcg|g|grams?|units?|iu|ml|mL|%|puffs?|tablets?|pills?|capsules?|drops?|sprays?|patch(?:es)?"
_DOSE = re.compile(rf"(\d+(?:\.\d+)?(?:\s*(?:to|-)\s*\d+(?:\.\d+)?)?)\s*({DOSE_UNITS})\b", re.I)
_ROUTES = [
    (r"\bby mouth\b|\borally\b|\boral\b|\bpo\b", "by mouth"),
    (
        r"\btopical(?:ly)?\b|\bcream\b|\bointment\b|"
        r"\bgel\b|\blotion\b",
        "topical",
    ),
    (r"\binhal(?:ed|er|ation)\b|\bnebuli[sz]er\b|\bpuffs?\b", "inhaled"),
    (r"\bsubcutaneous(?:ly)?\b|\bsub-q\b|\bsubq\b", "subcutaneous"),
    (r"\bintramuscular(?:ly)?\b|\bim injection\b", "intramuscular"),
    (r"\bintravenous(?:ly)?\b|\biv\b", "IV"),
    (r"\bnasal spray\b|\bintranasal\b|\bin (?:each|the) nostril\b", "intranasal"),
    (r"\beye drops?\b|\bin (?:each|the) eye\b", "ophthalmic"),
    (r"\bpatch\b|\btransdermal\b", "transdermal"),
    (r"\binjection\b|\bshot\b|\binject\b", "injection"),
    (r"\bsuppository\b|\brectal(?:ly)?\b", "rectal"),
]
_FREQUENCIES = [
    (r"\bfour times (?:a|per|each) day\b|\bfour times daily\b|\bqid\b", "four times daily"),
    (
        r"\bthree times (?:a|per|each) day\b|\bthree times daily\b|\b3 times (?:a|per) day\b|\b3 times daily\b|\btid\b",
        "three times daily",
    ),
    (
        r"\btwice (?:a|per|each) day\b|\btwice daily\b|"
        r"\b(?:two|2) times (?:a|per|each) day\b|\b(?:two|2) times daily\b|"
        r"\bbid\b|\bin the morning and (?:at night|in the evening)\b",
        "twice daily",
    ),
    (r"\bevery (\d+) (?:to \d+ )?hours\b|\bq(\d+)h?\b", "every {0} hours"),
    (r"\bevery (?:other|second) day\b", "every other day"),
    (r"\bonce (?:a|per) week\b|\bweekly\b|\bevery week\b|\bonce weekly\b", "weekly"),
    (r"\bonce (?:a|per) month\b|\bmonthly\b|\bevery month\b", "monthly"),
    (r"\bevery morning\b|\beach morning\b|\bin the morning\b|\bqam\b", "every morning"),
    (
        r"\bat night\b|\bat bedtime\b|\bnightly\b|\bbefore bed\b|\bqhs\b|\bin the evening\b|\bevery night\b",
        "at bedtime",
    ),
    (
        r"\bonce (?:a|per) day\b|\bonce daily\b|\bdaily\b|\ba day\b|\bper day\b|\bevery day\b|\beach day\b|\bqd\b",
        "daily",
    ),
]
_AS_NEEDED = re.compile(r"\bas needed\b|\bprn\b|\bwhen needed\b|\bif needed\b|\bas necessary\b", re.I)
_ACTIONS = [
    (
        "stop",
        re.compile(
            r"\b(?:stop|stopped|stopping|discontinue|discontinued|discontinuing|hold|holding|come off|"
            r"came off|get off|got off|quit|taper off|no longer (?:take|taking|on))\b",
            re.I,
        ),
    ),
    (
        "increase",
        re.compile(
            r"\b(?:increase|increased|increasing|raise|bump (?:it |that |you )?up|go up|double|"
            r"up the dose|higher dose|titrate up|titrating up|uptitrate)\b",
            re.I,
        ),
    ),
    (
        "decrease",
        re.compile(
            r"\b(?:decrease|decreased|decreasing|reduce|reduced|lower|cut back|cut down|wean|"
            r"taper|half the dose|lower dose|titrate down|titrating down|downtitrate)\b",
            re.I,
        ),
    ),
    ("adjust", re.compile(r"\b(?:titrate|titrating|titration of|adjust|adjusting|readjust)\b", re.I)),
    (
        "start",
        re.compile(
            r"\b(?:start|started|starting|prescribe|prescribed|prescribing|put you on|putting you on|"
            r"put her on|"
            r"put him on|begin|initiate|try you on|trial of|give you|giving you|send in|"
            r"sent in|new prescription|switch (?:you )?to|add)\b",
            re.I,
        ),
    ),
    ("continue", re.compile(r"\b(?:continue|continuing|keep (?:you )?on|stay on|remain on|refill|refilled)\b", re.I)),
    ("taking", re.compile(r"\b(?:take|takes|taking|took|on|using|use|uses|been on|i'm on)\b", re.I)),
]


DOSE_CHANGES = ("increase", "decrease", "adjust")  # actions that change the dose of a drug already taken
CHANGE_ACTIONS = ("start", *DOSE_CHANGES, "stop")  # actions that declare a change, not a continuation
ORDERS = (*CHANGE_ACTIONS, "continue")  # actions that are an order, not a mention


_ALLERGEN_BEFORE = re.compile(r"\ballerg(?:ic|y|ies) (?:reaction )?to (?:the |a |an |any )?$")
_FAR_DOSE = re.compile(
    r"^[^.;?!]{0,120}?\b(?:give you|take|of|at|dose)\s+(?:about\s+)?"
    r"(\d+(?:\.\d+)?\s*(?:mg|mcg|units?|iu))\b",
    re.I,
)


@dataclass(frozen=True)
class MedMention:
    name: str  # as spoken ("lasix")
    canonical: str  # generic ("furosemide")
    dose: str | None  # "20 mg"
    route: str | None
    frequency: str | None
    action: str | None  # start | increase | decrease | adjust | stop | continue | taking | None
    negated: bool
    start: int
    end: int  # end of the mention including its dose/frequency

    @property
    def display(self) -> str:
        """The drug as said, in the lexicon's casing when it is the same word ("vitamin D")."""
        return drug_display(self.name, self.canonical)

    def details(self) -> str:
        """Dose, route (unless oral or already in the name) and frequency: "20 mg daily"."""
        return drug_details(self.name, self.dose, self.route, self.frequency)


def frequency_of(window: str) -> str | None:
    """The frequency said in normalised text, as a label ("twice daily" for "BID" and "2 times a day")."""
    found = []
    for pattern, label in _FREQUENCIES:
        m = re.search(pattern, window, re.I)
        if m:
            groups = [g for g in m.groups() if g] if m.groups() else []
            found.append((m.start(), label.format(*groups) if groups else label))
    if not found:
        return "as needed" if _AS_NEEDED.search(window) else None
    label = min(found)[1]
    if _AS_NEEDED.search(window) and "as needed" not in label:
        label += " as needed"
    return label


def _action(before: str, after: str) -> str | None:
    for label, pattern in _ACTIONS:
        if pattern.search(before[-60:]) or (label in ("stop", "increase", "decrease") and pattern.search(after[:25])):
            return label
    return None


def find_medications(text: str) -> list[MedMention]:
    """Medication mentions in one normalised sentence, in order, with the attributes that follow each name."""
    pattern, lexicon = drug_name_pattern()
    hits = list(pattern.finditer(text))
    mentions: list[MedMention] = []
    for i, hit in enumerate(hits):
        before_hit = text[max(0, hit.start() - 30) : hit.start()]
        if _ALLERGEN_BEFORE.search(before_hit) or re.match(r"\s+allerg", text[hit.end() :]):
            continue  # an allergen, not a medication
        name = re.sub(r"[\s-]+", " ", hit.group(0).lower())
        canonical = lexicon.get(name) or lexicon.get(name.replace(" ", "-")) or name
        limit = hits[i + 1].start() if i + 1 < len(hits) else len(text)
        window = text[hit.end() : min(limit, hit.end() + 70)]
        cut = re.search(r"[.;?!](?=\s|$)|\b(?:but|because|since|for (?:your|her|his|the)|and i|and we|which)\b", window)
        if cut:
            window = window[: cut.start()]
        dose_match = _DOSE.search(window)
        if dose_match is None:  # "a low dose of prednisone ... i am going to give you 40 mg" (no other drug between)
            far = _FAR_DOSE.search(text[hit.end() : limit])
            dose_match = _DOSE.search(far.group(1)) if far else None
        before = text[max(0, (hits[i - 1].end() if i else 0)) : hit.start()]
        if dose_match is None:  # "20 milligrams of lasix"
            lead = re.search(
                r"(\d+(?:\.\d+)?\s*(?:mg|mcg|g|units?|iu|ml))\s+(?:of\s+)?(?:the\s+|your\s+)?$", before, re.I
            ) or re.search(r"(?<![\d/])(\d+(?:\.\d+)?)\s+(?:of\s+)?(?:the\s+|your\s+)?$", before)
            dose = lead.group(1) if lead else None
        else:
            # "increase lisinopril from 20 to 40 mg" / "lisinopril to 40 mg": the dose after "to" is the new one
            dose = dose_match.group(0)
            dose = re.sub(r"^(\d+(?:\.\d+)?)\s*(?:to|-)\s*(\d+(?:\.\d+)?)", r"\1 to \2", dose)
        dose = _normalise_dose(dose) if dose else None
        route = next((label for p, label in _ROUTES if re.search(p, window, re.I)), None)
        frequency = frequency_of(window)
        action = _action(before, window)
        if action is None and mentions and mentions[-1].end >= hit.start() - 6:
            action = mentions[-1].action  # a list: "on X 5 mg, Y 50 mg and Z" shares its verb
        negated = is_negated(text, hit.start(), hit.end())
        if canonical in _AMBIGUOUS and not (dose or action in ORDERS):
            continue
        end = hit.end() + (len(window.rstrip(" ,")) if (dose or route or frequency) else 0)
        mentions.append(MedMention(name, canonical, dose, route, frequency, action, negated, hit.start(), end))
    return mentions


def _normalise_dose(dose: str) -> str:
    dose = re.sub(r"\s+", " ", dose.strip())
    dose = re.sub(r"(\d)\s*(mg|mcg|g|ml|iu|%)$", r"\1 \2", dose, flags=re.I)
    dose = re.sub(r"\bgrams?\b", "g", dose, flags=re.I)
    dose = re.sub(r"\bml\b", "mL", dose, flags=re.I)
    dose = re.sub(r"\biu\b", "IU", dose, flags=re.I)
    return dose.replace(" %", "%")


_DOSE_VALUE = re.compile(r"(\d+(?:\.\d+)?)\s*(mcg|mg|g|grams?|units?|iu|ml|%)(?![a-z])", re.I)
_SCALE = {
    "mcg": (0.001, "mg"),
    "mg": (1.0, "mg"),
    "g": (1000.0, "mg"),
    "gram": (1000.0, "mg"),
    "grams": (1000.0, "mg"),
    "unit": (1.0, "unit"),
    "units": (1.0, "unit"),
    "iu": (1.0, "unit"),
    "ml": (1.0, "mL"),
    "%": (1.0, "%"),
}


def strengths(text: str | None) -> list[tuple[str, tuple[float, str]]]:
    """Every strength in normalised `text`, as written and as (value, unit) on one scale per kind (mass in mg,
    volume in mL, units, %), so "500 mg", "0.5 g" and "500000 mcg" compare equal."""
    out = []
    for m in _DOSE_VALUE.finditer(text or ""):
        factor, unit = _SCALE[m.group(2).lower()]
        out.append((m.group(0), (round(float(m.group(1)) * factor, 6), unit)))
    return out


def dose_quantity(text: str | None) -> tuple[float, str] | None:
    """The first strength in normalised `text` as (value, unit) (see `strengths`); None when none is given."""
    found = strengths(text)
    return found[0][1] if found else None


# Doses a day of each frequency label: "every 12 hours" and "twice daily" are the same schedule, and so are
# "daily", "every morning" and "at bedtime" (once a day, a time-of-day preference).
_PER_DAY = {
    "four times daily": 4,
    "three times daily": 3,
    "twice daily": 2,
    "every other day": 0.5,
    "weekly": 1 / 7,
    "monthly": 1 / 30,
    "every morning": 1,
    "at bedtime": 1,
    "daily": 1,
}


def doses_per_day(label: str | None) -> float | None:
    """How many doses a day a frequency label means (as needed: None, it has no schedule)."""
    if not label:
        return None
    label = label.removesuffix(" as needed")
    hours = re.fullmatch(r"every (\d+) hours", label)
    if hours:
        return 24 / int(hours.group(1)) if int(hours.group(1)) else None
    return _PER_DAY.get(label)


def frequency_spans(text: str) -> list[tuple[int, int]]:
    """Character ranges of `text` that say a frequency ("twice a day", "BID", "as needed")."""
    patterns = [re.compile(p, re.I) for p, _ in _FREQUENCIES] + [_AS_NEEDED]
    return [(m.start(), m.end()) for p in patterns for m in p.finditer(text)]


def drug_display(name: str, canonical: str, *, capitalise: bool = True) -> str:
    shown = canonical if canonical.lower() == name.lower() else name
    return shown[:1].upper() + shown[1:] if capitalise else shown


def drug_details(name: str, dose: str | None, route: str | None, frequency: str | None) -> str:
    route = None if route in (None, "by mouth") or (route and route in name.lower()) else route
    return " ".join(p for p in (dose, route, frequency) if p)
