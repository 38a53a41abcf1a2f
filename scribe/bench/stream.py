"""`scribe bench stream`: N simultaneous real-time clients against a running server.

Latency is read on the audio clock (see streaming.client.stream_pcm): partial latency is how
long after a word was spoken its partial arrives; final latency is how long after a segment's
last word its final arrives. A session keeps up with real time when its final latency p95
stays within `keep_up_s` and the server never signalled backpressure.
"""

from __future__ import annotations

import asyncio
import statistics
import uuid
from pathlib import Path
from typing import IO, Any

from scribe.audio import decode_audio
from scribe.bench.asr import discover
from scribe.wer import word_errors
from streaming.client import StreamResult, pcm16, stream_pcm


def _pct(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 3)


async def _round(base_url: str, token: str | None, items: list[tuple[str, bytes, str]], n: int,
                 keep_up_s: float) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]

    async def client(i: int) -> list[tuple[str, StreamResult]]:
        """One clinician: every sample in turn (rotated, so clients start on different files)."""
        out = []
        for k in range(len(items)):
            name, pcm, _ = items[(i + k) % len(items)]
            url = f"{base_url.rstrip('/')}/v1/encounters/bench-{run_id}-{i}-{k}/stream"
            out.append((name, await stream_pcm(url, pcm, token=token, realtime=True)))
        return out

    results = [r for per_client in await asyncio.gather(*(client(i) for i in range(n))) for r in per_client]
    references = {name: ref for name, _, ref in items}
    partial = [x for _, r in results for x in r.partial_latencies]
    final = [x for _, r in results for x in r.final_latencies]
    errors = words = 0
    sessions: list[dict[str, Any]] = []
    for name, result in results:
        counts = word_errors(references[name], (result.transcript or {}).get("text", ""))
        errors, words = errors + counts.errors, words + counts.reference_words
        p95 = _pct(result.final_latencies, 95)
        keeps_up = result.transcript is not None and "backpressure" not in result.warnings and (
            p95 is None or p95 <= keep_up_s)
        sessions.append({"file": name, "final_p95_s": p95, "partial_p95_s": _pct(result.partial_latencies, 95),
                         "wer": round(counts.wer, 4), "keeps_up": keeps_up, "reconnects": result.reconnects})
    return {"concurrency": n, "partial_p50_s": _pct(partial, 50), "partial_p95_s": _pct(partial, 95),
            "final_p50_s": _pct(final, 50), "final_p95_s": _pct(final, 95),
            "wer": round(errors / words, 4) if words else None,
            "all_keep_up": all(s["keeps_up"] for s in sessions), "sessions": sessions}


def run_stream_bench(base_url: str, token: str | None, directory: Path, max_concurrency: int,
                     keep_up_s: float = 3.0) -> dict[str, Any]:
    """Rounds at N = 1..max_concurrency (stopping after the first N that falls behind)."""
    items = [(item.audio.name, pcm16(decode_audio(item.audio)), item.reference) for item in discover(directory)]
    rounds = []
    for n in range(1, max_concurrency + 1):
        result = asyncio.run(_round(base_url, token, items, n, keep_up_s))
        rounds.append(result)
        if not result["all_keep_up"]:
            break
    keeping = [r["concurrency"] for r in rounds if r["all_keep_up"]]
    return {"url": base_url, "keep_up_s": keep_up_s, "rounds": rounds,
            "max_realtime_sessions": max(keeping) if keeping else 0}


def print_stream_table(summary: dict[str, Any], out: IO[str]) -> None:
    out.write(f"{'N':>3}{'partial p50':>13}{'p95':>7}{'final p50':>11}{'p95':>7}{'WER':>8}  keeps up\n")
    for r in summary["rounds"]:
        out.write(f"{r['concurrency']:>3}{r['partial_p50_s'] or float('nan'):>13.2f}{r['partial_p95_s'] or float('nan'):>7.2f}"
                  f"{r['final_p50_s'] or float('nan'):>11.2f}{r['final_p95_s'] or float('nan'):>7.2f}"
                  f"{r['wer'] if r['wer'] is not None else float('nan'):>8.3f}  {r['all_keep_up']}\n")
    out.write(f"largest N keeping up with real time (final p95 <= {summary['keep_up_s']} s): "
              f"{summary['max_realtime_sessions']}\n")
    out.flush()
