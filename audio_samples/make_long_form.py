#!/usr/bin/env python3
"""Speak ACI-BENCH doctor–patient conversations with espeak-ng: long-form audio for `scribe bench asr`.

The outputs are not committed (they are large); generate them where you benchmark:

    python audio_samples/make_long_form.py OUT_DIR [--count 5] [--split valid]

Each conversation becomes OUT_DIR/<encounter_id>.wav (16 kHz mono, the doctor and the
patient in different voices), <encounter_id>.txt (the words spoken, detokenised) and
<encounter_id>.bundle.json (prior records naming, by text, every drug the conversation names —
what `--records` would bring from the chart). Voices and speeds change from one conversation to
the next (`CASTS`), as they do between real clinics: a set tuned to one voice would overstate accuracy.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import tempfile
from pathlib import Path

ACI_BENCH = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "aci-bench"
# (doctor voice, words a minute), (patient voice, words a minute); conversation i gets CASTS[i % len]
CASTS = (
    (("en-us+m3", 165), ("en-gb+f3", 160)),
    (("en-gb-scotland", 150), ("en-us+f2", 185)),
    (("en-029", 175), ("en-us-nyc", 145)),
    (("en-gb-x-rp+m7", 185), ("en-us+f4", 170)),
)


def detokenise(text: str) -> str:
    """ACI-BENCH text is tokenised ("do n't", "pain ."): put it back as a transcriptionist writes it."""
    text = re.sub(r" (n't|'s|'re|'ve|'ll|'d|'m)\b", r"\1", text)
    text = re.sub(r" ([.,?!;:])", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()


def turns(dialogue: str) -> list[tuple[str, str]]:
    out = []
    for line in dialogue.splitlines():
        match = re.match(r"\[(\w+)\]\s*(.*)", line.strip())
        if match and match.group(2).strip():
            speaker = "doctor" if match.group(1).startswith("doctor") else "patient"
            out.append((speaker, detokenise(match.group(2))))
    return out


def speak(conversation: list[tuple[str, str]], cast: tuple[tuple[str, int], tuple[str, int]], out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        parts = []
        for i, (speaker, text) in enumerate(conversation):
            voice, wpm = cast[0] if speaker == "doctor" else cast[1]
            raw = Path(tmp) / f"{i:04d}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(raw), text], check=True)
            parts.append(str(raw))
        subprocess.run(["sox", *parts, "-r", "16000", "-c", "1", "-b", "16", str(out)], check=True)


def records_bundle(name: str, spoken: str) -> dict:
    """A chart for the conversation: a MedicationStatement (by text) for every drug it names."""
    from scribe.clinical.drugs import drug_lexicon

    words = f" {re.sub(r'[^a-z0-9 ]+', ' ', spoken.lower())} "
    drugs = sorted({canonical for spoken_form, canonical in drug_lexicon().items() if f" {spoken_form} " in words})
    patient = {"resourceType": "Patient", "id": f"pt-{name}"}
    entries = [patient] + [
        {
            "resourceType": "MedicationStatement",
            "id": f"ms-{i}",
            "status": "active",
            "medicationCodeableConcept": {"text": drug},
            "subject": {"reference": f"Patient/pt-{name}"},
        }
        for i, drug in enumerate(drugs, 1)
    ]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"urn:scribe:{name}:{r['resourceType']}/{r['id']}", "resource": r} for r in entries],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--split", default="valid", choices=["train", "valid"])
    parser.add_argument("--max-turns", type=int, default=80, help="cap on turns per conversation")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with open(ACI_BENCH / f"{args.split}.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[: args.count]
    for i, row in enumerate(rows):
        conversation = turns(row["dialogue"])[: args.max_turns]
        cast = CASTS[i % len(CASTS)]
        name = row["encounter_id"]
        speak(conversation, cast, args.out_dir / f"{name}.wav")
        spoken = " ".join(t for _, t in conversation)
        (args.out_dir / f"{name}.txt").write_text(spoken + "\n")
        (args.out_dir / f"{name}.bundle.json").write_text(json.dumps(records_bundle(name, spoken), indent=1) + "\n")
        print(name, cast)


if __name__ == "__main__":
    main()
