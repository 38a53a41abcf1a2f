"""`scribe bench stream`: N simultaneous real-time clients against a running server.

Latency is read on the audio clock (see streaming.client.stream_pcm): partial latency is how
long after a word was spoken the first partial showing it arrives (a partial that only repeats,
respells or re-times words already shown is not counted again); final latency is how long after
a segment's last word its final arrives (every final, also those closed mid-utterance); end-of-speech
latency is that of each session's last final, i.e. how long after the dictation's last word
everything is final. A session keeps up with real time when its final latency p95 stays
within `keep_up_s` and the server never signalled backpressure; it keeps up at the end of
speech when its end-of-speech latency does. Both largest N are reported. With `records`, each
sample's NAME.bundle.json is attached to its encounter before streaming, as a clinician's
client would, so the stream decodes with the records' hotwords.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import IO, Any

from scribe.audio import decode_audio
from scribe.bench.asr import BenchItem, discover
from scribe.wer import word_errors
from streaming.client import StreamResult, attach_records, http_base, pcm16, percentile, stream_pcm


async def _round(base_url: str, token: str | None, items: list[tuple[BenchItem, bytes]], n: int,
                 keep_up_s: float, records: bool) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]

    async def client(i: int) -> list[tuple[BenchItem, StreamResult]]:
        """One clinician: every sample in turn (rotated, so clients start on different files)."""
        out = []
        for k in range(len(items)):
            item, pcm = items[(i + k) % len(items)]
            encounter_id = f"bench-{run_id}-{i}-{k}"
            if records and item.records is not None:
                await attach_records(http_base(base_url), token, encounter_id, item.records)
            url = f"{base_url.rstrip('/')}/v1/encounters/{encounter_id}/stream"
            out.append((item, await stream_pcm(url, pcm, token=token, realtime=True)))
        return out

    results = [r for per_client in await asyncio.gather(*(client(i) for i in range(n))) for r in per_client]
    partial = [x for _, r in results for x in r.partial_latencies]
    final = [x for _, r in results for x in r.final_latencies]
    end = [r.final_latencies[-1] for _, r in results if r.final_latencies]
    errors = words = 0
    sessions: list[dict[str, Any]] = []
    for item, result in results:
        counts = word_errors(item.reference, (result.transcript or {}).get("text", ""))
        errors, words = errors + counts.errors, words + counts.reference_words
        p95 = percentile(result.final_latencies, 95)
        at_end = round(result.final_latencies[-1], 3) if result.final_latencies else None
        healthy = result.transcript is not None and "backpressure" not in result.warnings
        sessions.append({"file": item.audio.name, "final_p95_s": p95,
                         "partial_p95_s": percentile(result.partial_latencies, 95), "end_of_speech_s": at_end, "wer": round(counts.wer, 4),
                         "keeps_up": healthy and (p95 is None or p95 <= keep_up_s),
                         "keeps_up_at_end": healthy and (at_end is None or at_end <= keep_up_s),
                         "reconnects": result.reconnects})
    return {"concurrency": n, "partial_p50_s": percentile(partial, 50), "partial_p95_s": percentile(partial, 95),
            "final_p50_s": percentile(final, 50), "final_p95_s": percentile(final, 95),
            "end_of_speech_p50_s": percentile(end, 50), "end_of_speech_p95_s": percentile(end, 95),
            "wer": round(errors / words, 4) if words else None,
            "all_keep_up": all(s["keeps_up"] for s in sessions),
            "all_keep_up_at_end": all(s["keeps_up_at_end"] for s in sessions), "sessions": sessions}


def run_stream_bench(base_url: str, token: str | None, directory: Path, max_concurrency: int,
                     keep_up_s: float = 3.0, *, records: bool = False) -> dict[str, Any]:
    """Rounds at N = 1..max_concurrency, every one of them: a round that falls behind still tells how far."""
    items = [(item, pcm16(decode_audio(item.audio))) for item in discover(directory)]
    rounds = [asyncio.run(_round(base_url, token, items, n, keep_up_s, records))
              for n in range(1, max_concurrency + 1)]

    def largest(key: str) -> int:
        """Largest N such that every round up to it kept up."""
        n = 0
        while n < len(rounds) and rounds[n][key]:
            n += 1
        return n

    return {"url": base_url, "keep_up_s": keep_up_s, "records": records, "rounds": rounds,
            "max_realtime_sessions": largest("all_keep_up"),
            "max_realtime_sessions_at_end_of_speech": largest("all_keep_up_at_end")}


def _cell(value: float | None, width: int, digits: int = 2) -> str:
    return f"{value if value is not None else float('nan'):>{width}.{digits}f}"


def print_stream_table(summary: dict[str, Any], out: IO[str]) -> None:
    out.write(f"{'N':>3}{'partial p50':>13}{'p95':>7}{'final p50':>11}{'p95':>7}{'end of speech p50':>19}{'p95':>7}"
              f"{'WER':>8}  keeps up (final / end of speech)\n")
    for r in summary["rounds"]:
        out.write(f"{r['concurrency']:>3}{_cell(r['partial_p50_s'], 13)}{_cell(r['partial_p95_s'], 7)}"
                  f"{_cell(r['final_p50_s'], 11)}{_cell(r['final_p95_s'], 7)}"
                  f"{_cell(r['end_of_speech_p50_s'], 19)}{_cell(r['end_of_speech_p95_s'], 7)}"
                  f"{_cell(r['wer'], 8, 3)}  {r['all_keep_up']} / {r['all_keep_up_at_end']}\n")
    out.write(f"largest N keeping up with real time: final p95 <= {summary['keep_up_s']} s: "
              f"{summary['max_realtime_sessions']}; end of speech <= {summary['keep_up_s']} s: "
              f"{summary['max_realtime_sessions_at_end_of_speech']}\n")
    out.flush()
