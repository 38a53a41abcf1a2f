import hashlib
import os
from pathlib import Path

import pytest

from scribe import model_store
from scribe.config import Settings
from scribe.errors import BadInputError
from tests.helpers.server import run_scribe


def fake_hub_snapshot(cache: Path, repo_id: str, files: dict[str, bytes], lfs: set[str]) -> Path:
    """Lay out a repo the way huggingface_hub caches it: blobs named by digest, snapshot symlinks."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "a" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "blobs").mkdir()
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, data in files.items():
        if name in lfs:
            digest = hashlib.sha256(data).hexdigest()
        else:
            digest = hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()
        (repo / "blobs" / digest).write_bytes(data)
        (snapshot / name).symlink_to(Path("..") / ".." / "blobs" / digest)
    return snapshot


@pytest.fixture
def hub_cache() -> Path:
    return Path(os.environ["HF_HUB_CACHE"])


def test_list_reports_missing_hub_models(settings: Settings):
    statuses = {s.name: s for s in model_store.list_models(settings)}
    assert statuses["whisper"].present
    assert not statuses["medasr"].present and statuses["medasr"].source == "google/medasr"


def test_cached_snapshot_is_found_and_verified(settings: Settings, hub_cache: Path):
    snapshot = fake_hub_snapshot(
        hub_cache,
        "google/medasr",
        {"config.json": b'{"model_type": "lasr_ctc"}', "model.safetensors": b"\x00" * 4096},
        lfs={"model.safetensors"},
    )
    statuses = {s.name: s for s in model_store.list_models(settings)}
    assert statuses["medasr"].present and statuses["medasr"].location == str(snapshot)
    checks = model_store.verify("medasr", settings)
    assert len(checks) == 2 and all(c.ok for c in checks)


def test_corrupted_blob_fails_verification(settings: Settings, hub_cache: Path):
    snapshot = fake_hub_snapshot(
        hub_cache,
        "google/medasr",
        {"config.json": b"{}", "model.safetensors": b"\x01" * 4096},
        lfs={"model.safetensors"},
    )
    (snapshot / "model.safetensors").resolve().write_bytes(b"\x02" * 4096)
    checks = {c.path.name: c for c in model_store.verify("medasr", settings)}
    assert checks["config.json"].ok
    assert not checks["model.safetensors"].ok and "mismatch" in checks["model.safetensors"].message


def test_verify_not_downloaded(settings: Settings):
    [check] = model_store.verify("medgemma", settings)
    assert not check.ok and "scribe models pull medgemma" in check.message


def test_unknown_model_name(settings: Settings):
    with pytest.raises(BadInputError, match="unknown model"):
        model_store.verify("gpt-7", settings)


@pytest.mark.slow  # a CLI subprocess
def test_pull_without_network_is_a_clear_error(tmp_path: Path):
    """The hub endpoint is a closed local port: pull must fail fast with exit 4 and a one-line reason."""
    env = {
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "HF_HUB_OFFLINE": "0",
        "SCRIBE_DATA_DIR": str(tmp_path),
        "HF_HUB_ETAG_TIMEOUT": "2",
        "HF_HUB_DOWNLOAD_TIMEOUT": "2",
    }
    proc = run_scribe("models", "pull", "medasr", env=env)
    assert proc.returncode == 4, proc.stderr
    assert "could not download google/medasr" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
