"""`clipping` and `silence` warnings (PROTOCOL.md §8): when each starts, and that each is sent once per episode."""

from __future__ import annotations

import numpy as np
import pytest

from scribe.streaming.levels import SILENCE_S, InputLevels

RATE = 16000


def frames(signal: np.ndarray, ms: int = 100) -> list[np.ndarray]:
    size = RATE * ms // 1000
    return [signal[i : i + size] for i in range(0, len(signal), size)]


def warnings(levels: InputLevels, signal: np.ndarray) -> list[tuple[float, str]]:
    out, at = [], 0
    for frame in frames(signal):
        at += len(frame)
        out += [(at / RATE, code) for code in levels.feed(frame)]
    return out


def speech_like(seconds: float, peak: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (peak * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_ordinary_speech_and_a_lone_peak_warn_of_nothing():
    signal = speech_like(15, 0.8)
    signal[RATE * 3] = 1.0  # one full-scale sample is not clipping
    assert warnings(InputLevels(RATE), signal) == []


def test_clipping_is_warned_once_per_episode():
    clipped = np.clip(speech_like(3, 4.0), -1, 1)
    signal = np.concatenate([speech_like(2, 0.5), clipped, speech_like(3, 0.5), clipped])
    found = warnings(InputLevels(RATE), signal)
    assert [code for _, code in found] == ["clipping", "clipping"]
    assert 2.0 < found[0][0] <= 2.2 and 8.0 < found[1][0] <= 8.2


@pytest.mark.parametrize("floor", [0.0, 1e-4])
def test_silence_is_warned_after_ten_quiet_seconds_and_again_only_after_sound(floor):
    rng = np.random.default_rng(0)
    quiet = (floor * rng.standard_normal(int(12 * RATE))).astype(np.float32)
    signal = np.concatenate([speech_like(1, 0.5), quiet, speech_like(1, 0.5), quiet])
    found = warnings(InputLevels(RATE), signal)
    assert [code for _, code in found] == ["silence", "silence"]
    assert found[0][0] == pytest.approx(1 + SILENCE_S, abs=0.11) and found[1][0] == pytest.approx(
        14 + SILENCE_S, abs=0.11
    )


def test_a_quiet_but_live_microphone_is_not_silence():
    rng = np.random.default_rng(1)
    room = (0.003 * rng.standard_normal(int(15 * RATE))).astype(np.float32)  # -50 dBFS of room noise
    assert warnings(InputLevels(RATE), room) == []


def test_nan_is_read_as_zero():
    assert InputLevels(RATE).feed(np.full(1600, np.nan, dtype=np.float32)) == []


def test_protocol_md_states_the_thresholds_the_code_uses():
    from pathlib import Path

    from scribe.streaming import levels

    doc = (Path(levels.__file__).parent / "PROTOCOL.md").read_text()
    assert f"{levels.CLIPPED_SHARE * 100:g} % of one second's samples" in doc
    assert f"{levels.CLIP_LEVEL * 100:g} % of full scale" in doc
    assert f"{levels.SILENCE_S:g} s without a sample above −60 dBFS" in doc
    assert levels.SILENCE_LEVEL == pytest.approx(10 ** (-60 / 20))
