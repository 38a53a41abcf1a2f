"""`scribe bench asr`: accuracy and cost of speech recognition on reference-transcribed audio.

Each engine is measured in a fresh child process, so load time is a real cold/warm load and
peak RSS belongs to that engine alone.
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from scribe.config import Settings
from scribe.errors import BadInputError


@dataclass(frozen=True)
class BenchItem:
    audio: Path
    reference: str
    records: Path | None


def discover(directory: Path) -> list[BenchItem]:
    """Every WAV in `directory` that has a reference NAME.txt (and optionally NAME.bundle.json)."""
    if not directory.is_dir():
        raise BadInputError(f"{directory}: not a directory")
    items = []
    for wav in sorted(directory.glob("*.wav")):
        ref = wav.with_suffix(".txt")
        if ref.is_file():
            bundle = wav.with_name(wav.stem + ".bundle.json")
            items.append(BenchItem(wav, ref.read_text(encoding="utf-8"), bundle if bundle.is_file() else None))
    if not items:
        raise BadInputError(f"{directory}: no WAV file with a reference .txt beside it")
    return items


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _measure(engine: Any, items: list[BenchItem]) -> dict[str, Any]:
    """Transcribe every item without and with its records; counts are summed, rates derived at the end.

    Besides recall, `drugs_inserted` counts recorded drugs the transcript names although the
    reference does not: what biasing towards the records costs when it goes wrong.
    """
    from scribe.audio import decode_audio
    from scribe.records import load_records
    from scribe.wer import contains_term, term_recall, word_errors

    rows = []
    for item in items:
        audio = decode_audio(item.audio)
        context = load_records(item.records) if item.records else None
        drugs = [m.name for m in context.medications] if context else []
        row: dict[str, Any] = {"file": item.audio.name, "duration_s": round(len(audio) / 16000, 2)}
        for label, ctx in (("plain", None), ("records", context)):
            if label == "records" and ctx is None:
                continue
            transcript = engine.transcribe(audio, context=ctx)
            counts = word_errors(item.reference, transcript.text)
            found, spoken = term_recall(item.reference, transcript.text, drugs)
            inserted = sum(contains_term(transcript.text, d) and not contains_term(item.reference, d) for d in drugs)
            row[label] = {
                "errors": counts.errors,
                "reference_words": counts.reference_words,
                "wer": round(counts.wer, 4),
                "drugs_found": found,
                "drugs_spoken": spoken,
                "drugs_inserted": inserted,
                "processing_s": transcript.processing_s,
                "rtf": round(transcript.processing_s / max(transcript.duration_s, 1e-9), 4),
                "text": transcript.text,
            }
        rows.append(row)
    summary: dict[str, Any] = {"files": rows, "audio_s": round(sum(r["duration_s"] for r in rows), 2)}
    for label in ("plain", "records"):
        runs = [r[label] for r in rows if label in r]
        if not runs:
            continue
        ref_words = sum(r["reference_words"] for r in runs)
        spoken = sum(r["drugs_spoken"] for r in runs)
        processing = sum(r["processing_s"] for r in runs)
        audio_s = sum(row["duration_s"] for row in rows if label in row)
        summary[label] = {
            "wer": round(sum(r["errors"] for r in runs) / ref_words, 4) if ref_words else None,
            "drug_recall": round(sum(r["drugs_found"] for r in runs) / spoken, 4) if spoken else None,
            "drugs_found": sum(r["drugs_found"] for r in runs),
            "drugs_spoken": spoken,
            "drugs_inserted": sum(r["drugs_inserted"] for r in runs),
            "rtf": round(processing / audio_s, 4) if audio_s else None,
        }
    return summary


def _bench_engine(engine_name: str, model: str | None, settings: Settings, items: list[BenchItem]) -> dict[str, Any]:
    from scribe.asr.registry import EngineChoice, load_engine
    from scribe.audio import decode_audio

    choice = EngineChoice(engine_name, model, "benchmark")
    started = time.perf_counter()
    engine = load_engine(choice, settings)
    first_load = time.perf_counter() - started
    started = time.perf_counter()
    type(engine).load(model, settings)  # a second, warm load: weights assembled and in the page cache
    warm_load = time.perf_counter() - started
    started = time.perf_counter()
    engine.transcribe(decode_audio(items[0].audio)[: 16000 * 5])  # first call initialises lazy parts (VAD, kernels)
    warmup = time.perf_counter() - started
    result = _measure(engine, items)
    result.update(engine=engine.name, model=engine.model, load_s_first=round(first_load, 3),
                  load_s_warm=round(warm_load, 3), warmup_call_s=round(warmup, 3), peak_rss_mb=_peak_rss_mb())
    return result


def _bench_medasr_full_size(items: list[BenchItem]) -> dict[str, Any]:
    """A full-size MedASR architecture with random weights: its CPU cost, known before any weights are."""
    from scribe.asr.medasr import build_random_full_size_engine, parameter_count
    from scribe.audio import decode_audio

    started = time.perf_counter()
    engine = build_random_full_size_engine()
    build_s = time.perf_counter() - started
    engine.transcribe(decode_audio(items[0].audio)[: 16000 * 5])
    audio_s = processing = 0.0
    for item in items:
        transcript = engine.transcribe(decode_audio(item.audio))
        audio_s += transcript.duration_s
        processing += transcript.processing_s
    return {"engine": "medasr (full-size architecture, random weights)", "parameters": parameter_count(engine),
            "build_s": round(build_s, 3), "audio_s": round(audio_s, 2), "rtf": round(processing / audio_s, 4),
            "peak_rss_mb": _peak_rss_mb()}


def _torch_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))


def run_asr_bench(directory: Path, settings: Settings, *, engine: str = "whisper", model: str | None = None,
                  medasr_full_size: bool = True) -> dict[str, Any]:
    items = discover(directory)
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(1, maxtasksperchild=1) as pool:
        summary = {"directory": str(directory), engine: pool.apply(_bench_engine, (engine, model, settings, items))}
    if medasr_full_size and _torch_available():
        with spawn.Pool(1, maxtasksperchild=1) as pool:
            summary["medasr_full_size"] = pool.apply(_bench_medasr_full_size, (items,))
    return summary


def print_table(summary: dict[str, Any], out: IO[str]) -> None:
    for key, result in summary.items():
        if not isinstance(result, dict) or "files" not in result:
            continue
        out.write(f"\n{result['engine']} — {result['model']}\n")
        out.write(f"{'file':<28}{'dur s':>7}{'WER':>8}{'WER+rec':>9}{'drugs':>8}{'drugs+rec':>11}{'RTF':>8}\n")
        for row in result["files"]:
            plain, rec = row["plain"], row.get("records")
            out.write(f"{row['file']:<28}{row['duration_s']:>7.1f}{plain['wer']:>8.3f}"
                      f"{(rec['wer'] if rec else float('nan')):>9.3f}"
                      f"{plain['drugs_found']:>4}/{plain['drugs_spoken']:<3}"
                      f"{(rec['drugs_found'] if rec else 0):>7}/{(rec['drugs_spoken'] if rec else 0):<3}"
                      f"{plain['rtf']:>8.3f}\n")
        for label in ("plain", "records"):
            if label in result:
                agg = result[label]
                out.write(f"{'TOTAL ' + label:<28}{result['audio_s']:>7.1f}  WER {agg['wer']}  drug recall "
                          f"{agg['drugs_found']}/{agg['drugs_spoken']} = {agg['drug_recall']}  "
                          f"unspoken drugs written {agg['drugs_inserted']}  RTF {agg['rtf']}\n")
        out.write(f"load first {result['load_s_first']} s, warm {result['load_s_warm']} s; "
                  f"peak RSS {result['peak_rss_mb']} MB\n")
    if "medasr_full_size" in summary:
        m = summary["medasr_full_size"]
        out.write(f"\n{m['engine']}: {m['parameters'] / 1e6:.1f} M parameters, RTF {m['rtf']} on {m['audio_s']} s, "
                  f"peak RSS {m['peak_rss_mb']} MB\n")
    out.flush()
