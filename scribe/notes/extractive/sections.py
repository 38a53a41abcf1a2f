"""Where a sentence belongs: the encounter phase it was said in, and the cues it carries.

A visit runs history -> exam -> results -> assessment/plan, announced by the clinician
("let me examine you", "let's look at your x-ray", "so for your first problem"). The phase
decides how an ambiguous sentence is filed; explicit cues (a finding word in the exam, an
order verb in the plan) decide whether it is filed at all.
"""

from __future__ import annotations

import re

from scribe.notes.extractive.sentences import Sentence

HISTORY, EXAM, RESULTS, PLAN = "history", "exam", "results", "plan"

_EXAM_START = re.compile(
    r"\b(?:physical exam(?:ination)?|(?:do|perform) (?:a |an |my )?(?:quick )?(?:exam|examination)|examine you|"
    r"take a (?:quick )?look at (?:your|you|that|it|the)|listen to your (?:heart|lungs|chest)|on exam(?:ination)?|"
    r"on (?:your )?physical|let me (?:take a )?look|let me examine|on my exam|exam today|review of your vitals|"
    r"(?:your |the )?vital signs|(?:let me |i'm going to |i am going to )?(?:feel|press|push) on|"
    r"hop up on the table|lie back|listen to your)\b",
    re.I,
)
_RESULTS_START = re.compile(
    r"\b(?:results?|show me the|look(?:ing)? at (?:your|the|some of your) (?:x-?ray|labs?|lab work|blood work|mri|"
    r"ct|scan|imaging|echo|ekg|ultrasound|results?|a1c|images?|films?|report)|(?:review|reviewed|went over|go over) "
    r"(?:your|the) (?:x-?ray|labs?|lab work|blood work|mri|ct|scan|imaging|results?|tests?|echo|ekg|a1c)|"
    r"came back|x-?ray (?:shows|showed|was|is|did)|labs? (?:show|showed|were|are)|mri (?:shows|showed|was)|"
    r"imaging (?:shows|showed))\b",
    re.I,
)
_PLAN_START = re.compile(
    r"\b(?:assessment and plan|my (?:assessment|impression|plan)|(?:the|our) plan|impression is|"
    r"for your (?:first|second|third|last|next) (?:problem|issue)|(?:first|second|next|last) problem|"
    r"(?:my |the |your )?diagnosis|(?:so )?what i(?:'d| would)? (?:want|like) to do|here's what|here is what|"
    r"in terms of (?:your )?(?:plan|treatment)|(?:let's|let us) talk about (?:the )?(?:plan|treatment)|"
    r"(?:for|regarding|as for|from a) (?:your )?[a-z' -]{3,40} (?:standpoint|perspective)|"
    r"go over (?:my|the) (?:assessment|plan)|treatment (?:plan|options)|i think you have|you have (?:a|an)? ?"
    r"(?:sprain|strain|fracture|infection|tear))\b",
    re.I,
)

ASSISTANT_COMMAND = re.compile(r"^\W*(?:hey\W+)?(?:dragon|dax)\b|\b(?:hey|okay)\W+(?:dragon|dax)\b", re.I)
# A command to the dictation assistant that is also a clinical order ("hey dragon, order an x-ray"): kept.
ASSISTANT_ORDER = re.compile(
    r"\b(?:order|prescribe|refill|send|schedule|refer|start|increase|decrease|stop|"
    r"discontinue|continue)\b",
    re.I,
)
_GLUE = re.compile(
    r"^(?:(?:and|so|okay|ok|now|but|um+|uh+|hmm+|alright|all right|well|yeah|right|great|good|also|"
    r"then|just|oh)\b[ ,.]*)+"
)
QUESTION_START = re.compile(
    r"^(?:do|does|did|are|is|was|were|have|has|had|any|can|could|would|will|"
    r"how|what|when|where|which|who|why|tell me|talk to me|let us talk|let's talk|describe|anything|ever|is there|"
    r"are there|you know what)\b",
    re.I,
)
EXAM_FINDING = re.compile(
    r"\b(?:normal|abnormal|clear|tender(?:ness)?|swelling|swollen|murmur|rub|gallop|edema|positive|negative|sign|"
    r"appreciate|noted|range of motion|strength|reflex(?:es)?|pulses?|palpation|palpate|lesions?|rash|erythema|"
    r"bruis\w*|effusion|intact|decreased|increased|limited|warm|soft|distended|crackles|wheez\w*|rales|rhonchi|"
    r"regular|irregular|rhythm|bilateral(?:ly)?|symmetric|deformity|laxity|sensation|grip|flexion|extension|"
    r"tinel|phalen|mcmurray|lachman|drawer|straight leg|spurling|nodes?|lymphadenopathy|thyroid|bowel sounds|"
    r"guarding|rebound|capillary refill|pitting|ecchymosis|crepitus|atrophy|gait|neuro(?:logically)?|"
    r"alert|oriented|pupils|tympanic|pharynx|tonsils|exudate|congested|mass|nodule|fluid)\b",
    re.I,
)
EXAM_INSTRUCTION = re.compile(
    r"^(?:take a (?:deep )?breath|breathe|squeeze|push|pull|lie|lay|sit|stand|look (?:up|down|at me|left|right)|"
    r"follow my|open|say|relax|let me|i'm going to|i am going to|we will|we are going to|can you|could you|"
    r"i want to|i would like to|i'll|i will|just|bend|turn|raise|lift|kick|walk|hold|tell me|does (?:this|that)|"
    r"how about|point|show me|step|hop|go ahead)\b",
    re.I,
)
RESULT_CUE = re.compile(
    r"\b(?:x-?rays?|mri|ct|cat scan|scan|ultrasound|echo(?:cardiogram)?|ekg|ecg|emg|labs?|lab work|blood work|"
    r"a1c|hemoglobin|cholesterol|ldl|hdl|triglycerides|creatinine|kidney function|liver (?:function|enzymes)|"
    r"potassium|sodium|glucose|sugar|tsh|thyroid (?:levels?|function)|psa|urine|urinalysis|culture|biopsy|"
    r"white (?:blood )?count|platelets|ejection fraction|stress test|mammogram|colonoscopy|pathology|"
    r"results?|showed|shows|revealed|demonstrat\w+|came back|levels?|vitamin d level|alt|ast|cbc|bmp|cmp|"
    r"pulmonary function|spirometry|d-dimer|troponin|inr|bnp|fracture|dexa|bone density)\b",
    re.I,
)
IMAGING_CUE = re.compile(
    r"\b(?:x-?rays?|mri|ct|cat scan|ultrasound|mammogram|imaging|films?|dexa|bone density scan|"
    r"radiograph\w*|scan)\b",
    re.I,
)
PLAN_ACTION = re.compile(
    r"\b(?:order|ordering|prescribe|prescription|start|starting|continue|increase|decrease|stop|discontinue|refer|"
    r"referral|follow up|follow-up|followup|schedule|come back|see you|return|recommend|physical therapy|therapy|"
    r"ice|rest|elevate|avoid|call|check|repeat|get (?:a|an|some|you)|send|sending|give you|giving you|put you|"
    r"take|taking|monitor|continue|apply|wear|brace|splint|sling|injection|shot|surgery|procedure|consult|"
    r"diet|exercise|lose weight|weight loss|counsel\w*|educat\w*|advise\w*|should|need to|want you|would like you|"
    r"plan|labs?|blood work|x-?ray|mri|ct|ultrasound|echo\w*|ekg|test|testing|vaccine|mammogram|colonoscopy|"
    r"adjust|switch|change|trial|try|weeks?|months?|days?)\b",
    re.I,
)
DIAGNOSIS_CUE = re.compile(
    r"\b(?:diagnosis|diagnosed|consistent with|impression|you have (?:a|an|some)|it looks like|looks like|i think|"
    r"likely|suspect|sounds like|probably|most likely|is due to|caused by|secondary to|exacerbation|controlled|"
    r"uncontrolled|stable|improv\w+|worse|worsening|better|well controlled|doing (?:well|better|great))\b",
    re.I,
)


def encounter_phases(sentences: list[Sentence], norms: list[str]) -> list[str]:
    """The phase of each sentence, switched by clinician cues; the plan phase is left only for an exam."""
    phases: list[str] = []
    phase = HISTORY
    for sentence, norm in zip(sentences, norms, strict=True):
        if sentence.role != "patient":
            if _PLAN_START.search(norm) and phase != PLAN:
                phase = PLAN
            elif _EXAM_START.search(norm) and phase in (HISTORY, RESULTS, PLAN) and not QUESTION_START.match(norm):
                if phase != PLAN or re.search(r"physical exam|examine you|on exam", norm):
                    phase = EXAM
            elif _RESULTS_START.search(norm) and phase in (HISTORY, EXAM) and not QUESTION_START.match(norm):
                phase = RESULTS
        phases.append(phase)
    return phases


_TAG_QUESTION = re.compile(
    r"[,\s]*(?:okay|ok|all right|alright|right|you know|does that sound (?:good|okay|ok|like a "
    r"plan|like a good plan)|sound good|is that okay|fair enough|yeah|good|correct|"
    r"does that make sense|how does that sound|is that right|deal|sounds good)\s*\?\s*$",
    re.I,
)


def is_question(norm: str, raw: str) -> bool:
    """A real question: ends with "?" (a trailing "okay?" does not count) or opens like one."""
    raw = _TAG_QUESTION.sub("", raw)
    norm = _GLUE.sub("", _TAG_QUESTION.sub("", norm))
    return raw.rstrip().endswith("?") or bool(QUESTION_START.match(norm))


_INNER_QUESTION = re.compile(
    r"\b(?:do|did|does|are|were|have|has|can|could|would|will|is) "
    r"(?:you|it|there|she|he|that)\b"
    r"|\b(?:how|what|when|where|why) (?:is|are|do|did|does|was|were|about|kind)\b"
)


def asks_something(norm: str) -> bool:
    """A question hidden inside unpunctuated speech ("it started a week ago has it been constant")."""
    return bool(_INNER_QUESTION.search(norm))
