"""Shared fixtures: an isolated data directory and settings for every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scribe.config import Settings

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("SCRIBE_TEST_ARTIFACTS", REPO / "test-artifacts"))  # screenshots, figures
SAMPLES = REPO / "audio_samples"


def isolate_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's config, data directory or Hugging Face cache, or reaches the hub (also what a
    module-scoped fixture calls, which runs before `isolated_env`)."""
    for name in (
        "SCRIBE_CONFIG",
        "SCRIBE_ASR_ENGINE",
        "SCRIBE_ASR_MODEL",
        "SCRIBE_DATA_DIR",
        "SCRIBE_NOTE_ENGINE",
        "SCRIBE_MEDGEMMA_MODEL",
        "SCRIBE_LLM_BASE_URL",
        "SCRIBE_LLM_MODEL",
        "SCRIBE_LLM_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hf_home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_home / "hub"))


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs isolated from the developer's settings and caches."""
    isolate_environment(tmp_path_factory, monkeypatch)


@pytest.fixture(scope="session")
def shared_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data directory for tests that load the bundled Whisper, so it is assembled once per run."""
    return tmp_path_factory.mktemp("scribe_data")


@pytest.fixture(scope="session")
def tiny_medasr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised MedASR checkpoint (`tests/tiny_medasr.py`), built once per run."""
    pytest.importorskip("transformers", reason="the tiny MedASR needs the gpu extra")
    pytest.importorskip("sentencepiece", reason="the tiny MedASR trains a sentencepiece tokenizer")
    from tests.tiny_medasr import build_tiny_medasr

    return build_tiny_medasr(tmp_path_factory.mktemp("tiny_medasr"))


@pytest.fixture
def settings(shared_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("SCRIBE_DATA_DIR", str(shared_models_dir))
    return Settings()


PG_URL = __import__("os").environ.get("SCRIBE_TEST_DATABASE_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_target(request, tmp_path: Path, shared_models_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """(settings, schema): a fresh SQLite file, or a PostgreSQL schema of its own that is dropped afterwards."""
    import uuid

    from sqlalchemy import text

    from scribe.store.db import make_engine

    monkeypatch.setenv("SCRIBE_DATA_DIR", str(tmp_path))
    base = dict(data_dir=tmp_path, secret_key="s" * 40, audio_root=tmp_path / "audio")
    models = shared_models_dir / "models"
    if request.param == "sqlite":
        yield Settings(**base), None, models
        return
    if not PG_URL:
        pytest.skip("SCRIBE_TEST_DATABASE_URL is not set (CI sets it to the local PostgreSQL server)")
    schema = f"scribe_test_{uuid.uuid4().hex[:12]}"
    yield Settings(**base, database_url=PG_URL), schema, models
    engine = make_engine(PG_URL)
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()
