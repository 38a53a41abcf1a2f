import json
import os
from pathlib import Path

import pytest

from scribe.asr import bundled_whisper
from scribe.errors import ChecksumError

pytestmark = pytest.mark.slow  # each test assembles and hashes the real Whisper weights: about 1 s


def test_assembles_and_verifies(tmp_path: Path):
    target = bundled_whisper.ensure_bundled(tmp_path)
    assert (target / "model.bin").stat().st_size == sum(p.stat().st_size for p in bundled_whisper.part_files())
    for name in bundled_whisper.SIDE_FILES:
        assert (target / name).is_file()
    result = bundled_whisper.verify(tmp_path)
    assert result.ok and result.sha256 == bundled_whisper.MODEL_SHA256
    assert not list(target.glob("*.tmp-*"))


def test_warm_call_does_not_rewrite(tmp_path: Path):
    target = bundled_whisper.ensure_bundled(tmp_path)
    mtime = (target / "model.bin").stat().st_mtime_ns
    assert bundled_whisper.ensure_bundled(tmp_path) == target
    assert (target / "model.bin").stat().st_mtime_ns == mtime


def test_tampered_model_is_reassembled_on_use(tmp_path: Path):
    target = bundled_whisper.ensure_bundled(tmp_path)
    with open(target / "model.bin", "r+b") as fh:
        fh.truncate(1000)
    bundled_whisper.ensure_bundled(tmp_path)
    assert bundled_whisper.verify(tmp_path).ok


def test_bit_flip_is_caught_by_verify(tmp_path: Path):
    target = bundled_whisper.ensure_bundled(tmp_path)
    stat = (target / "model.bin").stat()
    with open(target / "model.bin", "r+b") as fh:
        fh.seek(5_000_000)
        byte = fh.read(1)
        fh.seek(5_000_000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(target / "model.bin", ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime: only a hash sees it
    result = bundled_whisper.verify(tmp_path)
    assert not result.ok and "mismatch" in result.message


def test_corrupt_parts_raise_checksum_error_and_leave_nothing(tmp_path: Path):
    parts = bundled_whisper.part_files()
    bad = tmp_path / "bad.part2"
    bad.write_bytes(parts[1].read_bytes()[:-10] + b"0123456789")
    models = tmp_path / "models"
    with pytest.raises(ChecksumError, match="corrupt"):
        bundled_whisper.assemble(models, parts=[parts[0], bad])
    assert not (models / bundled_whisper.MODEL_NAME / "model.bin").exists()
    assert not list((models / bundled_whisper.MODEL_NAME).glob("*.tmp-*"))


def test_manifest_records_digest(tmp_path: Path):
    target = bundled_whisper.ensure_bundled(tmp_path)
    manifest = json.loads((target / "scribe-manifest.json").read_text())
    assert manifest["sha256"] == bundled_whisper.MODEL_SHA256
