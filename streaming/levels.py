"""The input-level warnings of the streaming protocol: `clipping` and `silence` (PROTOCOL.md §8).

Both are things the person at the microphone can fix (lower the gain; unmute or plug it in), so
each is sent once when it starts, and again only after the input was fine in between.
"""

from __future__ import annotations

import numpy as np

CLIP_LEVEL = 0.99  # |sample| at or above this is full scale
CLIPPED_SHARE = 0.002  # of one second's samples at full scale: clipping "repeatedly", not a lone peak
SILENCE_LEVEL = 10 ** (-60 / 20)  # -60 dBFS: below a quiet room's noise floor; a muted input is zeros
SILENCE_S = 10.0  # this long without any sample above SILENCE_LEVEL


class InputLevels:
    """Feed each frame's samples (mono, float, full scale 1.0, the stream's own rate); get the warnings due."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._second = np.zeros(0, dtype=np.float32)  # the latest second, for the clipping share
        self._quiet_samples = 0
        self._clipping = self._silent = False

    def feed(self, samples: np.ndarray) -> list[str]:
        due: list[str] = []
        magnitude = np.abs(np.nan_to_num(samples.astype(np.float32, copy=False)))
        self._second = np.concatenate([self._second, magnitude])[-self.sample_rate :]
        clipping = bool(np.count_nonzero(self._second >= CLIP_LEVEL) >= CLIPPED_SHARE * self.sample_rate)
        if clipping and not self._clipping:
            due.append("clipping")
        self._clipping = clipping
        loud = np.flatnonzero(magnitude > SILENCE_LEVEL)
        self._quiet_samples = len(magnitude) - 1 - int(loud[-1]) if loud.size else self._quiet_samples + len(magnitude)
        silent = self._quiet_samples >= SILENCE_S * self.sample_rate
        if silent and not self._silent:
            due.append("silence")
        self._silent = silent
        return due
