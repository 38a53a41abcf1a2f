"""Encounter audio on disk, the one place that knows its layout: streamed audio, uploads, spans, deletion.

Layout under `SCRIBE_AUDIO_DIR`, a directory every node shares:

- `<encounter_id>/audio.pcm`: the stream's raw PCM exactly as received, at the declared format;
  `format.json` (that format and the owning clinician) and `segments.jsonl` (one final transcript
  segment per line) beside it. Bytes are on disk (fsynced) before the client hears `ack`. A crash
  can leave at most an unacknowledged partial sample frame at the tail; reopening trims it, so
  `received_bytes` is always a whole number of frames and every acknowledged byte is kept.
- `<encounter_id>/uploads/<time>-<sha256 prefix>.audio`: uploaded recordings, as sent.
- `~incoming/`: uploads while they arrive, so storing one is a rename on the same filesystem
  (`~` never appears in an encounter id).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np

from scribe.access import check_stream
from scribe.errors import ScribeError

ENCOUNTER_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")  # also a FHIR id, and never a path but its own
INCOMING = "~incoming"


def is_encounter_id(text: str) -> bool:
    """1-64 of A-Z a-z 0-9 . _ -, and neither `.` nor `..`: safe as a directory name under the audio root."""
    return bool(ENCOUNTER_ID.fullmatch(text)) and text not in (".", "..")


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

    def mono(self, raw: bytes) -> np.ndarray:
        """Whole frames of `raw` as mono float32 in [-1, 1] (channels averaged)."""
        samples = np.frombuffer(
            raw[: len(raw) - len(raw) % self.frame_bytes], dtype="<i2" if self.encoding == "pcm_s16le" else "<f4"
        ).astype(np.float32)
        if self.encoding == "pcm_s16le":
            samples /= 32768.0
        return samples.reshape(-1, self.channels).mean(axis=1) if self.channels > 1 else samples


def _encounter_dir(root: Path, encounter_id: str) -> Path:
    """The encounter's directory; ids are checked so none can name a path outside `root`."""
    if not is_encounter_id(encounter_id):
        raise AudioStoreError(f"invalid encounter id {encounter_id!r}: use 1-64 of A-Z a-z 0-9 . _ -")
    return root / encounter_id


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable (the directory entry itself is fsynced)."""
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
    fsync_dir(path.parent)


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
            check_stream(fmt.owner, stored.owner)  # the database said so too: this is the files' own record
            if stored != fmt:
                raise AudioStoreError(
                    f"encounter {encounter_id} was recorded as {stored.encoding} {stored.sample_rate} Hz "
                    f"{stored.channels} ch; resume with the same format"
                )
        else:
            directory.mkdir(parents=True, exist_ok=True)
            _write_durably(meta, json.dumps(asdict(fmt)))
            fsync_dir(root)
        return cls(directory, fmt)

    @staticmethod
    def stored_format(root: Path, encounter_id: str) -> StoredFormat | None:
        """The format a stream of this encounter must resume with; None before anything was streamed."""
        meta = _encounter_dir(root, encounter_id) / "format.json"
        if not meta.is_file():
            return None
        return StoredFormat(**json.loads(meta.read_text(encoding="utf-8")))

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


def stream_span(root: Path, encounter_id: str, start: float, end: float | None) -> tuple[np.ndarray, int] | None:
    """Mono samples of `start`..`end` seconds of the encounter's streamed audio and their rate; None if nothing was
    streamed."""
    fmt = EncounterAudio.stored_format(root, encounter_id)
    path = _encounter_dir(root, encounter_id) / "audio.pcm"
    if fmt is None or not path.is_file():
        return None
    with open(path, "rb") as handle:
        handle.seek(int(start * fmt.sample_rate) * fmt.frame_bytes)
        raw = handle.read(None if end is None else max(0, int((end - start) * fmt.sample_rate)) * fmt.frame_bytes)
    return fmt.mono(raw), fmt.sample_rate


def upload_spool_dir(root: Path) -> Path:
    """Where uploads are written while they arrive: inside `root`, so storing one is a rename."""
    return root / INCOMING


def store_upload_file(root: Path, encounter_id: str, spooled: Path, *, sha256: str, moment: datetime) -> str:
    """Move an uploaded file (already fsynced in the spool directory) into place; its path relative to `root`."""
    relative = Path(encounter_id) / "uploads" / f"{moment.strftime('%Y%m%dT%H%M%S%f')}-{sha256[:12]}.audio"
    path = _encounter_dir(root, encounter_id) / relative.relative_to(encounter_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(spooled, path)
    fsync_dir(path.parent)
    return str(relative)


def upload_path(root: Path, relative: str) -> Path:
    """The stored upload `store_upload_file` returned `relative` for."""
    return root / relative


def delete_encounter_audio(root: Path, encounter_id: str) -> None:
    """Every recording of the encounter, streamed and uploaded; already gone is fine (any node may purge)."""
    directory = _encounter_dir(root, encounter_id)
    if directory.exists():
        shutil.rmtree(directory)
