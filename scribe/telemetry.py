"""This process's operational counters: what the domain code did (ASR passes, drafted notes, stream errors sent).

Domain code counts here without importing the web layer; `/metrics` (scribe/api/metrics.py) only renders
a snapshot. Counters run from the process start, as Prometheus counters do, and are labelled by engine
names, pass kinds and protocol error codes only: never ids, names or words.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

PASS_KINDS = ("partial", "final")


@dataclass(frozen=True)
class TelemetrySnapshot:
    """Counts and second sums, each keyed by its labels, sorted for a stable rendering."""

    asr_passes: dict[tuple[str, str], int]  # (engine, kind) -> passes run
    asr_pass_seconds: dict[tuple[str, str], float]
    notes_drafted: dict[str, int]  # engine -> drafts
    note_draft_seconds: dict[str, float]
    stream_errors: dict[str, int]  # protocol error code -> error messages sent


class Telemetry:
    """Thread-safe counters: ASR passes run on scheduler threads, notes on request threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._asr_passes: Counter[tuple[str, str]] = Counter()
        # second sums are floats, which a Counter (int counts, to its types) does not hold
        self._asr_pass_seconds: dict[tuple[str, str], float] = {}
        self._notes_drafted: Counter[str] = Counter()
        self._note_draft_seconds: dict[str, float] = {}
        self._stream_errors: Counter[str] = Counter()

    def asr_pass(self, engine: str, kind: str, seconds: float) -> None:
        """One streaming ASR pass that ran; `kind` is `final` for a pass that made finals or finished an utterance,
        else `partial`."""
        if kind not in PASS_KINDS:
            raise ValueError(f"pass kind must be one of {', '.join(PASS_KINDS)}")
        with self._lock:
            key = (engine, kind)
            self._asr_passes[key] += 1
            self._asr_pass_seconds[key] = self._asr_pass_seconds.get(key, 0) + seconds

    def note_drafted(self, engine: str, seconds: float) -> None:
        """One note drafted (and grounded) by `engine` in `seconds`."""
        with self._lock:
            self._notes_drafted[engine] += 1
            self._note_draft_seconds[engine] = self._note_draft_seconds.get(engine, 0) + seconds

    def stream_error(self, code: str) -> None:
        """One protocol `error` message sent to a streaming client (streaming/PROTOCOL.md codes)."""
        with self._lock:
            self._stream_errors[code] += 1

    def snapshot(self) -> TelemetrySnapshot:
        with self._lock:
            return TelemetrySnapshot(
                asr_passes=dict(sorted(self._asr_passes.items())),
                asr_pass_seconds=dict(sorted(self._asr_pass_seconds.items())),
                notes_drafted=dict(sorted(self._notes_drafted.items())),
                note_draft_seconds=dict(sorted(self._note_draft_seconds.items())),
                stream_errors=dict(sorted(self._stream_errors.items())),
            )


telemetry = Telemetry()
"""The process's one set of counters (one process serves one app)."""
