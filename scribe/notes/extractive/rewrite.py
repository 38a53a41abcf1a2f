"""Spoken sentences rewritten as note sentences: no fillers, third person, digits and units.

The rewrite only removes words or swaps person and number forms; it never adds a clinical
fact, so the cited sentence still backs every drug name, number and negation in the result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scribe.clinical.normalise import detokenize, expand_contractions, units_and_numbers


@dataclass(frozen=True)
class Pronouns:
    subject: str  # "she", "he", or "the patient"
    object: str
    possessive: str
    reflexive: str

    @classmethod
    def for_gender(cls, gender: str | None) -> Pronouns:
        if gender == "female":
            return cls("she", "her", "her", "herself")
        if gender == "male":
            return cls("he", "him", "his", "himself")
        return cls("the patient", "the patient", "their", "themselves")


_FILLER_PHRASES = re.compile(
    r"\b(?:you know|i mean|kind of|sort of|you see|let us see|let me see|i guess|if you will|so to speak|"
    r"as well(?= [.,?!]|$)|or something(?: like that)?|and stuff(?: like that)?|and everything|"
    r"uh-huh|mm-hmm|mhm|hmm+|um+|uh+|er+|ah+|oh+|huh|like,)(?=\W|$)",
    re.I,
)
# Words dropped at the start of a sentence (discourse glue, not content).
_LEADING = set(
    "that like okay ok alright so well yeah yes yep now right and but also great good perfect sure all then just "
    "actually anyway hey oh fine gotcha wow really absolutely definitely correct exactly cool nice awesome thanks "
    "thank hi hello sorry excuse listen look basically".split()
)
_LEADING_PAIRS = {
    ("all", "right"),
    ("thank", "you"),
    ("excuse", "me"),
    ("i", "see"),
    ("i", "think"),
    ("i", "believe"),
    ("i", "guess"),
    ("go", "ahead"),
    ("and", "then"),
    ("i", "know"),
    ("i", "understand"),
    ("i", "heard"),
    ("i", "hear"),
    ("it", "sounds"),
    ("it", "seems"),
    ("sounds", "like"),
    ("seems", "like"),
    ("that", "is"),
    ("like", "i"),
    ("looks", "like"),
}
_TRAILING = set(
    "and or but so the a an to that with of is it like in for okay then because if my your on at as just um uh i "
    "we you are was there this some any from where which when what".split()
)
_ADVERBS = set(
    "just also still really usually always never actually definitely only even sometimes often already recently "
    "mostly generally probably normally typically occasionally rarely kind sort currently finally honestly now "
    "then again personally constantly certainly totally".split()
)
_MODALS = set("can could would should will might must may did had was shall cannot used".split())
_IRREGULAR_PAST = set(
    "got went took felt saw thought said told made came began fell broke ran gave found knew left lost kept slept "
    "woke ate drank wore heard put quit sat stood caught bought brought spent sent hit cut let set became forgot "
    "drove rode threw wrote been hurt twisted met paid read meant led fed bled shook tore swam understood won "
    "held slid stuck struck dug flew grew hid lay laid rose sang sank spoke stole swore woken done gone".split()
)
_OBJECT_BEFORE = set(
    "to for with at on about from of by give gave tell told see start put send help let get want need ask show "
    "call refer prescribe keep check examine bring thank like into onto towards against over under around without "
    "than have had bother bothering bothers make made hurt taking sending giving placing place started seeing "
    "getting set schedule scheduling move switch switching recommend advise encourage remind treat treating".split()
)
_TO_BE_SUBJECT = {"am": "is", "are": "is", "were": "was", "have": "has", "do": "does", "was": "was"}

_WORD_RE = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|[A-Za-z0-9]+(?:['’.+/-][A-Za-z0-9]+)*%?|[^\sA-Za-z0-9]")
_ACRONYMS = {
    "mri": "MRI",
    "ct": "CT",
    "ekg": "EKG",
    "ecg": "ECG",
    "emg": "EMG",
    "cbc": "CBC",
    "bmp": "BMP",
    "cmp": "CMP",
    "tsh": "TSH",
    "psa": "PSA",
    "hba1c": "HbA1c",
    "a1c": "A1c",
    "ldl": "LDL",
    "hdl": "HDL",
    "copd": "COPD",
    "gerd": "GERD",
    "uti": "UTI",
    "er": "ER",
    "icu": "ICU",
    "iv": "IV",
    "bp": "BP",
    "acl": "ACL",
    "mcl": "MCL",
    "nsaids": "NSAIDs",
    "nsaid": "NSAID",
    "ibs": "IBS",
    "adhd": "ADHD",
    "ptsd": "PTSD",
    "covid": "COVID",
    "covid-19": "COVID-19",
    "hiv": "HIV",
    "ent": "ENT",
    "ed": "ED",
    "pt": "PT",
    "ot": "OT",
    "cpap": "CPAP",
    "ekgs": "EKGs",
    "afib": "AFib",
    "chf": "CHF",
    "dvt": "DVT",
    "bph": "BPH",
    "alt": "ALT",
    "ast": "AST",
    "bmi": "BMI",
    "ua": "UA",
    "gi": "GI",
    "mg": "mg",
    "mcg": "mcg",
    "ml": "mL",
    "iu": "IU",
    "prn": "PRN",
    "otc": "OTC",
    "pcp": "PCP",
    "nsaid's": "NSAIDs",
    "ct's": "CTs",
    "mri's": "MRIs",
    "hpi": "HPI",
    "ros": "ROS",
    "ef": "EF",
    "egd": "EGD",
    "ppi": "PPI",
}


def _tokens(text: str) -> list[str]:
    return _WORD_RE.findall(text)


def _join(tokens: list[str]) -> str:
    text = " ".join(tokens)
    text = re.sub(r"\s+([.,?!;:%])", r"\1", text)
    text = re.sub(r"([$(]) ", r"\1", text)
    text = re.sub(r" ([)])", r"\1", text)
    return text


def strip_fillers(text: str) -> str:
    """Drop hesitations, stutters, repeated words and leading discourse glue; keep every content word."""
    text = re.sub(r"\b(?:hey|okay)?\W*\b(?:dragon|dax)\b\W*", " ", text, flags=re.I)
    text = _FILLER_PHRASES.sub(" ", text)
    text = re.sub(r"\b\w+-(?=\s|$)", " ", text)  # cut-off words: "sh- shows"
    text = re.sub(r"\b(\w+ \w+)(?: \1\b)+", r"\1", text, flags=re.I)  # "it is it is"
    text = re.sub(r"\.\.\.|…", " ", text)
    tokens = _tokens(text)
    out: list[str] = []
    for tok in tokens:
        low = tok.lower()
        if out and low == out[-1].lower() and low.isalpha() and low not in {"very", "no", "had", "that"}:
            continue  # "i i i", "the the"
        if out and low == "," and out[-1] == ",":
            continue
        out.append(tok)
    # "your your knee" after other removals; pairs "a a" handled above; now leading glue
    changed = True
    while changed and out:
        changed = False
        while out and out[0] in {",", ".", "-", ";", ":"}:
            out.pop(0)
            changed = True
        if len(out) >= 2 and (out[0].lower(), out[1].lower()) in _LEADING_PAIRS:
            del out[:2]
            changed = True
        elif out and out[0].lower() in _LEADING and len(out) > 1:
            out.pop(0)
            changed = True
    while out and (out[-1].lower() in _TRAILING or out[-1] in {",", "-", ";", ":"}):
        out.pop()
    return _join(out)


def _third_singular(verb: str) -> str:
    low = verb.lower()
    if low in _MODALS or low in _IRREGULAR_PAST or low.endswith("ed") or low.endswith("ing"):
        return verb
    if low in _TO_BE_SUBJECT:
        return _TO_BE_SUBJECT[low]
    if low == "go":
        return "goes"
    if re.search(r"(s|sh|ch|x|z|o)$", low):
        return verb + "es"
    if re.search(r"[^aeiou]y$", low):
        return verb[:-1] + "ies"
    return verb + "s"


_AUX_AFTER_SUBJECT = set(
    "am are were was have had do did will would can could should might must may need want feel think know get got "
    "seem seemed look looked said mentioned told noticed take took still also just never really usually already "
    "go went cannot".split()
)
_SUBJECT_AFTER = {
    "",
    ",",
    ".",
    "and",
    "but",
    "so",
    "because",
    "if",
    "when",
    "that",
    "since",
    "or",
    "until",
    "unless",
    "while",
    "as",
    "think",
    "know",
    "hope",
    "guess",
    "sure",
    "mean",
    "where",
    "how",
    "what",
    "why",
    "whether",
    "then",
    "now",
    "once",
    "before",
    "after",
    "maybe",
    "also",
    "okay",
    "well",
    "which",
    "who",
    "though",
    "although",
    "yes",
    "no",
    "like",
    "whenever",
}
_NOT_VERBS = set(
    "and or but to the a an in on at all both too alone there here that who which guys yourself myself know see , "
    ". with for of not so as if when back again today now my your his her their our its me him them us it this "
    "these those some any no every i you he she we they from about after before because since like than then just "
    "yes yeah okay doctor doctors".split()
)


def _swap_person(
    tokens: list[str], me: set[str], my: set[str], myself: set[str], subject_words: set[str], pronouns: Pronouns
) -> list[str]:
    """Replace a speaker's self-reference (`me`, `my`, subject words) by third-person forms with verb agreement.

    A word in both `me` and `subject_words` ("you") is a subject when an auxiliary or verb follows it or when it
    opens a clause; otherwise it is an object ("start you on").
    """
    out: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        low = tok.lower()
        prev = out[-1].lower() if out else ""
        nxt = tokens[i + 1].lower() if i + 1 < len(tokens) else ""
        is_subject = low in subject_words and (
            low not in me
            or nxt in _AUX_AFTER_SUBJECT
            or (prev in _SUBJECT_AFTER and nxt not in _NOT_VERBS and nxt != "")
        )
        if is_subject:
            out.append(pronouns.subject)
            j = i + 1
            while j < len(tokens) and tokens[j].lower() in _ADVERBS:
                out.append(tokens[j])
                j += 1
            if j < len(tokens) and tokens[j].isalpha() and tokens[j].lower() not in _NOT_VERBS:
                out.append(_third_singular(tokens[j]))
                j += 1
            i = j
            continue
        if low in me:
            out.append(pronouns.object)
        elif low in my:
            out.append(pronouns.possessive)
        elif low in myself:
            out.append(pronouns.reflexive)
        else:
            out.append(tok)
        i += 1
    return out


def patient_to_third_person(text: str, pronouns: Pronouns) -> str:
    """ "i have been having headaches" -> "she has been having headaches" (text already expanded)."""
    tokens = _tokens(text)
    return _join(_swap_person(tokens, {"me"}, {"my"}, {"myself"}, {"i"}, pronouns))


def addressee_to_third_person(text: str, pronouns: Pronouns) -> str:
    """A clinician's "you"/"your" about the patient -> third person ("you have a murmur" -> "she has a murmur")."""
    tokens = _tokens(text)
    return _join(_swap_person(tokens, {"you"}, {"your"}, {"yourself"}, {"you"}, pronouns))


_PLAN_VOICE = [
    (r"\b(?:i|we) (?:would like|want|need) (?:for )?you to\b", "I advised {obj} to"),
    (r"\bi am going to (?:go ahead and )?have you\b", "{subj} will"),
    (
        r"\b(?:i|we) (?:would like to|want to|am going to|are going to|will|can|would|need to|have to|plan to|"
        r"are gonna|should) (?:go ahead and |just |also |definitely |probably |quickly )?",
        "we will ",
    ),
    (r"\blet us (?:go ahead and )?", "we will "),
    (r"\bgo ahead and ", ""),
    (r"\bi (?:would )?recommend (?:that )?you\b", "I recommend that {subj}"),
]
_PLAN_VOICE_RE = [(re.compile(p, re.I), r) for p, r in _PLAN_VOICE]


def clinician_plan_voice(text: str, pronouns: Pronouns) -> str:
    """ "i'm gonna go ahead and order an x-ray" -> "we will order an x-ray"; "i want you to" -> "I advised her to"."""
    for pattern, repl in _PLAN_VOICE_RE:
        text = pattern.sub(repl.format(obj=pronouns.object, subj=pronouns.subject), text)
    return text


def finish(text: str) -> str:
    """Capitalise, fix known acronyms, and end with exactly one full stop."""
    tokens = _tokens(text)
    tokens = [_ACRONYMS.get(t.lower(), t) if t.lower() in _ACRONYMS else t for t in tokens]
    text = _join(tokens).strip(" ,;:-")
    text = re.sub(r"\bi\b", "I", text)
    text = re.sub(r"\s*[.?!]+$", "", text)
    if not text:
        return ""
    return text[0].upper() + text[1:] + "."


def note_style(text: str, role: str, pronouns: Pronouns, *, plan: bool = False) -> str:
    """One spoken sentence as a note sentence, or "" when nothing but filler remains."""
    text = expand_contractions(detokenize(text))
    text = strip_fillers(text)
    if role == "patient":
        text = patient_to_third_person(text, pronouns)
    else:
        if plan:
            text = clinician_plan_voice(text, pronouns)
        text = addressee_to_third_person(text, pronouns)
    text = strip_fillers(text)
    text = units_and_numbers(text)
    return finish(text)
