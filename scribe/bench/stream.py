"""`scribe bench stream`: N simultaneous real-time clients against a running server.

Latency is read on the audio clock (see scribe.streaming.client.stream_pcm): partial latency is how
long after a word was spoken the first partial showing it arrives (a partial that only repeats,
respells or re-times words already shown is not counted again); final latency is how long after
a segment's last word its final arrives (every final, also those closed mid-utterance); word-final latency is
how long after each word was spoken the final holding it arrives (every word counts once, so a long segment made
final late weighs as many words as it holds); end-of-speech
latency is that of each session's last final, i.e. how long after the dictation's last word
everything is final. A session keeps up with real time when its final latency p95 stays
within `keep_up_s` and the server never signalled backpressure; it keeps up at the end of
speech when its end-of-speech latency does. Both largest N are reported. With `records`, each
sample's NAME.bundle.json is attached to its encounter before streaming, as a clinician's
client would, so the stream decodes with the records' hotwords.

Beside each stream's WER stands the offline WER of the same file (`scribe transcribe`'s engine
and options in this process, before the rounds, with the same records): under load a stream's
finals should stay that accurate. A stream the server refuses with `server_busy` is counted as
refused, not as lost: refusing is what a node at capacity is meant to do.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from scribe.audio import decode_audio
from scribe.bench.asr import BenchItem, discover
from scribe.config import Settings
from scribe.streaming.client import (
    StreamFailed,
    StreamResult,
    http_base,
    pcm16,
    percentile,
    prepare_encounter,
    stream_pcm,
)
from scribe.wer import WerCounts, word_errors


async def _round(
    base_url: str,
    token: str | None,
    items: list[tuple[BenchItem, bytes]],
    n: int,
    keep_up_s: float,
    records: bool,
    offline: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]

    async def client(i: int) -> list[tuple[BenchItem, StreamResult | StreamFailed]]:
        """One clinician: every sample in turn (rotated, so clients start on different files)."""
        out: list[tuple[BenchItem, StreamResult | StreamFailed]] = []
        for k in range(len(items)):
            item, pcm = items[(i + k) % len(items)]
            encounter_id = f"bench-{run_id}-{i}-{k}"
            if records and item.records is not None:
                await prepare_encounter(http_base(base_url), token, encounter_id, bundle=item.records)
            url = f"{base_url.rstrip('/')}/v1/encounters/{encounter_id}/stream"
            try:
                out.append((item, await stream_pcm(url, pcm, token=token, realtime=True)))
            except StreamFailed as exc:  # refused (server_busy) or lost: counted, and the round goes on
                out.append((item, exc))
        return out

    outcomes = [r for per_client in await asyncio.gather(*(client(i) for i in range(n))) for r in per_client]
    results = [(item, r) for item, r in outcomes if isinstance(r, StreamResult)]
    refused = sum(1 for _, r in outcomes if isinstance(r, StreamFailed) and r.code == "server_busy")
    partial = [x for _, r in results for x in r.partial_latencies]
    final = [x for _, r in results for x in r.final_latencies]
    word_final = [x for _, r in results for x in r.word_final_latencies]
    end = [r.final_latencies[-1] for _, r in results if r.final_latencies]
    streamed = offline_counts = WerCounts(0, 0)  # pooled over the round's sessions
    sessions: list[dict[str, Any]] = []
    for item, result in results:
        counts = word_errors(item.reference, (result.transcript or {}).get("text", ""))
        streamed += counts
        offline_wer = None
        if offline is not None:
            offline_file = word_errors(item.reference, offline[item.audio.name])
            offline_counts += offline_file
            offline_wer = round(offline_file.wer, 4)
        p95 = percentile(result.final_latencies, 95)
        at_end = round(result.final_latencies[-1], 3) if result.final_latencies else None
        healthy = result.transcript is not None and "backpressure" not in result.warnings
        sessions.append(
            {
                "file": item.audio.name,
                "final_p95_s": p95,
                "word_final_p50_s": percentile(result.word_final_latencies, 50),
                "word_final_p95_s": percentile(result.word_final_latencies, 95),
                "partial_p95_s": percentile(result.partial_latencies, 95),
                "end_of_speech_s": at_end,
                "wer": round(counts.wer, 4),
                "offline_wer": offline_wer,
                "keeps_up": healthy and (p95 is None or p95 <= keep_up_s),
                "keeps_up_at_end": healthy and (at_end is None or at_end <= keep_up_s),
                "reconnects": result.reconnects,
            }
        )
    wer = _pooled_wer(streamed)
    offline_wer = _pooled_wer(offline_counts) if offline is not None else None
    return {
        "concurrency": n,
        "streams": len(outcomes),
        "served": len(results),
        "refused": refused,
        "lost": len(outcomes) - len(results) - refused,
        "partial_p50_s": percentile(partial, 50),
        "partial_p95_s": percentile(partial, 95),
        "final_p50_s": percentile(final, 50),
        "final_p95_s": percentile(final, 95),
        "word_final_p50_s": percentile(word_final, 50),
        "word_final_p95_s": percentile(word_final, 95),
        "end_of_speech_p50_s": percentile(end, 50),
        "end_of_speech_p95_s": percentile(end, 95),
        "wer": wer,
        "offline_wer": offline_wer,
        "wer_minus_offline": round(wer - offline_wer, 4) if wer is not None and offline_wer is not None else None,
        "all_keep_up": bool(results) and all(s["keeps_up"] for s in sessions),
        "all_keep_up_at_end": bool(results) and all(s["keeps_up_at_end"] for s in sessions),
        "sessions": sessions,
    }


def _pooled_wer(counts: WerCounts) -> float | None:
    return round(counts.wer, 4) if counts.reference_words else None


def offline_transcripts(directory: Path, settings: Settings, *, records: bool) -> dict[str, str]:
    """Each file's text as `scribe transcribe` gives it (a conversation's engine, its records' terms when `records`)."""
    from scribe.asr import choose_engine, load_engine
    from scribe.records import load_records

    engine = load_engine(choose_engine(settings.asr_engine, "encounter", settings), settings)
    texts = {}
    for item in discover(directory):
        context = load_records(item.records) if records and item.records is not None else None
        texts[item.audio.name] = engine.transcribe(decode_audio(item.audio), context=context).text
    return texts


def run_stream_bench(
    base_url: str,
    token: str | None,
    directory: Path,
    rounds: Sequence[int],
    keep_up_s: float = 3.0,
    *,
    records: bool = False,
    offline: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One round per N in `rounds`, every one of them: a round that falls behind still tells how far."""
    items = [(item, pcm16(decode_audio(item.audio))) for item in discover(directory)]
    results = [asyncio.run(_round(base_url, token, items, n, keep_up_s, records, offline)) for n in sorted(rounds)]

    def largest(key: str) -> int:
        """Largest N such that its round and every smaller one kept up."""
        best = 0
        for result in results:
            if not result[key]:
                break
            best = result["concurrency"]
        return best

    return {
        "url": base_url,
        "keep_up_s": keep_up_s,
        "records": records,
        "rounds": results,
        "max_realtime_sessions": largest("all_keep_up"),
        "max_realtime_sessions_at_end_of_speech": largest("all_keep_up_at_end"),
    }


def _cell(value: float | None, width: int, digits: int = 2) -> str:
    return f"{value if value is not None else float('nan'):>{width}.{digits}f}"


def print_stream_table(summary: dict[str, Any], out: IO[str]) -> None:
    out.write(
        f"{'N':>3}{'served':>8}{'refused':>8}{'lost':>5}{'partial p50':>13}{'p95':>7}{'final p50':>11}{'p95':>7}"
        f"{'word final p50':>16}{'p95':>7}{'end of speech p50':>19}{'p95':>7}{'WER':>8}{'offline':>9}"
        "  keeps up (final / end of speech)\n"
    )
    for r in summary["rounds"]:
        out.write(
            f"{r['concurrency']:>3}{r.get('served', 0):>8}{r.get('refused', 0):>8}{r.get('lost', 0):>5}"
            f"{_cell(r['partial_p50_s'], 13)}{_cell(r['partial_p95_s'], 7)}"
            f"{_cell(r['final_p50_s'], 11)}{_cell(r['final_p95_s'], 7)}"
            f"{_cell(r.get('word_final_p50_s'), 16)}{_cell(r.get('word_final_p95_s'), 7)}"
            f"{_cell(r['end_of_speech_p50_s'], 19)}{_cell(r['end_of_speech_p95_s'], 7)}"
            f"{_cell(r['wer'], 8, 3)}{_cell(r.get('offline_wer'), 9, 3)}"
            f"  {r['all_keep_up']} / {r['all_keep_up_at_end']}\n"
        )
        for s in r["sessions"] if r.get("offline_wer") is not None else []:
            out.write(
                f"      {s['file']}: WER {s['wer']:.3f} streamed, {s['offline_wer']:.3f} offline; "
                f"word final p50 {_cell(s.get('word_final_p50_s'), 0)} p95 {_cell(s.get('word_final_p95_s'), 0)} s, "
                f"end of speech {_cell(s.get('end_of_speech_s'), 0)} s\n"
            )
    out.write(
        f"largest N keeping up with real time: final p95 <= {summary['keep_up_s']} s: "
        f"{summary['max_realtime_sessions']}; end of speech <= {summary['keep_up_s']} s: "
        f"{summary['max_realtime_sessions_at_end_of_speech']}\n"
    )
    out.flush()
