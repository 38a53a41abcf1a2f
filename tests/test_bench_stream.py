"""`scribe bench stream` summary logic: every requested round runs; largest N counts only unbroken rounds; refused
streams are counted apart from lost ones; each stream's WER stands beside the offline WER of its file."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

import scribe.bench.stream as bench_stream
from scribe.bench.asr import discover
from scribe.commands.base import UsageError
from scribe.commands.bench import _round_sizes
from scribe.streaming.client import StreamFailed, StreamResult
from scribe.wer import word_errors
from tests.conftest import SAMPLES


@pytest.mark.parametrize(
    "keeps, at_end, largest, largest_at_end",
    [
        ({1: True, 4: False, 8: True}, {1: True, 4: True, 8: False}, 1, 4),
        ({1: False, 4: False, 8: False}, {1: False, 4: False, 8: False}, 0, 0),
    ],
)
def test_every_round_runs_and_largest_n_stops_at_the_first_miss(monkeypatch, keeps, at_end, largest, largest_at_end):
    ran = []

    async def fake_round(base_url, token, items, n, keep_up_s, records, offline):
        ran.append(n)
        assert items and not records and offline is None
        return {"concurrency": n, "all_keep_up": keeps[n], "all_keep_up_at_end": at_end[n]}

    monkeypatch.setattr(bench_stream, "_round", fake_round)
    summary = bench_stream.run_stream_bench("ws://127.0.0.1:9", None, Path(SAMPLES), [8, 1, 4])
    assert ran == [1, 4, 8]  # smallest first; a round that falls behind does not end the run
    assert summary["max_realtime_sessions"] == largest
    assert summary["max_realtime_sessions_at_end_of_speech"] == largest_at_end


def test_a_round_counts_refusals_apart_and_sets_each_wer_beside_offline(monkeypatch):
    items = [(item, b"") for item in discover(Path(SAMPLES))][:2]
    (first, _), (second, _) = items
    answers = iter(
        [
            StreamFailed("server refused the stream: server_busy: full", "server_busy"),
            StreamFailed("connection lost and 5 reconnects failed", None),
        ]
    )

    async def fake_stream(url, pcm, **kwargs):
        if url.endswith("-0-0/stream"):  # the first client's first file is served, word for word
            return StreamResult(
                transcript={"text": first.reference},
                final_latencies=[0.5],
                word_final_latencies=[2.5, 1.5, 0.5],
                partial_latencies=[0.2],
            )
        if url.endswith("-0-1/stream"):  # its second: every word missing
            return StreamResult(transcript={"text": ""}, final_latencies=[1.0], word_final_latencies=[1.0])
        raise next(answers)

    monkeypatch.setattr(bench_stream, "stream_pcm", fake_stream)
    offline = {first.audio.name: first.reference, second.audio.name: ""}
    result = asyncio.run(bench_stream._round("ws://x", None, items, 2, 3.0, False, offline))
    assert (result["streams"], result["served"], result["refused"], result["lost"]) == (4, 2, 1, 1)
    assert [(s["wer"], s["offline_wer"]) for s in result["sessions"]] == [(0.0, 0.0), (1.0, 1.0)]
    words = [word_errors(item.reference, "").reference_words for item, _ in items]
    assert result["wer"] == result["offline_wer"] == round(words[1] / sum(words), 4)
    assert result["wer_minus_offline"] == 0.0
    # word-final latency pools every word of every served stream; each session has its own
    assert (result["word_final_p50_s"], result["word_final_p95_s"]) == (1.25, 2.35)
    assert [s["word_final_p95_s"] for s in result["sessions"]] == [2.4, 1.0]
    assert (result["final_p50_s"], result["final_p95_s"]) == (0.75, 0.975)  # per final, from its last word, as before
    out = io.StringIO()
    bench_stream.print_stream_table(
        {"keep_up_s": 3.0, "rounds": [result], "max_realtime_sessions": 0, "max_realtime_sessions_at_end_of_speech": 0},
        out,
    )
    header, row = out.getvalue().splitlines()[:2]
    assert "word final p50" in header and "1.25   2.35" in row


@pytest.mark.parametrize("text, sizes", [("1,4,8,12", [1, 4, 8, 12]), ("8, 1", [1, 8]), ("3", [3])])
def test_round_sizes_are_a_comma_list(text, sizes):
    assert _round_sizes(text) == sizes


@pytest.mark.parametrize("text", ["", "0,4", "four", "1,,x"])
def test_bad_round_sizes_are_a_usage_error(text):
    with pytest.raises(UsageError):
        _round_sizes(text)
