"""`scribe bench asr`: accuracy and cost of speech recognition on reference-transcribed audio.

Each engine is measured in a fresh child process, so load time is a real cold/warm load and
peak RSS belongs to that engine alone.
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from scribe.audio import SAMPLE_RATE, decode_audio
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


Transcribe = Callable[[np.ndarray, Any], tuple[str, float]]
"""(audio, PatientContext or None) -> (text, processing seconds): one way of transcribing, measured alike."""


def _measure(transcribe: Transcribe, items: list[BenchItem]) -> dict[str, Any]:
    """Transcribe every item without and with its records; counts are summed, rates derived at the end.

    Besides recall, `drugs_inserted` counts recorded drugs the transcript names although the
    reference does not: what biasing towards the records costs when it goes wrong. Critical
    units (medication with its dose and frequency, allergy, negation) are counted as
    `scribe.bench.critical_terms` defines them.
    """
    from scribe.bench.critical_terms import critical_recall
    from scribe.records import load_records
    from scribe.wer import contains_term, term_recall, word_errors

    rows = []
    for item in items:
        audio = decode_audio(item.audio)
        context = load_records(item.records) if item.records else None
        drugs = [m.name for m in context.medications] if context else []
        row: dict[str, Any] = {"file": item.audio.name, "duration_s": round(len(audio) / SAMPLE_RATE, 2)}
        for label, ctx in (("plain", None), ("records", context)):
            if label == "records" and ctx is None:
                continue
            text, processing_s = transcribe(audio, ctx)
            counts = word_errors(item.reference, text)
            found, spoken = term_recall(item.reference, text, drugs)
            inserted = sum(contains_term(text, d) and not contains_term(item.reference, d) for d in drugs)
            critical_found, critical_spoken = critical_recall(item.reference, text)
            row[label] = {
                "errors": counts.errors,
                "reference_words": counts.reference_words,
                "wer": round(counts.wer, 4),
                "drugs_found": found,
                "drugs_spoken": spoken,
                "drugs_inserted": inserted,
                "critical_found": critical_found,
                "critical_spoken": critical_spoken,
                "processing_s": round(processing_s, 3),
                "rtf": round(processing_s / max(row["duration_s"], 1e-9), 4),
                "text": text,
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
            "critical_recall": _rate(sum(r["critical_found"] for r in runs), sum(r["critical_spoken"] for r in runs)),
            "critical_found": sum(r["critical_found"] for r in runs),
            "critical_spoken": sum(r["critical_spoken"] for r in runs),
            "rtf": round(processing / audio_s, 4) if audio_s else None,
        }
    return summary


def _rate(found: int, total: int) -> float | None:
    return round(found / total, 4) if total else None


def _engine_transcribe(engine: Any) -> Transcribe:
    def transcribe(audio: np.ndarray, context: Any) -> tuple[str, float]:
        transcript = engine.transcribe(audio, context=context)
        return transcript.text, transcript.processing_s

    return transcribe


# Ablations (`--ablations`): each switches one of scribe's decoding choices back, on the same loaded model.
SCRIBE_ABLATIONS: dict[str, dict[str, Any]] = {
    "no context across chunks": {"previous_text": False},
    "no hotword prompt (records still respelled)": {"hotwords": False},
}
# ... and the plain baseline decoded other ways, to confirm what each choice costs faster-whisper itself.
PLAIN_ABLATIONS: dict[str, dict[str, Any]] = {
    "plain, no previous text": {"condition_on_previous_text": False},
    "plain, word timestamps": {"word_timestamps": True},
}


def _aggregates(result: dict[str, Any]) -> dict[str, Any]:
    """A measurement without its per-file rows: what an ablation line prints."""
    return {k: v for k, v in result.items() if k != "files"}


def _bench_engine(
    engine_name: str, model: str | None, settings: Settings, items: list[BenchItem], ablations: bool = False
) -> dict[str, Any]:
    from scribe.asr.medasr import MedAsrEngine
    from scribe.asr.registry import EngineChoice, load_engine
    from scribe.asr.whisper import WhisperEngine

    choice = EngineChoice(engine_name, model, "benchmark")
    started = time.perf_counter()
    engine = load_engine(choice, settings)
    first_load = time.perf_counter() - started
    # load_engine builds one of these two (by the choice's name): the warm load below and the ablations need the class
    assert isinstance(engine, (WhisperEngine, MedAsrEngine))
    started = time.perf_counter()
    type(engine).load(model, settings)  # a second, warm load: weights assembled and in the page cache
    warm_load = time.perf_counter() - started
    started = time.perf_counter()
    engine.transcribe(
        decode_audio(items[0].audio)[: SAMPLE_RATE * 5]
    )  # first call initialises lazy parts (VAD, kernels)
    warmup = time.perf_counter() - started
    result = _measure(_engine_transcribe(engine), items)
    if ablations and isinstance(engine, WhisperEngine):  # i.e. engine_name == "whisper"
        result["ablations"] = {
            label: _aggregates(_measure(_engine_transcribe(engine.with_options(**changes)), items))
            for label, changes in SCRIBE_ABLATIONS.items()
        }
    result.update(
        engine=engine.name,
        model=engine.model,
        threads=getattr(engine, "threads", None),
        load_s_first=round(first_load, 3),
        load_s_warm=round(warm_load, 3),
        warmup_call_s=round(warmup, 3),
        peak_rss_mb=_peak_rss_mb(),
    )
    return result


def _bench_plain_whisper(
    model: str | None, settings: Settings, threads: int, items: list[BenchItem], ablations: bool = False
) -> dict[str, Any]:
    """The plain faster-whisper baseline on the same weights and threads: sequential beam 5, the records' hotwords.

    What a user of faster-whisper gets without scribe, measured in the same run so that the
    ratio to scribe's pipeline survives a noisy machine. Its temperature fallback samples, so
    each measurement starts from one seed: two runs on one machine report the same words.
    """
    import ctranslate2
    from faster_whisper import WhisperModel

    from scribe.asr import bundled_whisper
    from scribe.asr.whisper import hotword_prompt

    path = str(bundled_whisper.ensure_bundled(settings.models_dir)) if model is None else model
    whisper = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=threads, local_files_only=True)

    def plain(**options: Any) -> Transcribe:
        def transcribe(audio: np.ndarray, context: Any) -> tuple[str, float]:
            ctranslate2.set_random_seed(PLAIN_SEED)
            started = time.perf_counter()
            segments, _info = whisper.transcribe(
                audio, language="en", beam_size=PLAIN_BEAM_SIZE, hotwords=hotword_prompt(context), **options
            )
            text = "".join(segment.text for segment in segments).strip()
            return text, time.perf_counter() - started

        return transcribe

    plain()(np.zeros(SAMPLE_RATE, dtype=np.float32), None)  # warm-up
    result = _measure(plain(), items)
    if ablations:
        result["ablations"] = {
            label: _aggregates(_measure(plain(**options), items)) for label, options in PLAIN_ABLATIONS.items()
        }
    result.update(
        engine=f"plain faster-whisper (beam {PLAIN_BEAM_SIZE}, sequential, hotwords from records)",
        model=path,
        threads=threads,
        peak_rss_mb=_peak_rss_mb(),
    )
    return result


def _bench_medasr_full_size(items: list[BenchItem]) -> dict[str, Any]:
    """A full-size MedASR architecture with random weights: its CPU cost, known before any weights are."""
    from scribe.asr.medasr import build_random_full_size_engine, parameter_count

    started = time.perf_counter()
    engine = build_random_full_size_engine()
    build_s = time.perf_counter() - started
    engine.transcribe(decode_audio(items[0].audio)[: SAMPLE_RATE * 5])
    audio_s = processing = 0.0
    for item in items:
        transcript = engine.transcribe(decode_audio(item.audio))
        audio_s += transcript.duration_s
        processing += transcript.processing_s
    return {
        "engine": "medasr (full-size architecture, random weights)",
        "parameters": parameter_count(engine),
        "build_s": round(build_s, 3),
        "audio_s": round(audio_s, 2),
        "rtf": round(processing / audio_s, 4),
        "peak_rss_mb": _peak_rss_mb(),
    }


PLAIN_BEAM_SIZE = 5
PLAIN_SEED = 0  # the fallback sampling's seed: any fixed value makes the baseline repeatable


def _torch_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))


def offline_threads(settings: Settings) -> int:
    """Threads one offline call uses (the engine's and the baseline's alike)."""
    from scribe.asr.cores import usable_cores

    return settings.asr_threads or usable_cores()


def run_asr_bench(
    directory: Path,
    settings: Settings,
    *,
    engine: str = "whisper",
    model: str | None = None,
    medasr_full_size: bool = True,
    baseline: bool = True,
    ablations: bool = False,
) -> dict[str, Any]:
    """Measure `engine` on every item of `directory`, each run in a fresh child process.

    With Whisper and `baseline`, plain faster-whisper runs on the same items and threads; with
    `ablations`, scribe's choices are switched off one at a time, scribe also runs on one thread
    (the service's per-call threads), and the baseline is decoded the other ways.
    """
    items = discover(directory)
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(1, maxtasksperchild=1) as pool:
        summary: dict[str, Any] = {
            "directory": str(directory),
            engine: pool.apply(_bench_engine, (engine, model, settings, items, ablations)),
        }
    if ablations and engine == "whisper" and offline_threads(settings) > 1:
        one_thread = settings.model_copy(update={"asr_threads": 1})
        with spawn.Pool(1, maxtasksperchild=1) as pool:
            summary[engine].setdefault("ablations", {})["one thread"] = _aggregates(
                pool.apply(_bench_engine, (engine, model, one_thread, items))
            )
    if baseline and engine == "whisper":
        with spawn.Pool(1, maxtasksperchild=1) as pool:
            summary["baseline"] = pool.apply(
                _bench_plain_whisper, (model, settings, offline_threads(settings), items, ablations)
            )
        summary["versus_baseline"] = versus_baseline(summary[engine], summary["baseline"])
    if medasr_full_size and _torch_available():
        with spawn.Pool(1, maxtasksperchild=1) as pool:
            summary["medasr_full_size"] = pool.apply(_bench_medasr_full_size, (items,))
    return summary


def versus_baseline(ours: dict[str, Any], plain: dict[str, Any]) -> dict[str, Any]:
    """Our WER with records against the better of the baseline's two, and the real-time factors' ratio."""
    best = min(plain[label]["wer"] for label in ("plain", "records") if label in plain)
    mine = ours["records"]["wer"] if "records" in ours else ours["plain"]["wer"]
    rtf_mine = ours["records"]["rtf"] if "records" in ours else ours["plain"]["rtf"]
    rtf_plain = plain["records"]["rtf"] if "records" in plain else plain["plain"]["rtf"]
    return {
        "wer": mine,
        "baseline_best_wer": best,
        "wer_ratio": round(mine / best, 3) if best else None,
        "rtf": rtf_mine,
        "baseline_rtf": rtf_plain,
        "rtf_ratio": round(rtf_mine / rtf_plain, 3) if rtf_plain else None,
    }


def print_table(summary: dict[str, Any], out: IO[str]) -> None:
    for result in summary.values():
        if not isinstance(result, dict) or "files" not in result:
            continue
        out.write(f"\n{result['engine']} — {result['model']}\n")
        out.write(f"{'file':<28}{'dur s':>7}{'WER':>8}{'WER+rec':>9}{'drugs':>8}{'drugs+rec':>11}{'RTF':>8}\n")
        for row in result["files"]:
            plain, rec = row["plain"], row.get("records")
            out.write(
                f"{row['file']:<28}{row['duration_s']:>7.1f}{plain['wer']:>8.3f}"
                f"{(rec['wer'] if rec else float('nan')):>9.3f}"
                f"{plain['drugs_found']:>4}/{plain['drugs_spoken']:<3}"
                f"{(rec['drugs_found'] if rec else 0):>7}/{(rec['drugs_spoken'] if rec else 0):<3}"
                f"{plain['rtf']:>8.3f}\n"
            )
        for label in ("plain", "records"):
            if label in result:
                agg = result[label]
                out.write(
                    f"{'TOTAL ' + label:<28}{result['audio_s']:>7.1f}  WER {agg['wer']}  drug recall "
                    f"{agg['drugs_found']}/{agg['drugs_spoken']} = {agg['drug_recall']}  "
                    f"unspoken drugs written {agg['drugs_inserted']}  critical terms "
                    f"{agg['critical_found']}/{agg['critical_spoken']} = {agg['critical_recall']}  RTF {agg['rtf']}\n"
                )
        if "load_s_first" in result:
            out.write(f"load first {result['load_s_first']} s, warm {result['load_s_warm']} s; ")
        out.write(f"peak RSS {result['peak_rss_mb']} MB\n")
    for result in summary.values():
        if isinstance(result, dict) and result.get("ablations"):
            out.write(f"\nablations of {result['engine']}\n")
            for label, agg in result["ablations"].items():
                rec = agg.get("records") or {}
                out.write(
                    f"  {label:<30} WER {agg['plain']['wer']}  WER+rec {rec.get('wer')}  "
                    f"critical+rec {rec.get('critical_recall')}  RTF {agg['plain']['rtf']}\n"
                )
    if "versus_baseline" in summary:
        v = summary["versus_baseline"]
        out.write(
            f"\nscribe with records against the better plain baseline: WER {v['wer']} vs {v['baseline_best_wer']} "
            f"(ratio {v['wer_ratio']}); RTF {v['rtf']} vs {v['baseline_rtf']} (ratio {v['rtf_ratio']})\n"
        )
    if "medasr_full_size" in summary:
        m = summary["medasr_full_size"]
        out.write(
            f"\n{m['engine']}: {m['parameters'] / 1e6:.1f} M parameters, RTF {m['rtf']} on {m['audio_s']} s, "
            f"peak RSS {m['peak_rss_mb']} MB\n"
        )
    out.flush()
