import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scribe.encounter_audio import AudioStoreError, EncounterAudio, StoredFormat
from scribe.errors import ForbiddenError

FMT = StoredFormat(sample_rate=16000, encoding="pcm_s16le", channels=1, owner="dr-a")


def test_append_is_durable_and_resumable(tmp_path: Path):
    with EncounterAudio.open(tmp_path, "enc-1", FMT) as store:
        assert store.received_bytes == 0
        assert store.append(b"\x01\x02" * 1600) == 3200
        assert store.append(b"\x03\x04" * 800) == 4800
    with EncounterAudio.open(tmp_path, "enc-1", FMT) as store:
        assert store.received_bytes == 4800
        assert store.read(3200) == b"\x03\x04" * 800


def test_partial_frame_left_by_a_crash_is_trimmed(tmp_path: Path):
    with EncounterAudio.open(tmp_path, "enc-1", FMT) as store:
        store.append(b"\x00\x01" * 10)
    with open(tmp_path / "enc-1" / "audio.pcm", "ab") as fh:
        fh.write(b"\x07")  # half a sample: the write that was never acknowledged
    with EncounterAudio.open(tmp_path, "enc-1", FMT) as store:
        assert store.received_bytes == 20 and store.read() == b"\x00\x01" * 10


def test_resume_requires_same_format_and_owner(tmp_path: Path):
    EncounterAudio.open(tmp_path, "enc-1", FMT).close()
    with pytest.raises(AudioStoreError, match="resume with the same format"):
        EncounterAudio.open(tmp_path, "enc-1", StoredFormat(48000, "pcm_s16le", 1, "dr-a"))
    with pytest.raises(ForbiddenError, match="another clinician"):
        EncounterAudio.open(tmp_path, "enc-1", StoredFormat(16000, "pcm_s16le", 1, "dr-b"))
    assert EncounterAudio.stored_format(tmp_path, "enc-1").owner == "dr-a"
    assert EncounterAudio.stored_format(tmp_path, "enc-2") is None


def test_whole_frames_only(tmp_path: Path):
    stereo = StoredFormat(16000, "pcm_s16le", 2, "dr-a")
    with EncounterAudio.open(tmp_path, "enc-1", stereo) as store, pytest.raises(AudioStoreError, match="whole number"):
        store.append(b"\x00" * 6)


def test_segments_survive_and_torn_line_is_ignored(tmp_path: Path):
    with EncounterAudio.open(tmp_path, "enc-1", FMT) as store:
        store.add_segment({"id": 0, "start": 0.0, "end": 1.0, "text": "Chest pain."})
    with open(tmp_path / "enc-1" / "segments.jsonl", "a") as fh:
        fh.write('{"id": 1, "sta')
    with EncounterAudio.open(tmp_path, "enc-1", FMT) as store:
        assert [s["text"] for s in store.segments()] == ["Chest pain."]


@pytest.mark.slow  # a Python subprocess, killed
def test_acknowledged_bytes_survive_sigkill(tmp_path: Path):
    """A writer killed with SIGKILL right after append returned keeps every appended byte."""
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from scribe.encounter_audio import EncounterAudio, StoredFormat\n"
        f"s = EncounterAudio.open(Path({str(tmp_path)!r}), 'enc-k', StoredFormat(16000, 'pcm_s16le', 1, 'dr-a'))\n"
        "for i in range(50):\n"
        "    s.append(bytes([i % 256, 0]) * 160)\n"
        "print(s.received_bytes, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert proc.returncode == -9
    acked = int(proc.stdout.strip())
    with EncounterAudio.open(tmp_path, "enc-k", FMT) as store:
        assert store.received_bytes == acked == 50 * 320
        assert store.read(320 * 49, 320 * 50) == bytes([49, 0]) * 160
    assert json.loads((tmp_path / "enc-k" / "format.json").read_text())["owner"] == "dr-a"
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "enc-k").iterdir())
    assert os.path.getsize(tmp_path / "enc-k" / "audio.pcm") == acked


@pytest.mark.parametrize("bad", ["..", ".", "../etc", "a/b", "", "x" * 65, "enc 1"])
def test_encounter_ids_cannot_escape_the_root(tmp_path: Path, bad: str):
    with pytest.raises(AudioStoreError, match="invalid encounter id"):
        EncounterAudio.open(tmp_path / "root", bad, FMT)
