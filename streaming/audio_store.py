"""Durable, append-only encounter audio: bytes are on disk (fsynced) before the client hears `ack`.

Layout under a directory every node shares: `<root>/<encounter_id>/audio.pcm` (raw PCM exactly
as received, at the declared format), `format.json` (that format and the owning clinician) and
`segments.jsonl` (one final transcript segment per line, fsynced as it is produced). A crash
can leave at most an unacknowledged partial sample frame at the tail; reopening trims it, so
`received_bytes` is always a whole number of frames and every acknowledged byte is kept.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scribe.errors import ScribeError
from streaming.protocol import ENCOUNTER_ID


class AudioStoreError(ScribeError):
    """The stored encounter cannot take this stream (format changed, another owner, bad id)."""

    exit_code = 3


@dataclass(frozen=True)
class StoredFormat:
    sample_rate: int
    encoding: str
    channels: int
    owner: str

    @property
    def frame_bytes(self) -> int:
        """Bytes per sample frame (all channels)."""
        return self.channels * (2 if self.encoding == "pcm_s16le" else 4)


def _encounter_dir(root: Path, encounter_id: str) -> Path:
    """The encounter's directory; ids are checked so none can name a path outside `root`."""
    if not ENCOUNTER_ID.fullmatch(encounter_id) or encounter_id in (".", ".."):
        raise AudioStoreError(f"invalid encounter id {encounter_id!r}: use 1-64 of A-Z a-z 0-9 . _ -")
    return root / encounter_id


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class EncounterAudio:
    """One encounter's stored audio and final segments; one writer at a time (guarded by a lock)."""

    def __init__(self, directory: Path, fmt: StoredFormat) -> None:
        self.directory = directory
        self.format = fmt
        self._lock = threading.Lock()
        self._audio = open(directory / "audio.pcm", "ab")
        size = os.fstat(self._audio.fileno()).st_size
        whole = size - size % fmt.frame_bytes
        if whole != size:  # an unacknowledged partial frame left by a crash
            self._audio.truncate(whole)
            os.fsync(self._audio.fileno())
        self._received = whole
        self._segments = open(directory / "segments.jsonl", "a", encoding="utf-8")

    @classmethod
    def open(cls, root: Path, encounter_id: str, fmt: StoredFormat) -> EncounterAudio:
        """Create the encounter, or resume it if the stored format and owner match."""
        directory = _encounter_dir(root, encounter_id)
        meta = directory / "format.json"
        if meta.is_file():
            stored = StoredFormat(**json.loads(meta.read_text(encoding="utf-8")))
            if stored.owner != fmt.owner:
                raise AudioStoreError(f"encounter {encounter_id} belongs to another clinician")
            if stored != fmt:
                raise AudioStoreError(
                    f"encounter {encounter_id} was recorded as {stored.encoding} {stored.sample_rate} Hz "
                    f"{stored.channels} ch; resume with the same format"
                )
        else:
            directory.mkdir(parents=True, exist_ok=True)
            _write_durably(meta, json.dumps(asdict(fmt)))
            _fsync_dir(root)
        return cls(directory, fmt)

    @staticmethod
    def stored_format(root: Path, encounter_id: str) -> StoredFormat | None:
        """The format a stream of this encounter must resume with; None before anything was streamed."""
        meta = _encounter_dir(root, encounter_id) / "format.json"
        if not meta.is_file():
            return None
        return StoredFormat(**json.loads(meta.read_text(encoding="utf-8")))

    @staticmethod
    def owner_of(root: Path, encounter_id: str) -> str | None:
        stored = EncounterAudio.stored_format(root, encounter_id)
        return stored.owner if stored else None

    @property
    def received_bytes(self) -> int:
        return self._received

    def append(self, data: bytes) -> int:
        """Write and fsync `data` (whole sample frames); returns the new durable total."""
        if len(data) % self.format.frame_bytes:
            raise AudioStoreError(f"{len(data)} bytes is not a whole number of {self.format.frame_bytes}-byte frames")
        with self._lock:
            self._audio.write(data)
            self._audio.flush()
            os.fsync(self._audio.fileno())
            self._received += len(data)
            return self._received

    def read(self, start: int = 0, end: int | None = None) -> bytes:
        with open(self.directory / "audio.pcm", "rb") as fh:
            fh.seek(start)
            return fh.read((end if end is not None else self._received) - start)

    def add_segment(self, segment: dict[str, Any]) -> None:
        with self._lock:
            self._segments.write(json.dumps(segment, ensure_ascii=False) + "\n")
            self._segments.flush()
            os.fsync(self._segments.fileno())

    def segments(self) -> list[dict[str, Any]]:
        """Final segments stored so far; a torn last line (crash mid-write) is ignored."""
        out = []
        with open(self.directory / "segments.jsonl", encoding="utf-8") as fh:
            for line in fh:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    break
        return out

    def close(self) -> None:
        with self._lock:
            self._audio.close()
            self._segments.close()

    def __enter__(self) -> EncounterAudio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
