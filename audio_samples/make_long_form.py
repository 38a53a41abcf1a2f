#!/usr/bin/env python3
"""Speak ACI-BENCH doctor–patient conversations with espeak-ng: long-form audio for `scribe bench asr`.

The outputs are not committed (they are large); generate them where you benchmark:

    python audio_samples/make_long_form.py OUT_DIR [--count 5] [--split valid]

Each conversation becomes OUT_DIR/<encounter_id>.wav (16 kHz mono, the doctor and the
patient in different voices) and <encounter_id>.txt (the words spoken, detokenised).
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import tempfile
from pathlib import Path

ACI_BENCH = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "aci-bench"
VOICES = {"doctor": ("en-us+m3", 165), "patient": ("en-gb+f3", 160)}


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


def speak(conversation: list[tuple[str, str]], out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        parts = []
        for i, (speaker, text) in enumerate(conversation):
            voice, wpm = VOICES[speaker]
            raw = Path(tmp) / f"{i:04d}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(raw), text], check=True)
            parts.append(str(raw))
        subprocess.run(["sox", *parts, "-r", "16000", "-c", "1", "-b", "16", str(out)], check=True)


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
    for row in rows:
        conversation = turns(row["dialogue"])[: args.max_turns]
        speak(conversation, args.out_dir / f"{row['encounter_id']}.wav")
        (args.out_dir / f"{row['encounter_id']}.txt").write_text(" ".join(t for _, t in conversation) + "\n")
        print(row["encounter_id"])


if __name__ == "__main__":
    main()
