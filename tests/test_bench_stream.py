"""`scribe bench stream` summary logic: every requested round runs; largest N counts only unbroken rounds."""

from __future__ import annotations

from pathlib import Path

import pytest

import scribe.bench.stream as bench_stream
from tests.conftest import SAMPLES


@pytest.mark.parametrize("keeps, at_end, largest, largest_at_end", [
    ({1: True, 2: False, 3: True}, {1: True, 2: True, 3: False}, 1, 2),
    ({1: False, 2: False, 3: False}, {1: False, 2: False, 3: False}, 0, 0),
])
def test_every_round_runs_and_largest_n_stops_at_the_first_miss(monkeypatch, keeps, at_end, largest,
                                                                 largest_at_end):
    ran = []

    async def fake_round(base_url, token, items, n, keep_up_s, records):
        ran.append(n)
        assert items and not records
        return {"concurrency": n, "all_keep_up": keeps[n], "all_keep_up_at_end": at_end[n]}

    monkeypatch.setattr(bench_stream, "_round", fake_round)
    summary = bench_stream.run_stream_bench("ws://127.0.0.1:9", None, Path(SAMPLES), 3)
    assert ran == [1, 2, 3]  # a round that falls behind does not end the run
    assert summary["max_realtime_sessions"] == largest
    assert summary["max_realtime_sessions_at_end_of_speech"] == largest_at_end
