"""`scribe bench notes`: how good and how fast a note engine is on transcripts with reference notes.

Sources: an ACI-BENCH CSV (`dialogue`, `note`, optional `encounter_id`, `dataset`) or a directory
of transcripts (`NAME.txt` one turn a line, or Transcript `NAME.json`) with, when present, a
reference note `NAME.note.txt` and prior records `NAME.bundle.json`.

Per item: drafting latency; ROUGE-1/2/L F1 (x100, Porter stemming) of the whole note and of four
sections (reference headings mapped as in `SECTION_HEADINGS`); recall of medications, doses,
vital signs, allergies and problems; the share of statements with evidence that are not
`unsupported`; evidence spans that do not fit their segment; negation conflicts.

Fact matching rules (the same for every engine):
- Facts come from the reference note, or from the transcript itself when there is no reference
  note (then "recall" means: what was said reached the note).
- Medications: drug names of the drug lexicon plus any "<word> <number> mg|mcg|units|
  IU|mL|g" in the text. A drug is recalled when a statement names it (as said, or the same
  generic); its dose is recalled when one statement names the drug and the same number.
- Vital signs: BP, heart rate, RR, temperature, SpO2, weight read with
  `scribe.clinical.vitals.find_vitals`; recalled when a statement contains the value ("148/92", "72").
- Allergies: substances after "allergic to" / before "allergy", and "no known allergies";
  recalled when an allergy statement names the substance (or says "no known ... allergies").
- Problems: vocabulary problems (not negated) in the reference's assessment/plan sections;
  recalled when an assessment or plan statement names the problem or carries an ICD-10 code of
  the same category.
The vocabularies are those of `scribe.clinical`, which the extractive engine drafts with, so recall
is measured against what those rules can read; numbers for other engines are comparable with each
other, not absolute.
- Each kind is reported twice: recall of all reference facts, and recall of the facts the
  transcript states (the drug and dose number, or the vital's value, appear in the transcript).
  Reference notes also draw on the chart (vitals "from the EHR"), which no transcript engine can
  recall; the table shows the second figure.
- Negation conflicts: a symptom stated as present in the chief complaint, history or a "Reports"
  line while every cited span negates it ("denies chest pain" -> "chest pain").
"""

from __future__ import annotations

import csv
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from scribe.clinical.drugs import canonical_drug
from scribe.clinical.findings import find_allergies, find_problems, find_symptoms
from scribe.clinical.medications import find_medications
from scribe.clinical.normalise import detokenize, expand_contractions, units_and_numbers
from scribe.clinical.vitals import find_vitals
from scribe.errors import BadInputError
from scribe.notes.base import NoteEngine
from scribe.notes.inputs import NoteInput, load_transcript_file, transcript_from_text
from scribe.notes.schema import SegmentEvidence, SOAPNote, Statement
from scribe.records import PatientContext, load_records
from scribe.transcript import Transcript

# Our sections -> reference headings (upper case, as ACI-BENCH writes them); a table, packed by hand.
# fmt: off
SECTION_HEADINGS: dict[str, tuple[str, ...]] = {
    "subjective": ("CHIEF COMPLAINT", "HISTORY OF PRESENT ILLNESS", "HPI", "REVIEW OF SYSTEMS", "ROS",
        "PAST HISTORY", "MEDICAL HISTORY", "PAST MEDICAL HISTORY", "SURGICAL HISTORY", "PAST SURGICAL HISTORY",
        "SOCIAL HISTORY", "FAMILY HISTORY", "CURRENT MEDICATIONS", "MEDICATIONS", "ALLERGIES", "HISTORY",
        "SUBJECTIVE"),
    "objective_exam": ("PHYSICAL EXAMINATION", "PHYSICAL EXAM", "EXAM", "EXAMINATION", "VITALS", "VITALS REVIEWED",
        "VITAL SIGNS", "OBJECTIVE"),
    "objective_results": ("RESULTS", "IMAGING", "LABS", "LABORATORY", "DIAGNOSTICS", "STUDIES", "FINDINGS"),
    "assessment_and_plan": ("ASSESSMENT AND PLAN", "ASSESSMENT", "PLAN", "IMPRESSION", "IMPRESSION AND PLAN",
        "INSTRUCTIONS", "PATIENT INSTRUCTIONS", "PROCEDURE", "SUMMARY PLAN"),
}
# fmt: on
NOTE_SECTIONS: dict[str, tuple[str, ...]] = {
    "subjective": ("subjective.chief_complaint", "subjective.hpi", "subjective.ros", "medications", "allergies"),
    "objective_exam": ("objective.vitals", "objective.exam"),
    "objective_results": ("objective.results", "objective.imaging"),
    "assessment_and_plan": ("assessment", "plan"),
}
_HEADING = re.compile(r"^[A-Z][A-Z &/,()-]{1,48}$")
_DOSED = re.compile(r"\b([A-Za-z][A-Za-z-]{2,})\s+(\d+(?:\.\d+)?)\s*(mg|mcg|units?|IU|mL|g)\b", re.I)
_NOT_DRUGS = set(
    "hdl ldl cholesterol triglycerides glucose sugar sugars level levels a1c potassium sodium creatinine calcium "
    "protein iron ferritin vitamin b12 weight fat fiber carbs caffeine salt water fluids units cypionate of to "
    "and the with from at by for is was dose take taking about approximately increase decrease total daily were "
    "additional than over under around only each another extra up down or".split()
)


@dataclass(frozen=True)
class NoteItem:
    name: str
    transcript: Transcript
    reference: str | None  # the reference note, if any
    context: PatientContext | None
    group: str | None = None  # ACI-BENCH `dataset` column


def load_items(source: Path) -> list[NoteItem]:
    """Items from an ACI-BENCH CSV or a transcript directory; a bad source is a BadInputError."""
    if source.is_dir():
        return _directory_items(source)
    if source.suffix.lower() == ".csv" and source.is_file():
        return _csv_items(source)
    raise BadInputError(f"{source}: expected an ACI-BENCH .csv file or a directory of transcripts")


def _csv_items(path: Path) -> list[NoteItem]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "dialogue" not in reader.fieldnames:
            raise BadInputError(
                f"{path}: no `dialogue` column (ACI-BENCH CSVs have dataset, encounter_id, dialogue, note)"
            )
        items = []
        for n, row in enumerate(reader, start=1):
            if not (row.get("dialogue") or "").strip():
                continue
            name = row.get("encounter_id") or f"row{n}"
            items.append(
                NoteItem(
                    name,
                    transcript_from_text(row["dialogue"]),
                    row.get("note") or None,
                    None,
                    row.get("dataset") or None,
                )
            )
    if not items:
        raise BadInputError(f"{path}: no rows with a dialogue")
    return items


def _directory_items(directory: Path) -> list[NoteItem]:
    items = []
    for path in sorted(directory.iterdir()):
        name = path.name
        if not path.is_file() or name.endswith((".note.txt", ".bundle.json")):
            continue
        if not name.endswith((".txt", ".json")):
            continue
        stem = name.rsplit(".", 1)[0]
        note = directory / f"{stem}.note.txt"
        bundle = directory / f"{stem}.bundle.json"
        reference = note.read_text(encoding="utf-8") if note.is_file() else None
        items.append(
            NoteItem(stem, load_transcript_file(path), reference, load_records(bundle) if bundle.is_file() else None)
        )
    if not items:
        raise BadInputError(f"{directory}: no transcript (.txt or Transcript .json) found")
    return items


# ---------------------------------------------------------------------------------------------- references


def reference_sections(note: str) -> dict[str, str]:
    """Reference note text per benchmark section, by its upper-case headings; unheaded text goes nowhere."""
    lookup = {h: key for key, headings in SECTION_HEADINGS.items() for h in headings}
    out: dict[str, list[str]] = {key: [] for key in SECTION_HEADINGS}
    current: str | None = None
    for line in note.splitlines():
        stripped = line.strip()
        if stripped and _HEADING.match(stripped) and len(stripped.split()) <= 6:
            current = lookup.get(stripped.rstrip(":"))
            continue
        if current and stripped:
            out[current].append(stripped)
    return {key: "\n".join(lines) for key, lines in out.items()}


def _normalised(text: str) -> str:
    return units_and_numbers(expand_contractions(detokenize(text))).lower()


def reference_facts(text: str, assessment_text: str | None = None) -> dict[str, list[tuple[str, ...]]]:
    """Facts a note should carry, read from a reference note (or a transcript) with the documented rules."""
    norm = _normalised(text)
    meds: dict[str, tuple[str, ...]] = {}
    for mention in find_medications(norm):
        if mention.negated and mention.action != "stop":
            continue
        key = canonical_drug(mention.canonical)
        dose = re.match(r"\d+(?:\.\d+)?", mention.dose.split(" to ")[-1]) if mention.dose else None
        if key not in meds or (dose and len(meds[key]) < 3):
            meds[key] = (key, mention.name, dose.group(0) if dose else "")
    for m in _DOSED.finditer(norm):
        word = m.group(1).lower()
        key = canonical_drug(word)
        if word in _NOT_DRUGS or key in meds:
            continue
        meds[key] = (key, word, m.group(2))
    vitals = {(v.name, v.value) for v in find_vitals(norm)}
    allergies = {(t.label,) for t in find_allergies(norm) if not t.negated}
    problem_norm = _normalised(assessment_text) if assessment_text else norm
    problems = {(t.label, t.code, t.phrase) for t in find_problems(problem_norm) if not t.negated}
    return {
        "medications": sorted(meds.values()),
        "vitals": sorted(vitals),
        "allergies": sorted(allergies),
        "problems": sorted(problems),
    }


# ---------------------------------------------------------------------------------------------- matching


def _statements(note: SOAPNote, paths: tuple[str, ...] | None = None) -> list[Statement]:
    return [s for path, items in note.sections() if paths is None or path in paths for s in items]


def _mentions_drug(text: str, key: str, spoken: str) -> bool:
    low = text.lower()
    if any(re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", low) for name in (spoken, key)):
        return True
    return any(canonical_drug(m.canonical) == key for m in find_medications(_normalised(text)))


def _stated(kind: str, fact: tuple[str, ...], transcript_norm: str) -> bool:
    """Whether the transcript says the fact at all (facts the reference took from elsewhere cannot be recalled)."""
    if kind == "medications":
        key, spoken, dose = fact
        named = spoken in transcript_norm or key in transcript_norm
        return named and (not dose or re.search(rf"(?<![\d.]){re.escape(dose)}(?![\d])", transcript_norm) is not None)
    if kind == "vitals":
        return re.search(rf"(?<![\d.]){re.escape(fact[1])}(?![\d])", transcript_norm) is not None
    if kind == "allergies":
        return fact[0] == "NKDA" and "allerg" in transcript_norm or fact[0].split()[0] in transcript_norm
    return fact[2] in transcript_norm


def match_facts(
    facts: dict[str, list[tuple[str, ...]]], note: SOAPNote, transcript_norm: str | None = None
) -> dict[str, list[int]]:
    """[found, total, found among stated, stated] per fact kind, by the rules in the module docstring.

    "Stated" facts are those the transcript says (all of them when no transcript is given).
    """
    everything = [s.text for s in _statements(note)]
    texts_norm = [_normalised(t) for t in everything]
    allergy_texts = [_normalised(s.text) for s in note.allergies]
    ap = note.assessment + note.plan
    ap_texts = [_normalised(s.text) for s in ap]
    codes = {s.icd10.split(".")[0] for s in ap if s.icd10}

    def found(kind: str, fact: tuple[str, ...]) -> bool:
        if kind in ("medications", "medication_doses"):
            key, spoken, dose = fact
            hits = [t for t in everything if _mentions_drug(t, key, spoken)]
            if kind == "medications":
                return bool(hits)
            return any(re.search(rf"(?<![\d.]){re.escape(dose)}(?![\d])", _normalised(t)) for t in hits)
        if kind == "vitals":
            pattern = re.compile(rf"(?<![\d.]){re.escape(fact[1])}(?![\d])")
            return any(pattern.search(t) for t in texts_norm)
        if kind == "allergies":
            if fact[0] == "NKDA":
                return any(re.search(r"no known|nkda|no (?:drug )?allergies", t) for t in allergy_texts)
            return any(fact[0].split()[0] in t for t in allergy_texts)
        label, code, phrase = fact
        return (bool(code) and code.split(".")[0] in codes) or any(phrase in t or label.lower() in t for t in ap_texts)

    kinds = {
        "medications": facts["medications"],
        "medication_doses": [f for f in facts["medications"] if f[2]],
        "vitals": facts["vitals"],
        "allergies": facts["allergies"],
        "problems": facts["problems"],
    }
    out: dict[str, list[int]] = {}
    for kind, items in kinds.items():
        hit = [found(kind, f) for f in items]
        said = [
            transcript_norm is None
            or _stated("medications" if kind == "medication_doses" else kind, f, transcript_norm)
            for f in items
        ]
        out[kind] = [sum(hit), len(items), sum(h and s for h, s in zip(hit, said, strict=True)), sum(said)]
    return out


# ---------------------------------------------------------------------------------------------- checks


def evidence_checks(note: SOAPNote, transcript: Transcript) -> dict[str, int]:
    """Statements, statements grounded (evidence, not unsupported), spans outside their segment, negation conflicts."""
    segments = {s.id: s.text for s in transcript.segments}
    total = grounded = bad_spans = conflicts = 0
    present_paths = ("subjective.chief_complaint", "subjective.hpi", "subjective.ros")
    for path, items in note.sections():
        for statement in items:
            total += 1
            grounded += bool(statement.evidence) and statement.support != "unsupported"
            spans = [e for e in statement.evidence if isinstance(e, SegmentEvidence)]
            for e in spans:
                text = segments.get(e.segment_id)
                if text is None or not (0 <= e.start_char < e.end_char <= len(text)):
                    bad_spans += 1
            if path not in present_paths or statement.text.lower().startswith(("denies", "no ")):
                continue
            if path == "subjective.ros" and ": reports " not in statement.text.lower():
                continue
            cited = [
                _normalised(segments[e.segment_id][e.start_char : e.end_char])
                for e in spans
                if e.segment_id in segments
            ]
            for term in find_symptoms(_normalised(statement.text)):
                if term.negated:
                    continue
                seen = [t for c in cited for t in find_symptoms(c) if t.phrase == term.phrase]
                if seen and all(t.negated for t in seen):
                    conflicts += 1
    return {"statements": total, "grounded": grounded, "bad_spans": bad_spans, "negation_conflicts": conflicts}


# ---------------------------------------------------------------------------------------------- bench


def _rouge(reference: str, candidate: str) -> dict[str, float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = scorer.score(reference, candidate)
    return {k: round(100 * v.fmeasure, 2) for k, v in scores.items()}


def note_text(note: SOAPNote, paths: tuple[str, ...] | None = None) -> str:
    """The statements' text in section order, one a line: what ROUGE scores."""
    return "\n".join(s.text for s in _statements(note, paths))


def bench_notes(source: Path, engine: NoteEngine, *, ground: bool = True, limit: int | None = None) -> dict[str, Any]:
    """Draft every item with `engine` (then the grounding check, if available and `ground`) and score it."""
    items = load_items(source)[:limit] if limit else load_items(source)
    grounder: Callable[[SOAPNote, NoteInput], SOAPNote] | None = None
    if ground:
        try:
            from scribe.notes.grounding import ground_note as grounder
        except ImportError:
            grounder = None
    rows: list[dict[str, Any]] = []
    for item in items:
        note_input = NoteInput(item.transcript, item.context)
        started = time.perf_counter()
        note = engine.draft(note_input)
        latency = time.perf_counter() - started
        if grounder is not None:
            note = grounder(note, note_input)
        row: dict[str, Any] = {
            "name": item.name,
            "group": item.group,
            "latency_s": round(latency, 4),
            "words": len(note_text(note).split()),
            "segments": len(item.transcript.segments),
        }
        if item.reference:
            row["rouge"] = _rouge(item.reference, note_text(note))
            sections = reference_sections(item.reference)
            row["section_rouge"] = {
                key: _rouge(ref, note_text(note, NOTE_SECTIONS[key]))["rouge1"]
                for key, ref in sections.items()
                if ref.strip()
            }
            assessment = sections["assessment_and_plan"] or None
            facts = reference_facts(item.reference, assessment)
            row["facts_from"] = "reference"
        else:
            facts = reference_facts(item.transcript.text)
            row["facts_from"] = "transcript"
        row["recall"] = match_facts(facts, note, _normalised(item.transcript.text))
        row.update(evidence_checks(note, item.transcript))
        rows.append(row)
    return {
        "source": str(source),
        "engine": engine.name,
        "model": engine.model,
        "grounding": grounder is not None,
        "items": rows,
        "summary": summarise(rows),
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means of scores and latency; recall as found/total summed over items (micro average)."""
    summary: dict[str, Any] = {"items": len(rows)}
    latencies = [r["latency_s"] for r in rows]
    summary["latency_s_mean"] = round(statistics.mean(latencies), 4)
    summary["latency_s_max"] = max(latencies)
    summary["latency_max_item"] = max(rows, key=lambda r: r["latency_s"])["name"]
    scored = [r for r in rows if "rouge" in r]
    if scored:
        summary["rouge"] = {
            k: round(statistics.mean(r["rouge"][k] for r in scored), 2) for k in ("rouge1", "rouge2", "rougeL")
        }
        keys = sorted({k for r in scored for k in r["section_rouge"]})
        summary["section_rouge1"] = {
            k: round(statistics.mean(r["section_rouge"][k] for r in scored if k in r["section_rouge"]), 2) for k in keys
        }
        groups = sorted({r["group"] for r in scored if r["group"]})
        if groups:
            summary["rouge1_by_group"] = {
                g: round(statistics.mean(r["rouge"]["rouge1"] for r in scored if r["group"] == g), 2) for g in groups
            }
    recall: dict[str, Any] = {}
    for kind in ("medications", "medication_doses", "vitals", "allergies", "problems"):
        found, total, found_said, said = (sum(r["recall"][kind][i] for r in rows) for i in range(4))
        recall[kind] = {
            "found": found,
            "total": total,
            "recall": round(found / total, 4) if total else None,
            "stated": said,
            "recall_of_stated": round(found_said / said, 4) if said else None,
        }
    summary["recall"] = recall
    statements = sum(r["statements"] for r in rows)
    summary["statements"] = statements
    summary["grounded_share"] = round(sum(r["grounded"] for r in rows) / statements, 4) if statements else None
    summary["bad_spans"] = sum(r["bad_spans"] for r in rows)
    summary["negation_conflicts"] = sum(r["negation_conflicts"] for r in rows)
    return summary


def _ratio(counts: list[int]) -> str:
    """found/total of the facts the transcript states."""
    return f"{counts[2]}/{counts[3]}" if counts[3] else "-"


def format_table(result: dict[str, Any]) -> str:
    """A fixed-width table (one row per item, then the means) for a terminal."""
    lines = [
        f"{result['engine']} ({result['model']}) on {result['source']}{' + grounding' if result['grounding'] else ''}",
        f"{'item':<14}{'ms':>7}{'R1':>7}{'R2':>7}{'RL':>7}{'meds':>7}{'doses':>7}{'vitals':>7}"
        f"{'allerg':>7}{'probl':>7}{'ground':>8}{'neg':>5}",
    ]
    for r in result["items"]:
        rouge = r.get("rouge") or {}
        rec = r["recall"]
        share = r["grounded"] / r["statements"] if r["statements"] else 0.0
        lines.append(
            f"{r['name'][:13]:<14}{1000 * r['latency_s']:>7.1f}"
            f"{rouge.get('rouge1', float('nan')):>7.1f}{rouge.get('rouge2', float('nan')):>7.1f}"
            f"{rouge.get('rougeL', float('nan')):>7.1f}{_ratio(rec['medications']):>7}"
            f"{_ratio(rec['medication_doses']):>7}{_ratio(rec['vitals']):>7}{_ratio(rec['allergies']):>7}"
            f"{_ratio(rec['problems']):>7}{share:>8.1%}{r['negation_conflicts']:>5}"
        )
    s = result["summary"]
    lines.append(
        f"{s['items']} items; latency mean {1000 * s['latency_s_mean']:.1f} ms, max "
        f"{1000 * s['latency_s_max']:.1f} ms ({s['latency_max_item']})"
    )
    if "rouge" in s:
        lines.append("ROUGE F1 x100: " + "  ".join(f"{k} {v:.2f}" for k, v in s["rouge"].items()))
        lines.append("section ROUGE-1: " + "  ".join(f"{k} {v:.2f}" for k, v in s["section_rouge1"].items()))
        if "rouge1_by_group" in s:
            lines.append("ROUGE-1 by dataset: " + "  ".join(f"{k} {v:.2f}" for k, v in s["rouge1_by_group"].items()))
    lines.append(
        "recall of reference facts: "
        + "  ".join(
            f"{k} {v['found']}/{v['total']}" + (f" = {v['recall']:.1%}" if v["recall"] is not None else "")
            for k, v in s["recall"].items()
        )
    )
    lines.append(
        "recall of facts the transcript states (table columns): "
        + "  ".join(
            f"{k} {v['recall_of_stated']:.1%} of {v['stated']}" if v["recall_of_stated"] is not None else f"{k} -"
            for k, v in s["recall"].items()
        )
    )
    grounded = f"{s['grounded_share']:.1%}" if s["grounded_share"] is not None else "-"
    lines.append(
        f"statements {s['statements']}, grounded {grounded}, spans outside their segment {s['bad_spans']}, "
        f"negation conflicts {s['negation_conflicts']}"
    )
    return "\n".join(lines) + "\n"


def print_table(result: dict[str, Any], out: IO[str]) -> None:
    out.write(format_table(result))
    out.flush()
